"""A step run every so often on the event loop until stopped; a failing step is logged and
tried again next time, so one bad pass never ends the loop."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    def __init__(
        self,
        name: str,
        every_s: float,
        step: Callable[[], Awaitable[object]],
        first_after_s: float = 0.0,
    ) -> None:
        self.name = name
        self.every_s = every_s
        self._step = step
        self._first_after_s = first_after_s  # e.g. a step just done at start: not again now
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        await asyncio.sleep(self._first_after_s)
        while True:
            try:
                await self._step()
            except Exception:
                log.exception("%s failed; trying again in %.0f s", self.name, self.every_s)
            await asyncio.sleep(self.every_s)
