"""Nodes drained for maintenance (cordoned): the controller places no replica on them, whether a
new one, a restart or a replacement, until they are undrained. Kept in the database, so a
drained node stays drained across restarts of TokenMill; read from memory when placing."""

import time
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from tokenmill.store.tables import NodeCordon


class Cordons:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._rows: dict[str, NodeCordon] = {}

    def load(self) -> None:
        with Session(self._engine, expire_on_commit=False) as s:
            self._rows = {r.node: r for r in s.scalars(select(NodeCordon))}

    def names(self) -> frozenset[str]:
        return frozenset(self._rows)

    def add(self, node: str, reason: str) -> None:
        """Blocking (a database write); drained again keeps the first time and reason."""
        if node in self._rows:
            return
        row = NodeCordon(node=node, reason=reason, at=time.time())
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            s.merge(row)
        self._rows[node] = row

    def remove(self, node: str) -> bool:
        """Blocking; whether it was drained."""
        with Session(self._engine) as s, s.begin():
            s.execute(delete(NodeCordon).where(NodeCordon.node == node))
        return self._rows.pop(node, None) is not None

    def view(self, node: str) -> dict[str, Any] | None:
        row = self._rows.get(node)
        return None if row is None else {"node": row.node, "reason": row.reason, "at": row.at}

    def views(self) -> list[dict[str, Any]]:
        return [v for n in sorted(self._rows) if (v := self.view(n)) is not None]
