"""The triggers that keep invoices immutable, checked at start and by `doctor`.

A trigger dropped (or, in SQLite, replaced by one that does nothing) lets an issued invoice be
edited; seals show the edit afterwards, and these checks show the open door. The statements
are those of migrations 0006 and 0011 (a test keeps the two in step); `restore` recreates
what is missing.
"""

import re
from dataclasses import dataclass

from sqlalchemy import Engine, text

_IMMUTABLE = "invoices are immutable: corrections go into a later invoice"
_SEALED = "invoice seals are written once"


@dataclass(frozen=True)
class Trigger:
    name: str
    table: str
    create: str


SQLITE = [
    Trigger("invoices_no_update", "invoices",
            "CREATE TRIGGER invoices_no_update BEFORE UPDATE ON invoices "
            f"BEGIN SELECT RAISE(ABORT, '{_IMMUTABLE}'); END"),
    Trigger("invoices_no_delete", "invoices",
            "CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices "
            f"BEGIN SELECT RAISE(ABORT, '{_IMMUTABLE}'); END"),
    Trigger("invoices_no_replace", "invoices",
            "CREATE TRIGGER invoices_no_replace BEFORE INSERT ON invoices "
            "WHEN EXISTS (SELECT 1 FROM invoices WHERE id = NEW.id OR number = NEW.number "
            "OR (tenant = NEW.tenant AND period_start = NEW.period_start "
            "AND currency = NEW.currency)) "
            "BEGIN SELECT RAISE(ABORT, 'invoices are immutable: corrections go into a later "
            "invoice'); END"),
    Trigger("charges_billed_no_update", "usage_charges",
            "CREATE TRIGGER charges_billed_no_update BEFORE UPDATE ON usage_charges "
            f"WHEN OLD.invoice_id IS NOT NULL BEGIN SELECT RAISE(ABORT, '{_IMMUTABLE}'); END"),
    Trigger("charges_billed_no_delete", "usage_charges",
            "CREATE TRIGGER charges_billed_no_delete BEFORE DELETE ON usage_charges "
            f"WHEN OLD.invoice_id IS NOT NULL BEGIN SELECT RAISE(ABORT, '{_IMMUTABLE}'); END"),
    Trigger("charges_billed_no_replace", "usage_charges",
            "CREATE TRIGGER charges_billed_no_replace BEFORE INSERT ON usage_charges "
            "WHEN EXISTS (SELECT 1 FROM usage_charges WHERE request_id = NEW.request_id "
            "AND token_class = NEW.token_class AND invoice_id IS NOT NULL) "
            "BEGIN SELECT RAISE(IGNORE); END"),
    Trigger("invoice_seals_no_update", "invoice_seals",
            "CREATE TRIGGER invoice_seals_no_update BEFORE UPDATE ON invoice_seals "
            "WHEN OLD.seal IS NOT NULL OR NEW.invoice_id IS NOT OLD.invoice_id "
            f"BEGIN SELECT RAISE(ABORT, '{_SEALED}'); END"),
    Trigger("invoice_seals_no_delete", "invoice_seals",
            "CREATE TRIGGER invoice_seals_no_delete BEFORE DELETE ON invoice_seals "
            f"BEGIN SELECT RAISE(ABORT, '{_SEALED}'); END"),
    Trigger("invoice_seals_no_replace", "invoice_seals",
            "CREATE TRIGGER invoice_seals_no_replace BEFORE INSERT ON invoice_seals "
            "WHEN EXISTS (SELECT 1 FROM invoice_seals WHERE invoice_id = NEW.invoice_id) "
            "BEGIN SELECT RAISE(ABORT, 'invoice seals are written once'); END"),
]  # fmt: skip

_PG_FUNCTIONS = [
    f"""CREATE OR REPLACE FUNCTION tokenmill_immutable() RETURNS trigger AS $$
        BEGIN
          IF TG_TABLE_NAME = 'invoices' OR OLD.invoice_id IS NOT NULL THEN
            RAISE EXCEPTION '{_IMMUTABLE}';
          END IF;
          RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END $$ LANGUAGE plpgsql""",
    f"""CREATE OR REPLACE FUNCTION tokenmill_seal_immutable() RETURNS trigger AS $$
        BEGIN
          IF TG_OP = 'DELETE' OR OLD.seal IS NOT NULL OR NEW.invoice_id <> OLD.invoice_id THEN
            RAISE EXCEPTION '{_SEALED}';
          END IF;
          RETURN NEW;
        END $$ LANGUAGE plpgsql""",
    f"""CREATE OR REPLACE FUNCTION tokenmill_no_truncate() RETURNS trigger AS $$
        BEGIN
          RAISE EXCEPTION '{_IMMUTABLE}';
        END $$ LANGUAGE plpgsql""",
]


def _pg(name: str, table: str, when: str, function: str) -> Trigger:
    return Trigger(name, table, f"CREATE TRIGGER {name} BEFORE {when} ON {table} {function}")


_ROW = "FOR EACH ROW EXECUTE FUNCTION"
_STATEMENT = "FOR EACH STATEMENT EXECUTE FUNCTION tokenmill_no_truncate()"
POSTGRES = [
    _pg("invoices_immutable", "invoices", "UPDATE OR DELETE", f"{_ROW} tokenmill_immutable()"),
    _pg("charges_billed_immutable", "usage_charges", "UPDATE OR DELETE",
        f"{_ROW} tokenmill_immutable()"),
    _pg("invoice_seals_immutable", "invoice_seals", "UPDATE OR DELETE",
        f"{_ROW} tokenmill_seal_immutable()"),
    _pg("invoices_no_truncate", "invoices", "TRUNCATE", _STATEMENT),
    _pg("charges_no_truncate", "usage_charges", "TRUNCATE", _STATEMENT),
    _pg("invoice_seals_no_truncate", "invoice_seals", "TRUNCATE", _STATEMENT),
]  # fmt: skip


def expected(engine: Engine) -> list[Trigger]:
    return POSTGRES if engine.dialect.name == "postgresql" else SQLITE


def _same(a: str, b: str) -> bool:
    return re.sub(r"\s+", " ", a).strip() == re.sub(r"\s+", " ", b).strip()


def problems(engine: Engine) -> dict[str, str]:
    """Each expected trigger that is missing, disabled or (SQLite) not as written: why."""
    found: dict[str, str] = {}
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            pg = conn.execute(
                text("SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal")
            )
            state = {str(name): str(enabled) for name, enabled in pg}
            for t in POSTGRES:
                if t.name not in state:
                    found[t.name] = "missing"
                elif state[t.name] == "D":
                    found[t.name] = "disabled"
            return found
        rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
        sql = {str(name): str(body) for name, body in rows}
    for t in SQLITE:
        if t.name not in sql:
            found[t.name] = "missing"
        elif not _same(sql[t.name], t.create):
            found[t.name] = "altered"
    return found


def restore(engine: Engine, names: list[str]) -> None:
    """Recreate the named triggers as the migrations made them."""
    wanted = [t for t in expected(engine) if t.name in names]
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if pg:
            for function in _PG_FUNCTIONS:
                conn.exec_driver_sql(function)
        for t in wanted:
            drop = f"DROP TRIGGER IF EXISTS {t.name}" + (f" ON {t.table}" if pg else "")
            conn.exec_driver_sql(drop)
            conn.exec_driver_sql(t.create)
