"""Applies the audit log's retention period: prunes expired records once an hour."""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from tokenmill.security.audit import AuditLog

log = logging.getLogger(__name__)
EVERY_S = 3600.0


class AuditRetention:
    def __init__(self, audit: AuditLog, days: int) -> None:
        self._audit = audit
        self._keep = timedelta(days=days)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                before = datetime.now(UTC) - self._keep
                pruned = await asyncio.to_thread(self._audit.prune, before)
                if pruned:
                    log.info("audit retention: pruned %d records older than %s", pruned, before)
            except Exception:  # a failed pass is retried next hour; the log stays intact
                log.exception("audit retention pass failed")
            await asyncio.sleep(EVERY_S)
