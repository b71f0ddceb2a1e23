"""Browser tests for the web console: real headless Chromium driven by Playwright's sync API.

A pytest plugin (tests/conftest.py loads it), so any test can ask for its fixtures:

    from tests.console_browser import PageErrors, shoot

    def test_login(page: Page, page_errors: PageErrors) -> None:
        page.goto(server.url + "/console/")
        page.get_by_role("button", name="Sign in").click()
        shoot(page, "login")           # test-artifacts/console/login.png
        page_errors.assert_none()      # no console errors, CSP violations or uncaught exceptions

The Chromium is Debian's (`make chromium`, scripts/install-chromium.sh), found through
TOKENMILL_CHROMIUM (`make unit` sets it) or `chromium` on PATH; Playwright's own browser
downloads are never used. Without one, the tests that need it fail, saying how to get it.

Write browser tests as plain `def` tests. Playwright's sync API runs its own asyncio loop and,
while it is in use, marks that loop as the thread's running one, so `asyncio.run()` and
pytest-asyncio cannot run inside a browser test. Between browser tests the `browser` fixture
clears that mark (and puts it back for the next one), so async tests elsewhere, and in the
same module, run as usual while the one browser lives on for the whole session.
"""

import asyncio
import inspect
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Playwright, sync_playwright

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "console"
TIMEOUT_MS = 15_000  # for each Playwright action and wait: a stuck page fails fast


def chromium_path() -> str | None:
    """TOKENMILL_CHROMIUM if set, else `chromium` on PATH, else None."""
    return os.environ.get("TOKENMILL_CHROMIUM") or shutil.which("chromium")


def shoot(page: Page, name: str) -> Path:
    """A full-page PNG screenshot at test-artifacts/console/<name>.png; returns its path."""
    if not name or Path(name).name != name:
        raise ValueError(f"a screenshot name is a plain file name, not {name!r}")
    path = ARTIFACTS / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path, full_page=True)
    return path


@dataclass
class PageErrors:
    """What went wrong in a page, as its console shows it: `console.error` calls, CSP
    violations and resources that failed to load (Chromium reports both as console errors;
    a missing /favicon.ico too), and uncaught exceptions."""

    messages: list[str] = field(default_factory=list)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location
            self.messages.append(f"console: {message.text} ({where['url']}:{where['lineNumber']})")

    def _on_pageerror(self, error: Error) -> None:
        self.messages.append(f"uncaught: {error.message}")

    def csp_violations(self) -> list[str]:
        return [m for m in self.messages if "Content Security Policy" in m]

    def assert_none(self) -> None:
        assert not self.messages, "the page reported errors:\n" + "\n".join(self.messages)


def watch_errors(page: Page) -> PageErrors:
    """Collects `page`'s errors from now on (the `page_errors` fixture does this for `page`)."""
    errors = PageErrors()
    page.on("console", errors._on_console)
    page.on("pageerror", errors._on_pageerror)
    return errors


@dataclass
class _Session:
    playwright: Playwright
    browser: Browser
    loop: asyncio.AbstractEventLoop  # Playwright's own

    def park(self) -> None:
        """Between browser tests: no running loop, as if Playwright were gone."""
        asyncio._set_running_loop(None)

    def resume(self) -> None:
        """Before Playwright is used again: its loop is the running one, as it left it."""
        asyncio._set_running_loop(self.loop)


@pytest.fixture(scope="session")
def _console_chromium() -> Iterator[_Session]:
    executable = chromium_path()
    if executable is None:
        pytest.fail(
            "the web console's browser tests need Chromium, and there is none here: run "
            "`make chromium` (scripts/install-chromium.sh installs Debian's `chromium`), or "
            "point TOKENMILL_CHROMIUM at a Chromium binary",
            pytrace=False,
        )
    playwright = sync_playwright().start()
    try:
        # No sandbox: root (as in CI) cannot have Chromium's, and the pages are our own.
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, chromium_sandbox=False
        )
    except Error as exc:
        playwright.stop()
        pytest.fail(f"Chromium at {executable} did not start: {exc.message}", pytrace=False)
    # Each sync call leaves Playwright's loop marked as the thread's running one.
    session = _Session(playwright, browser, asyncio.get_running_loop())
    session.park()
    yield session
    session.resume()
    browser.close()
    playwright.stop()  # clears the mark for good


@pytest.fixture
def browser(_console_chromium: _Session, request: pytest.FixtureRequest) -> Iterator[Browser]:
    """The session's headless Chromium, for this test."""
    if inspect.iscoroutinefunction(request.function):
        pytest.fail(
            "browser tests are plain `def` tests (see tests/console_browser.py)", pytrace=False
        )
    _console_chromium.resume()
    try:
        yield _console_chromium.browser
    finally:
        _console_chromium.park()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context (its own cookies and storage), closed after the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page_errors(page: Page) -> PageErrors:
    """The errors `page` reports; attached before the test loads anything into it."""
    return watch_errors(page)
