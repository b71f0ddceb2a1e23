"""Invoice seals: an issued invoice, and the charges it billed, fixed by a hash.

The seal is SHA-256 over the invoice row as stored (its body as the stored JSON text, so a
duplicate key or any edited byte changes it) and over every charge billed to it (ids, tokens,
rule, pico-units), in order. It is kept in `invoice_seals` with an HMAC under the audit key,
and announced (the app writes it into the audit log, whose chain and checkpoints then cover
it). `problems` recomputes every seal: an invoice replaced (`INSERT OR REPLACE`), updated
behind a dropped trigger, deleted, or given or robbed of charges no longer matches.
"""

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Text, cast, select, update
from sqlalchemy.orm import Session

from tokenmill.store.tables import Invoice, InvoiceSeal, UsageCharge

Signer = Callable[[str], str]
Announce = Callable[[dict[str, Any]], None]


def _canonical(value: object) -> bytes:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode() + b"\n"


def _utc(at: datetime) -> str:
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)).isoformat()


def compute(s: Session, invoice_id: str) -> str | None:
    """The seal of the invoice as it is now stored (None: there is no such invoice)."""
    row = s.execute(
        select(
            Invoice.id,
            Invoice.number,
            Invoice.tenant,
            Invoice.currency,
            Invoice.period_start,
            Invoice.period_end,
            Invoice.issued_at,
            Invoice.tax_rate,
            cast(Invoice.body, Text).label("body"),
        ).where(Invoice.id == invoice_id)
    ).one_or_none()
    if row is None:
        return None
    digest = hashlib.sha256(_canonical({**row._asdict(), "issued_at": _utc(row.issued_at)}))
    charges = (
        select(
            UsageCharge.request_id,
            UsageCharge.token_class,
            UsageCharge.tenant,
            UsageCharge.model,
            UsageCharge.created_at,
            UsageCharge.tokens,
            UsageCharge.rule_id,
            UsageCharge.currency,
            UsageCharge.pico,
        )
        .where(UsageCharge.invoice_id == invoice_id)
        .order_by(UsageCharge.request_id, UsageCharge.token_class)
    )
    for charge in s.execute(charges):
        digest.update(_canonical(list(charge)))
    return digest.hexdigest()


class InvoiceSeals:
    def __init__(self, sign: Signer, announce: Announce | None = None) -> None:
        self._sign = sign
        self._announce = announce

    def _mac(self, invoice_id: str, seal: str) -> str:
        return self._sign(f"invoice:{invoice_id}:{seal}")

    def seal(self, s: Session, invoice_id: str) -> dict[str, Any]:
        """Seal an invoice being issued, in its transaction (charges already billed to it).
        Returns what to `announce` once the transaction commits."""
        seal = compute(s, invoice_id)
        if seal is None:
            raise ValueError(f"no invoice {invoice_id} to seal")
        s.add(
            InvoiceSeal(
                invoice_id=invoice_id,
                seal=seal,
                mac=self._mac(invoice_id, seal),
                sealed_at=datetime.now(UTC),
            )
        )
        return {"invoice": invoice_id, "seal": seal}

    def announce(self, sealed: list[dict[str, Any]]) -> None:
        if self._announce is not None:
            for item in sealed:
                self._announce(item)

    def seal_legacy(self, engine: Engine) -> list[dict[str, Any]]:
        """Seal the invoices issued before seals existed (migration 0011 left their rows
        empty; the trigger lets an empty row be filled once). Announced as legacy."""
        sealed = []
        with Session(engine) as s, s.begin():
            for invoice_id in s.scalars(
                select(InvoiceSeal.invoice_id).where(InvoiceSeal.seal.is_(None))
            ).all():
                seal = compute(s, invoice_id)
                if seal is None:
                    continue  # `problems` names it: a seal row without its invoice
                s.execute(
                    update(InvoiceSeal)
                    .where(InvoiceSeal.invoice_id == invoice_id)
                    .values(seal=seal, mac=self._mac(invoice_id, seal), sealed_at=datetime.now(UTC))
                )
                sealed.append({"invoice": invoice_id, "seal": seal, "legacy": True})
        self.announce(sealed)
        return sealed

    def problems(self, engine: Engine) -> list[str]:
        """Every invoice whose seal is absent, unsigned or no longer matches; seals without
        their invoice; charges billed to an invoice that does not exist."""
        out = []
        with Session(engine) as s:
            seals = {r.invoice_id: r for r in s.scalars(select(InvoiceSeal))}
            invoices = s.execute(select(Invoice.id, Invoice.number).order_by(Invoice.id)).all()
            # An invoice commits with its seal: one issued after the seals were read has its
            # seal now (the seals first, so a seal read always finds its invoice).
            unread = [i for i, _ in invoices if i not in seals]
            if unread:
                query = select(InvoiceSeal).where(InvoiceSeal.invoice_id.in_(unread))
                seals |= {r.invoice_id: r for r in s.scalars(query)}
            for invoice_id, number in invoices:
                row = seals.pop(invoice_id, None)
                name = f"invoice {number} ({invoice_id})"
                if row is None:
                    out.append(f"{name} has no seal: it was not issued by TokenMill")
                elif row.seal is None or row.mac is None:
                    out.append(f"{name} is not sealed yet (issued before seals; start seals it)")
                elif not hmac.compare_digest(row.mac, self._mac(invoice_id, row.seal)):
                    out.append(f"{name}: its seal is not signed with the audit key")
                elif compute(s, invoice_id) != row.seal:
                    out.append(f"{name} or the charges it billed changed after it was issued")
            out += [f"invoice {i} was sealed and is gone" for i in sorted(seals)]
            orphans = s.scalars(
                select(UsageCharge.invoice_id)
                .where(
                    UsageCharge.invoice_id.is_not(None),
                    UsageCharge.invoice_id.not_in(select(Invoice.id)),
                )
                .distinct()
            )
            out += [f"charges are billed to invoice {i}, which does not exist" for i in orphans]
        return out

    def current(self, engine: Engine) -> dict[str, str | None]:
        """Each sealed invoice's seal as the table holds it."""
        with Session(engine) as s:
            return dict(s.execute(select(InvoiceSeal.invoice_id, InvoiceSeal.seal)).all())
