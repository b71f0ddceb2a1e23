"""Applies the audit log's retention period: prunes expired records once an hour."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from tokenmill.core.periodic import Periodic
from tokenmill.security.audit import AuditLog

log = logging.getLogger(__name__)
EVERY_S = 3600.0


class AuditRetention:
    def __init__(self, audit: AuditLog, days: int) -> None:
        self._audit = audit
        self._keep = timedelta(days=days)
        self._loop = Periodic("audit retention", EVERY_S, self.prune)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def prune(self) -> None:
        before = datetime.now(UTC) - self._keep
        pruned = await asyncio.to_thread(self._audit.prune, before)
        if pruned:
            log.info("audit retention: pruned %d records older than %s", pruned, before)
