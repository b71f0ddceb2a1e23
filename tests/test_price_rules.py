"""Price rules are refused when they cannot be meant (issue 14, finding 7): a contract price for
an empty or unknown tenant, a start in 1970, a start in the past (usage until now is already
rated and would not be repriced). 400s that name the field, in the book and through the API."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tokenmill.billing.prices import PriceBook
from tokenmill.core.errors import InvalidRequest
from tokenmill.store.db import make_engine, migrate, sqlite_url
from tokenmill.store.tables import Tenant
from tokenmill.testing import ADMIN_KEY, ServerProcess

DAY = 86400.0


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    db = make_engine(sqlite_url(tmp_path_factory.mktemp("prices")))
    migrate(db)
    with Session(db) as s, s.begin():
        s.add(Tenant(name="acme", display_name="Acme", created_at=datetime.now(UTC)))
    return db


@pytest.fixture(scope="module")
def book(engine: Engine) -> PriceBook:
    return PriceBook(engine).load()


def _add(book: PriceBook, **kw: Any) -> None:
    now = time.time()
    args: dict[str, Any] = {"effective_from": now, "source": "a test", "not_before": now - 300}
    book.add("m", {"input": "0.01"}, "USD", **(args | kw))


@pytest.mark.parametrize(
    ("kw", "param", "says"),
    [
        ({"effective_from": 0.0}, "effective_from", "1970-01-01T00:00:00+00:00 is before 2000"),
        ({"effective_from": 946684799.0, "not_before": None}, "effective_from", "before 2000"),
        ({"effective_from": time.time() - DAY}, "effective_from", "in the past"),
        ({"tenant": "nobody"}, "tenant", "'nobody' is not a tenant"),
        ({"tenant": ""}, "tenant", "'' is not a tenant"),
    ],
)
def test_the_book_refuses_rules_that_cannot_be_meant(book: PriceBook, kw, param, says):
    before = len(book.rules())
    with pytest.raises(InvalidRequest) as refused:
        _add(book, **kw)
    assert refused.value.param == param and says in refused.value.message
    assert len(book.rules()) == before  # nothing half-added


def test_the_book_takes_a_contract_price_from_now_or_later(book: PriceBook):
    _add(book, tenant="acme")
    _add(book, tenant="acme", effective_from=time.time() + 30 * DAY)
    _add(book, effective_from=time.time() - 60)  # a client's clock a minute behind
    assert sum(r.tenant == "acme" for r in book.rules()) == 2


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(Path(tmp_path_factory.mktemp("prices-api"))).start(default_model=False)
    server.admin("POST", "/admin/tenants", json={"name": "globex"})
    yield server
    server.stop()


def _post(srv: ServerProcess, **fields: Any) -> httpx.Response:
    body = {"model": "smollm2-135m", "input": "0.02", "source": "a test", **fields}
    return httpx.post(srv.url + "/admin/prices", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"})  # fmt: skip


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tenant": ""}, "tenant"),
        ({"tenant": "Not A Name"}, "tenant"),
        ({"tenant": "nobody"}, "tenant"),
        ({"effective_from": "1970-01-01T00:00:00Z"}, "effective_from"),
        ({"effective_from": "1999-12-31T23:59:59Z"}, "effective_from"),
        ({"effective_from": "2026-01-01T00:00:00Z"}, "effective_from"),
        ({"tenant": "globex", "effective_from": _iso(timedelta(days=-1))}, "effective_from"),
    ],
)
def test_post_prices_refuses_them_with_a_400_naming_the_field(srv: ServerProcess, fields, param):
    before = srv.admin("GET", "/admin/prices")["data"]
    resp = _post(srv, **fields)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param, resp.text
    assert srv.admin("GET", "/admin/prices")["data"] == before


def test_post_prices_takes_a_tenant_that_exists_from_now_or_later(srv: ServerProcess):
    now = _post(srv, tenant="globex")
    later = _post(srv, tenant="globex", effective_from=_iso(timedelta(days=7)))
    general = _post(srv)  # every tenant's, from now
    assert (now.status_code, later.status_code, general.status_code) == (201, 201, 201), (
        now.text + later.text + general.text
    )
    [rule] = later.json()["data"]
    assert rule["tenant"] == "globex" and rule["effective_from"] > datetime.now(UTC).isoformat()
