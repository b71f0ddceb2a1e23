"""TLS termination in the gateway: a real server on a certificate from a throwaway CA."""

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from pydantic import ValidationError
from typer.testing import CliRunner

from tokenmill.cli.main import app as cli
from tokenmill.config import Settings
from tokenmill.testing import ServerProcess, TlsFiles

SECURE = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "strict-transport-security": "max-age=31536000",
}


def _issue(ca: trustme.CA, directory: Path) -> tuple[Path, Path]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = directory / "server.pem", directory / "server.key"
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    return certfile, keyfile


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles
) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("tls-server"), tls=tls_files)
    srv.start(timeout=60, default_model=False)  # no engine: the gateway is what is tested
    yield srv
    srv.stop()


def test_https_with_the_ca_answers_with_the_secure_headers_and_hsts(tls_server):
    assert tls_server.url.startswith("https://")
    resp = httpx.get(tls_server.url + "/health", verify=tls_server.verify)
    assert resp.status_code == 200
    assert {name: resp.headers.get(name) for name in SECURE} == SECURE
    assert f"serving at {tls_server.url}/v1" in tls_server.output()  # the banner says https


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/admin/tenants")],
)
def test_errors_over_https_carry_the_headers_too(tls_server, method, path):
    # The chat route is served outside FastAPI (hot path): the middleware must sit above it.
    resp = httpx.request(method, tls_server.url + path, verify=tls_server.verify)
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "authentication_error"
    assert {name: resp.headers.get(name) for name in SECURE} == SECURE
    assert resp.headers["x-request-id"]


def test_a_client_without_the_ca_refuses_the_certificate(tls_server):
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(tls_server.url + "/health")


def test_plain_http_to_the_tls_port_gets_no_answer(tls_server):
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{tls_server.port}/health", timeout=5)


def test_binds_to_loopback_by_default(tls_server, monkeypatch):
    monkeypatch.delenv("TOKENMILL_HOST", raising=False)
    assert Settings().host == "127.0.0.1"
    # and the server (started without --host) listens there alone
    assert _listening_on(tls_server.port) == {"127.0.0.1"}


def _listening_on(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port` (Linux /proc; IPv6 ones as hex)."""
    found = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        lines = table.read_text().splitlines()[1:] if table.exists() else []  # no IPv6: no tcp6
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                v4 = len(addr) == 8
                found.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]) if v4 else addr)
    return found


@pytest.mark.parametrize("given", ["tls_certfile", "tls_keyfile"])
def test_settings_refuse_one_tls_file_without_the_other(tmp_path, given):
    with pytest.raises(ValidationError, match="TLS needs both a certificate and its private key"):
        Settings(**{given: tmp_path / "x.pem"})


def test_settings_take_the_tls_files_from_the_environment(tls_files, monkeypatch):
    monkeypatch.setenv("TOKENMILL_TLS_CERTFILE", str(tls_files.certfile))
    monkeypatch.setenv("TOKENMILL_TLS_KEYFILE", str(tls_files.keyfile))
    settings = Settings()
    assert (settings.tls_certfile, settings.tls_keyfile) == (tls_files.certfile, tls_files.keyfile)


def _up(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["up", "--data-dir", str(tmp_path / "data"), *args])
    return result.exit_code, " ".join(result.output.split())  # unwrapped for matching


def test_up_fails_fast_on_one_tls_file(tmp_path, tls_files):
    code, out = _up(tmp_path, "--tls-cert", str(tls_files.certfile))
    assert code == 2
    assert "TLS needs both a certificate and its private key" in out and "--tls-key" in out


def test_up_fails_fast_on_a_missing_tls_file(tmp_path, tls_files):
    missing = tmp_path / "nope.key"
    code, out = _up(tmp_path, "--tls-cert", str(tls_files.certfile), "--tls-key", str(missing))
    assert code == 2
    assert f"Cannot read the TLS key {missing}: No such file or directory" in out


def test_up_fails_fast_on_a_key_of_another_certificate(tmp_path, tls_files):
    _, other_key = _issue(trustme.CA(), tmp_path)
    code, out = _up(tmp_path, "--tls-cert", str(tls_files.certfile), "--tls-key", str(other_key))
    assert code == 2
    assert "The TLS certificate and key do not load" in out
    assert not (tmp_path / "data").exists()  # refused before anything was set up
