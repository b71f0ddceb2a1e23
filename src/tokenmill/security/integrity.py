"""Integrity of what must not change: the audit log (chain, signed head, checkpoints), the
invoices (their seals, against the table and against the audit log) and the database
triggers that keep invoices immutable. `check` is what `audit verify` and `doctor` report;
`at_start` is what a start does about it: restore missing triggers (the `finance` profile
refuses to start instead), begin checkpoint files, seal invoices issued before seals, and
refuse a `finance` start on anything that does not verify.
"""

import logging
from dataclasses import dataclass

from sqlalchemy import Engine

from tokenmill.security.audit import AuditLog, Verdict
from tokenmill.security.profiles import Profile
from tokenmill.store import triggers
from tokenmill.store.seals import InvoiceSeals

log = logging.getLogger(__name__)
INVOICE_SEALED = "invoice.sealed"
TRIGGERS_RESTORED = "store.triggers_restored"
_REFUSED = " (the finance profile will not start on it)"


@dataclass(frozen=True)
class Report:
    audit: Verdict
    seals: list[str]  # invoices whose seal is absent or broken, or differs from the audited one
    triggers: list[str]  # immutability triggers missing, disabled or altered

    @property
    def ok(self) -> bool:
        return self.audit.ok and not self.seals and not self.triggers

    def problems(self) -> list[str]:
        chain = [] if self.audit.ok else [audit_message(self.audit)]
        return [*chain, *self.seals, *self.triggers]


def audit_message(v: Verdict) -> str:
    where = f" at record {v.first_bad_seq}" if v.first_bad_seq is not None else ""
    return f"the audit log does not verify{where}: {v.reason}"


class Integrity:
    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self._engine = engine
        self._audit = audit
        self.seals = InvoiceSeals(audit.sign, self._audit_seal)
        self.last_ok: bool | None = None  # the latest check's verdict (None: none yet)

    def _audit_seal(self, sealed: dict[str, object]) -> None:
        resource = f"invoice:{sealed['invoice']}"
        self._audit.append("tokenmill", INVOICE_SEALED, "ok", resource=resource, detail=sealed)

    def check(self) -> Report:
        broken = triggers.problems(self._engine)
        report = Report(
            self._audit.verify(),
            self.seals.problems(self._engine) + self._against_audit(),
            [f"database trigger {name} is {why}" for name, why in sorted(broken.items())],
        )
        self.last_ok = report.ok
        return report

    def _against_audit(self) -> list[str]:
        """Every seal the audit log recorded (while retention keeps it) is the seal now."""
        audited = self._audit.details(INVOICE_SEALED)  # first: it is written after the seal
        now = self.seals.current(self._engine)
        out = []
        for seq, detail in audited:
            invoice, seal = str(detail.get("invoice")), detail.get("seal")
            if invoice not in now:
                out.append(f"invoice {invoice}, sealed in audit record {seq}, is gone")
            elif now[invoice] != seal:
                out.append(f"invoice {invoice}'s seal is not the one audit record {seq} holds")
        return out

    def at_start(self, profile: Profile) -> list[str]:
        """Returns what to log; raises RuntimeError where the profile refuses to start."""
        notes = []
        broken = triggers.problems(self._engine)
        if broken:
            listing = ", ".join(f"{name} ({why})" for name, why in sorted(broken.items()))
            if profile is Profile.FINANCE:
                raise RuntimeError(
                    f"the database triggers that keep invoices immutable are not in place: "
                    f"{listing}{_REFUSED}; restore them by starting once under another "
                    "profile, after `tokenmill audit verify` shows what changed meanwhile"
                )
            triggers.restore(self._engine, list(broken))
            self._audit.append("tokenmill", TRIGGERS_RESTORED, "ok", resource="database",
                               detail={"triggers": broken})  # fmt: skip
            notes.append(f"database triggers restored: {listing}")
        notes += self._audit.start_checkpoints()
        legacy = self.seals.seal_legacy(self._engine)
        if legacy:
            notes.append(f"sealed {len(legacy)} invoice(s) issued before invoices were sealed")
        report = self.check()
        if not report.ok:
            message = "; ".join(report.problems())
            if profile is Profile.FINANCE:
                raise RuntimeError(message + _REFUSED)
            log.error("%s; `tokenmill audit verify` for details", message)
        return notes
