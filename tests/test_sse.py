"""SSE event splitting: events cut anywhere across network reads come out whole."""

import asyncio

import aiohttp
import pytest

from tokenmill.gateway.sse import sse_events


class _Protocol:  # the minimum StreamReader asks of its transport protocol
    _reading_paused = False

    def pause_reading(self) -> None: ...
    def resume_reading(self, resume_parser: bool = True) -> None: ...


async def _events(blocks: list[bytes]) -> list[bytes]:
    reader = aiohttp.StreamReader(_Protocol(), 2**16, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
    for b in blocks:
        reader.feed_data(b)
    reader.feed_eof()
    return [e async for e in sse_events(reader)]


STREAM = b'data: {"a": 1}\n\n: keep-alive comment\n\ndata: {"b": 2}\n\ndata: [DONE]\n\n'


@pytest.mark.parametrize("cut", [1, 3, 7, 16, len(STREAM)])
def test_events_survive_any_split(cut: int):
    blocks = [STREAM[i : i + cut] for i in range(0, len(STREAM), cut)]
    assert asyncio.run(_events(blocks)) == [b'data: {"a": 1}', b'data: {"b": 2}', b"data: [DONE]"]


def test_crlf_and_unterminated_final_event():
    raw = b'data: {"a": 1}\r\n\r\ndata: [DONE]'
    assert asyncio.run(_events([raw[:15], raw[15:]])) == [b'data: {"a": 1}', b"data: [DONE]"]
