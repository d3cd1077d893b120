"""The task cache index (kfp-facts §4.4): fingerprints and the outputs a cache hit reuses.

Entries are per pipeline name and namespace, not per run; the newest entry wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from stepwell.errors import InvalidArgument
from stepwell.server import Database
from stepwell_metadata.models import CacheEntryRow


@dataclass(frozen=True)
class CacheEntry:
    id: int
    pipeline_name: str
    namespace: str
    fingerprint: str
    run_id: str
    task_name: str
    execution_id: int
    outputs: dict[str, Any]
    create_time: datetime | None


def _entry(row: CacheEntryRow) -> CacheEntry:
    return CacheEntry(
        id=row.id,
        pipeline_name=row.pipeline_name,
        namespace=row.namespace,
        fingerprint=row.fingerprint,
        run_id=row.run_id,
        task_name=row.task_name,
        execution_id=row.execution_id,
        outputs=dict(row.outputs or {}),
        create_time=row.create_time,
    )


class CacheIndex:
    """Reads and writes cache entries, one transaction per call."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, entry: CacheEntry) -> CacheEntry:
        if not entry.fingerprint:
            raise InvalidArgument("entry.fingerprint is required")
        if not entry.pipeline_name:
            raise InvalidArgument("entry.pipeline_name is required")
        with self.db.session() as s:
            row = CacheEntryRow(
                pipeline_name=entry.pipeline_name,
                namespace=entry.namespace,
                fingerprint=entry.fingerprint,
                run_id=entry.run_id,
                task_name=entry.task_name,
                execution_id=entry.execution_id,
                outputs=entry.outputs,
            )
            s.add(row)
            s.flush()
            return _entry(row)

    def lookup(self, pipeline_name: str, namespace: str, fingerprint: str) -> CacheEntry | None:
        with self.db.session() as s:
            row = s.scalar(
                select(CacheEntryRow)
                .where(
                    CacheEntryRow.pipeline_name == pipeline_name,
                    CacheEntryRow.namespace == namespace,
                    CacheEntryRow.fingerprint == fingerprint,
                )
                .order_by(CacheEntryRow.create_time.desc(), CacheEntryRow.id.desc())
                .limit(1)
            )
            return _entry(row) if row is not None else None

    def list(self, pipeline_name: str = "", namespace: str = "", limit: int = 0) -> list[CacheEntry]:
        query = select(CacheEntryRow).order_by(CacheEntryRow.create_time.desc(), CacheEntryRow.id.desc())
        if pipeline_name:
            query = query.where(CacheEntryRow.pipeline_name == pipeline_name, CacheEntryRow.namespace == namespace)
        if limit > 0:
            query = query.limit(limit)
        with self.db.session() as s:
            return [_entry(r) for r in s.scalars(query)]

    def delete(self, pipeline_name: str = "", namespace: str = "", fingerprint: str = "") -> int:
        query = delete(CacheEntryRow)
        if pipeline_name:
            query = query.where(CacheEntryRow.pipeline_name == pipeline_name, CacheEntryRow.namespace == namespace)
        if fingerprint:
            query = query.where(CacheEntryRow.fingerprint == fingerprint)
        with self.db.session() as s:
            return int(s.execute(query).rowcount or 0)  # type: ignore[attr-defined]
