"""Several streamed choices relayed as one stream (see gateway/choices.py).

Each choice starts at once and is relayed as soon as its engine answers: a choice waiting for
a slot must not wait for the others to finish, and the others hold their slots until relayed.
The first choice's start decides the HTTP answer (a 429 or 503 is a status, as for one
choice); a later choice that fails ends the stream with its error event and no `[DONE]`.
Each chunk is handed over only once the client has taken the one before it, so what a
choice's stream counts as delivered (and meters, if the client leaves) was delivered.
"""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Generic, TypeVar

import orjson

from tokenmill.core.errors import TokenMillError, UpstreamError
from tokenmill.gateway.choices import StreamMerger

S = TypeVar("S")  # a choice's engine stream, begun but not yet relayed


class ChoiceStreams(Generic[S]):
    def __init__(
        self,
        starts: list["asyncio.Task[S]"],
        relay: Callable[[S], AsyncGenerator[bytes, None]],
        discard: Callable[[S], None],
    ) -> None:
        self._starts = starts
        self._relay = relay
        self._discard = discard  # a begun stream no client will read: stop it, meter it

    async def begin(self) -> AsyncIterator[bytes]:
        """Once the first choice's engine has answered: the merged stream. Its failure is
        raised, and every other choice is stopped."""
        try:
            await asyncio.wait([self._starts[0]])
            self._starts[0].result()
        except BaseException:
            await self._abandon()
            raise
        return self._merged()

    async def _abandon(self) -> None:
        for task in self._starts:
            task.cancel()
        await asyncio.gather(*self._starts, return_exceptions=True)
        for task in self._starts:
            self._drop_unread(task)

    def _drop_unread(self, task: "asyncio.Task[S]") -> None:
        if not task.done():
            task.cancel()  # its own cleanup meters what it began
        elif not task.cancelled() and task.exception() is None:
            self._discard(task.result())

    async def _merged(self) -> AsyncGenerator[bytes, None]:
        handoff: asyncio.Queue[tuple[int, bytes | None, asyncio.Future[None] | None]]
        handoff = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def pump(part: int, start: "asyncio.Task[S]") -> None:
            relayed = False
            try:
                try:
                    stream = await start
                except Exception as exc:  # this choice never began: the client is told
                    handoff.put_nowait((part, _error_event(exc), None))
                    return
                relayed = True
                relay = self._relay(stream)
                try:
                    async for event in relay:
                        taken = loop.create_future()
                        handoff.put_nowait((part, event, taken))
                        await taken
                finally:
                    await relay.aclose()  # meters what was delivered, if it stopped early
            finally:
                if not relayed:
                    self._drop_unread(start)
                handoff.put_nowait((part, None, None))

        merger = StreamMerger(len(self._starts))
        pumps = [asyncio.create_task(pump(i, t)) for i, t in enumerate(self._starts)]
        try:
            running = len(pumps)
            while running:
                part, event, taken = await handoff.get()
                if event is None:
                    running -= 1
                    continue
                out = merger.chunk(part, event)
                if out is not None:
                    yield out
                if taken is not None:
                    taken.set_result(None)
            for event in merger.tail():
                yield event
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)


def _error_event(exc: Exception) -> bytes:
    err = exc if isinstance(exc, TokenMillError) else UpstreamError(type(exc).__name__)
    return b"data: " + orjson.dumps(err.body()) + b"\n\n"
