"""The TLS relay in front of an engine on another machine (runtime/engine_tls.py), with a
plain HTTP server on loopback standing for the engine: the gateway's pinned context reaches it,
a context pinned to another replica's certificate does not, nor does plain HTTP."""

import asyncio

import aiohttp
import pytest
from aiohttp import web

from tokenmill.runtime.engine_tls import TlsRelay, pinned, self_signed
from tokenmill.runtime.hosts import free_port_on


async def _engine() -> tuple[web.AppRunner, int]:
    async def hello(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(text=f"engine got {len(body)} bytes")

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/echo", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port_on("127.0.0.1")
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def test_the_pinned_certificate_reaches_the_engine_and_nothing_else_does() -> None:
    async def go() -> None:
        runner, engine_port = await _engine()
        cert, key = self_signed("127.0.0.1")
        other_cert, _ = self_signed("127.0.0.1")
        assert b"PRIVATE KEY" in key and b"PRIVATE KEY" not in cert
        relay = TlsRelay("127.0.0.1", free_port_on("127.0.0.1"), engine_port)
        await relay.start(cert, key)
        url = f"https://127.0.0.1:{relay.port}/v1/echo"
        try:
            async with aiohttp.ClientSession() as http:
                big = b"x" * (5 << 20)  # more than one read of the relay's pipe
                async with http.post(url, data=big, ssl=pinned(cert)) as resp:
                    assert (resp.status, await resp.text()) == (200, f"engine got {5 << 20} bytes")
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await http.post(url, data=b"", ssl=pinned(other_cert))
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await http.post(url, data=b"")  # the system's authorities: not signed
                with pytest.raises(aiohttp.ClientError):
                    plain = url.replace("https://", "http://")
                    await http.post(plain, data=b"", timeout=aiohttp.ClientTimeout(total=5))
        finally:
            await relay.stop()
            await runner.cleanup()

    asyncio.run(go())


def test_a_certificate_names_the_address_it_is_for() -> None:
    from cryptography import x509

    def names(cert: bytes) -> list[str]:
        san = x509.load_pem_x509_certificate(cert).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        return [str(n.value) for n in san.value]

    assert names(self_signed("10.1.2.3")[0]) == ["10.1.2.3"]  # an IP address entry
    assert names(self_signed("gpu-node-7.internal")[0]) == ["gpu-node-7.internal"]
    assert pinned(self_signed("10.1.2.3")[0]).check_hostname  # and the client checks it
