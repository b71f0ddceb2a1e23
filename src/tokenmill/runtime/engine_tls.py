"""TLS between the gateway and an engine on another machine (the `ray` runtime).

The engine binds to its node's loopback only; beside it, in the replica's actor, a relay
listens on the node's address with TLS and passes each connection through to the engine. The
key is made on the node and never leaves it; the controller gets the self-signed certificate
back with the placement and pins it: the gateway trusts that one certificate for that one
replica, nothing else (no CA to run, nothing to rotate: a restart makes a new pair). The
engine's per-process secret still gates every request inside the tunnel.

Any engine works the same way, whatever TLS support of its own it has, or lacks.
"""

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import os
import ssl
import tempfile

log = logging.getLogger(__name__)

VALID_DAYS = 3650  # pinned, so expiry guards nothing; a restart makes a new pair anyway
_CHUNK = 64 * 1024


def self_signed(address: str) -> tuple[bytes, bytes]:
    """A new key and a certificate for `address` (an IP, or a host name): both PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tokenmill replica")])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(address))
    except ValueError:
        alt = x509.DNSName(address)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks a little apart
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def pinned(cert_pem: bytes) -> ssl.SSLContext:
    """A client context that trusts exactly this certificate (and checks the address in it)."""
    return ssl.create_default_context(cadata=cert_pem.decode("ascii"))


def _server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # The ssl module loads a key from a file only: a private folder, gone once loaded.
    with tempfile.TemporaryDirectory(prefix="tokenmill-tls-") as folder:
        cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        context.load_cert_chain(cert_path, key_path)
    return context


class TlsRelay:
    """TLS on `address:port`, each connection passed through to `127.0.0.1:engine_port`."""

    def __init__(self, address: str, port: int, engine_port: int) -> None:
        self.address, self.port, self._engine_port = address, port, engine_port
        self._server: asyncio.Server | None = None

    async def start(self, cert_pem: bytes, key_pem: bytes) -> None:
        context = _server_context(cert_pem, key_pem)
        self._server = await asyncio.start_server(
            self._serve, self.address, self.port, ssl=context, ssl_handshake_timeout=10
        )

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            engine_r, engine_w = await asyncio.open_connection("127.0.0.1", self._engine_port)
        except OSError as exc:  # the engine is not up yet, or gone: the caller sees a reset
            log.info("tls relay: engine port %d: %r", self._engine_port, exc)
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, engine_w), _pipe(engine_r, client_w))

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Bytes from `reader` to `writer` until either side ends; then both directions close."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        writer.close()
