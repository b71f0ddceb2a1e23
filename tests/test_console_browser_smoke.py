"""The browser-test infrastructure works (tests/console_browser.py): Chromium opens a page,
runs its script, clicks, screenshots, reports errors; and it keeps a `Secure; HttpOnly;
SameSite=Strict` cookie over plain HTTP on loopback, which the console's sign-in relies on."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page

from tests.console_browser import PageErrors, shoot

CSP = "default-src 'self'"
APP_JS = b"""document.getElementById("go").addEventListener("click", () => {
  document.getElementById("out").textContent = "clicked";
});"""
PAGES = {
    "/": ("text/html", b'<button id="go">Go</button> <p id="out">idle</p> <script src="app.js">'
                       b"</script>"),
    "/app.js": ("text/javascript", APP_JS),
    "/inline.html": ("text/html", b"<script>document.title = 'ran';</script>"),  # CSP refuses
}  # fmt: skip


class Site(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/login":
            kind, body = "text/plain", b"signed in"
            extra = [("Set-Cookie", "sid=s3cret; Path=/; Secure; HttpOnly; SameSite=Strict")]
        elif self.path == "/whoami":
            kind, body, extra = "text/plain", (self.headers["Cookie"] or "-").encode(), []
        elif self.path == "/favicon.ico":  # else Chromium's request for it logs a 404 error
            self.send_response(204)
            self.end_headers()
            return
        elif self.path in PAGES:
            (kind, body), extra = PAGES[self.path], []
        else:
            self.send_error(404)
            return
        self.send_response(200)
        for name, value in [("Content-Type", kind), ("Content-Security-Policy", CSP), *extra]:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()


def test_click_runs_the_page_script(page: Page, page_errors: PageErrors, port: int) -> None:
    page.goto(f"http://127.0.0.1:{port}/")
    page.click("#go")
    assert page.text_content("#out") == "clicked"
    path = shoot(page, "smoke")
    assert path.read_bytes().startswith(b"\x89PNG")
    page_errors.assert_none()


def test_csp_violations_are_reported(page: Page, page_errors: PageErrors, port: int) -> None:
    page.goto(f"http://127.0.0.1:{port}/inline.html")
    assert page.title() == ""  # the inline script was refused
    assert page_errors.csp_violations(), page_errors.messages


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_secure_cookie_kept_over_http_on_loopback(page: Page, host: str, port: int) -> None:
    page.goto(f"http://{host}:{port}/login")
    page.goto(f"http://{host}:{port}/whoami")
    assert page.text_content("body") == "sid=s3cret"
    assert page.evaluate("document.cookie") == ""  # HttpOnly
