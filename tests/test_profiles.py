"""Compliance profiles: the defaults each fills in, the rules `tokenmill doctor` checks, and
what the finance profile enforces on a real server."""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tokenmill.config import Settings
from tokenmill.core.usage import MeteringHealth
from tokenmill.security.doctor import Facts, examine
from tokenmill.security.pii import PiiMode
from tokenmill.security.profiles import Profile, is_local_endpoint
from tokenmill.store.db import make_engine, sqlite_url
from tokenmill.testing import ADMIN_KEY, ServerProcess, TlsFiles


def test_a_profile_fills_only_what_is_left_unset():
    plant = Settings(profile="manufacturing")
    assert (plant.queue_wait_s, plant.scale_down_after_s, plant.pii_mode) == (20.0, 600.0, "off")
    assert Settings(profile="manufacturing", queue_wait_s=5).queue_wait_s == 5
    assert Settings().pii_mode is PiiMode.OFF
    assert Settings(pii_mode="log").pii_mode is PiiMode.LOG


def test_finance_will_not_run_without_tls(tls_files: TlsFiles):
    with pytest.raises(ValueError, match="finance profile requires TLS"):
        Settings(profile="finance")
    bank = Settings(
        profile="finance", tls_certfile=tls_files.certfile, tls_keyfile=tls_files.keyfile
    )
    assert bank.pii_mode is PiiMode.MASK


def test_local_endpoints_are_loopback_or_private():
    assert is_local_endpoint("http://127.0.0.1:8000/v1") and is_local_endpoint("http://10.1.2.3")
    assert not is_local_endpoint("https://api.openai.com/v1")
    assert not is_local_endpoint("http://8.8.8.8/v1")


def _facts(profile: Profile, **overrides) -> Facts:
    base = dict(
        profile=profile,
        host="0.0.0.0",
        tls=False,
        pii_mode=PiiMode.LOG,
        tenant_pii_modes={"acme": PiiMode.OFF},
        audit_ok=True,
        audit_reason=None,
        audit_retention_days=90,
        deployments=[{"name": "gpt", "endpoint": "https://api.example.com/v1", "max_replicas": 1}],
        keys=[
            {
                "id": "key_1",
                "role": "member",
                "scopes": ["inference"],
                "budget_tokens": None,
                "expires_at": None,
            }
        ],
    )
    return Facts(**(base | overrides))


def _status(findings) -> dict[str, str]:
    return {f.check: f.status for f in findings}


def test_the_doctor_fails_finance_on_each_broken_rule():
    status = _status(examine(_facts(Profile.FINANCE)))
    for check in ("tls", "pii", "audit-retention", "local-models", "budgets"):
        assert status[check] == "fail", check
    assert status["key-expiry"] == "warn"
    fixed = _facts(
        Profile.FINANCE,
        tls=True,
        pii_mode=PiiMode.MASK,
        tenant_pii_modes={},
        audit_retention_days=365,
        deployments=[],
        keys=[
            {
                "id": "k",
                "role": "agent",
                "scopes": ["inference"],
                "budget_tokens": 10,
                "expires_at": "2027-01-01",
            }
        ],
    )
    assert all(f.status == "ok" for f in examine(fixed))


def test_the_same_facts_only_warn_an_sme_and_a_plant_hears_about_failover():
    sme = _status(examine(_facts(Profile.SME)))
    assert "fail" not in sme.values() and sme["tls"] == "warn" and sme["pii"] == "ok"
    assert "budgets" not in sme
    plant = _status(examine(_facts(Profile.MANUFACTURING)))
    assert plant["failover"] == "warn"


def test_a_broken_audit_chain_fails_every_profile():
    for profile in Profile:
        assert (
            _status(examine(_facts(profile, audit_ok=False, audit_reason="x")))["audit-chain"]
            == "fail"
        )


def _finance(tmp_path: Path, tls_files: TlsFiles) -> ServerProcess:
    return ServerProcess(
        tmp_path / "bank", tls=tls_files, extra_env={"TOKENMILL_PROFILE": "finance"}
    )


def _doctor(srv: ServerProcess) -> subprocess.CompletedProcess[str]:
    env = {**srv.env, "SSL_CERT_FILE": str(srv.tls.cafile)} if srv.tls else srv.env
    return subprocess.run(
        [sys.executable, "-m", "tokenmill", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_finance_server_enforces_its_rules(tmp_path: Path, tls_files: TlsFiles):
    srv = _finance(tmp_path, tls_files).start(timeout=60, default_model=False)
    try:
        assert _doctor(srv).returncode == 0
        http = httpx.Client(
            base_url=srv.url,
            verify=srv.verify,
            timeout=30,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        http.post("/admin/tenants", json={"name": "bank-desk"}).raise_for_status()
        unbudgeted = http.post("/admin/keys", json={"tenant": "bank-desk"})
        assert unbudgeted.status_code == 400
        assert unbudgeted.json()["error"]["code"] == "profile_denied"
        assert (
            http.post(
                "/admin/keys", json={"tenant": "bank-desk", "budget_tokens": 10_000}
            ).status_code
            == 201
        )
        remote = http.post(
            "/admin/deployments",
            json={"name": "cloud", "engine": "openai", "endpoint": "https://api.example.com/v1"},
        )
        assert remote.status_code == 403 and remote.json()["error"]["code"] == "profile_denied"
        http.patch("/admin/tenants/bank-desk", json={"pii_mode": "log"}).raise_for_status()
        report = _doctor(srv)
        assert report.returncode == 1 and "pii" in report.stdout and "bank-desk" in report.stdout
    finally:
        srv.stop()


def test_a_finance_server_will_not_start_on_a_tampered_audit_log(tmp_path, tls_files):
    srv = _finance(tmp_path, tls_files).start(timeout=60, default_model=False)
    srv.stop()
    with make_engine(sqlite_url(srv.data_dir)).begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'someone else' WHERE seq = 1"))
    with pytest.raises(RuntimeError, match="audit log does not verify at record 1"):
        srv.start(timeout=60, default_model=False)


@pytest.mark.parametrize("profile", list(Profile))
def test_the_doctor_fails_metering_that_cannot_write_on_every_profile(profile: Profile):
    held = MeteringHealth(3, "No space left on device", 0, 0.0, None)
    [finding] = [f for f in examine(_facts(profile, metering=held)) if f.check == "metering"]
    assert finding.status == "fail" and "3 record(s) held in memory" in finding.detail
    stuck = MeteringHealth(0, None, 40, 12.0, "database or disk is full")
    [finding] = [f for f in examine(_facts(profile, metering=stuck)) if f.check == "metering"]
    assert finding.status == "fail" and "40 record(s) wait in the journal" in finding.detail
    slow = MeteringHealth(0, None, 900, 75.0, None)
    assert _status(examine(_facts(profile, metering=slow)))["metering"] == "warn"
    fine = MeteringHealth(0, None, 2, 0.05, None)
    assert _status(examine(_facts(profile, metering=fine)))["metering"] == "ok"
