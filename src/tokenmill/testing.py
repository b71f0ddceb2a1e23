"""A real TokenMill server in a subprocess, as a user would run it (`tokenmill up`).

For integration tests and benchmarks, ours and yours.
"""

import os
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tokenmill.core.net import free_port

ADMIN_KEY = "tm-test-admin-key-0123456789abcdefghij"  # for throwaway servers only


@dataclass(frozen=True)
class TlsFiles:
    """A server certificate and its key (PEM), and the CA file that clients trust it by."""

    certfile: Path
    keyfile: Path
    cafile: Path


@dataclass
class ServerProcess:
    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    tls: TlsFiles | None = None  # serve HTTPS (`up --tls-cert/--tls-key`)
    log_path: Path | None = None  # where the server's output goes (default: in data_dir)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """httpx's `verify=` for this server: its CA when it serves HTTPS."""
        return ssl.create_default_context(cafile=self.tls.cafile) if self.tls else True

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TOKENMILL_ADMIN_KEY": ADMIN_KEY,
            "TOKENMILL_CONFIG_DIR": str(self.data_dir / "cli-config"),
            "TOKENMILL_URL": self.url,
            **self.extra_env,
        }

    def start(
        self, timeout: float = 120.0, default_model: bool = True, allow_failed: bool = False
    ) -> "ServerProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tokenmill", "up", "--port", str(self.port),
             "--data-dir", str(self.data_dir),
             "--default-model" if default_model else "--no-default-model",
             *(["--tls-cert", str(self.tls.certfile), "--tls-key", str(self.tls.keyfile)]
               if self.tls else [])],
            stdout=log, stderr=subprocess.STDOUT, env=self.env,
        )  # fmt: skip
        self.wait_ready(timeout, allow_failed)
        return self

    def wait_ready(self, timeout: float, allow_failed: bool = False) -> None:
        """Until the gateway answers and every replica is ready (or, if allowed, its
        deployment has failed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()[-3000:]}")
            try:
                deps = self.admin("GET", "/admin/deployments")["data"]
                if all(
                    d["ready_replicas"] == d["replicas"]
                    or (allow_failed and d["state"] == "failed")
                    for d in deps
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready in {timeout}s: {self.output()[-3000:]}")

    @property
    def log_file(self) -> Path:
        return self.log_path or self.data_dir / "server.out"

    def output(self) -> str:
        return self.log_file.read_text(errors="replace")

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = httpx.request(
            method, self.url + path, headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=30, verify=self.verify, **kwargs,
        )  # fmt: skip
        resp.raise_for_status()
        return resp.json()

    def new_tenant_key(self, tenant: str) -> str:
        self.admin("POST", "/admin/tenants", json={"name": tenant})
        return self.new_key(tenant)

    def new_key(self, tenant: str, role: str = "member", **spec: Any) -> str:
        """A key for an existing tenant (platform roles: tenant 'system'), with any limits."""
        body = {"tenant": tenant, "role": role, **spec}
        return str(self.admin("POST", "/admin/keys", json=body)["key"])

    def metrics(self) -> str:
        """The Prometheus exposition, read as a scraper would (with an operator-grade key)."""
        resp = httpx.get(self.url + "/metrics", timeout=10, verify=self.verify,
                         headers={"Authorization": f"Bearer {ADMIN_KEY}"})  # fmt: skip
        resp.raise_for_status()
        return resp.text

    def audit_records(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        params = {"after": 0, "limit": 1000}
        while True:  # each read is audited too: stop at a short page, not an empty one
            page = self.admin("GET", "/admin/audit", params=params)["data"]
            out += page
            if len(page) < params["limit"]:
                return out
            params["after"] = page[-1]["seq"]

    def usage(self, group_by: str = "tenant") -> list[dict[str, Any]]:
        return list(self.admin("GET", "/admin/usage", params={"group_by": group_by})["data"])

    def tenant_usage(
        self, tenant: str, requests: int, group_by: str = "tenant", timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """The tenant's ledger rows once they count `requests` (the ledger writer batches);
        whatever they hold at `timeout` otherwise, for the caller's assertion to judge."""
        deadline = time.monotonic() + timeout
        while True:
            rows = [r for r in self.usage(group_by) if r["tenant"] == tenant]
            if sum(r["requests"] for r in rows) >= requests or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM, as Ctrl-C or a service manager would; returns the exit code."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


# A small, real filesystem: a tmpfs mounted in a private mount namespace (`unshare -rm`), so
# no root and no trace on the host are needed where the kernel allows unprivileged namespaces.
# The network is the host's: a server started inside still listens on the host's 127.0.0.1.


def small_disk_unavailable() -> str | None:
    """None if a small disk can be made here, else the reason it cannot."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"this kernel refuses a private tmpfs: {probe.stderr.strip()}"
    return None


def run_on_small_disk(
    mountpoint: Path, size: str, argv: list[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run `argv` with a `size` tmpfs (e.g. "20m") mounted at `mountpoint` (created if need
    be) that only it and its children see."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    script = (
        f"mount -t tmpfs -o size={shlex.quote(size)},mode=0700 tmpfs {shlex.quote(str(mountpoint))}"
        f" && exec {shlex.join(argv)}"
    )
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def fill_disk(directory: Path) -> Path:
    """Write a file until the filesystem has no room left; delete it to give the room back."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            block = b"\0" * chunk
            try:
                while True:
                    f.write(block)
            except OSError:
                continue
    return filler
