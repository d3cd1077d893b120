"""Stored pipelines and their versions: upload, create, get, list, delete.

An upload creates the pipeline and its first version in one transaction; a duplicate
name is :class:`AlreadyExists` (HTTP 409). Every spec is checked (schema 2.1.0, the
IR's references) before anything is written.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import PurePosixPath

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stepwell.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from stepwell.ir import PipelineSpecDoc, load_pipeline_spec
from stepwell.server import Database
from stepwell_api.listing import Field, Listing, ListRequest
from stepwell_api.models import NAME_LENGTH, NAMESPACE_LENGTH, PipelineRow, PipelineVersionRow
from stepwell_api.models import utcnow as _now
from stepwell_api.packages import DEFAULT_MAX_BYTES, fetch_package, read_package
from stepwell_api.resources import (
    MetadataChange,
    NewPipeline,
    NewVersion,
    Pipeline,
    PipelineVersion,
    from_row,
)

log = logging.getLogger(__name__)

MAX_TAGS = 20
TAG_LENGTH = 63

PIPELINES = Listing(
    key=PipelineRow.pipeline_id,
    fields={
        "pipeline_id": Field(PipelineRow.pipeline_id),
        "display_name": Field(PipelineRow.display_name),
        "name": Field(PipelineRow.name),
        "created_at": Field(PipelineRow.created_at, "time"),
        "description": Field(PipelineRow.description),
        "namespace": Field(PipelineRow.namespace),
    },
    tags_column=PipelineRow.tags,
)
VERSIONS = Listing(
    key=PipelineVersionRow.pipeline_version_id,
    fields={
        "pipeline_version_id": Field(PipelineVersionRow.pipeline_version_id),
        "display_name": Field(PipelineVersionRow.display_name),
        "name": Field(PipelineVersionRow.name),
        "created_at": Field(PipelineVersionRow.created_at, "time"),
        "description": Field(PipelineVersionRow.description),
    },
    tags_column=PipelineVersionRow.tags,
)


def check_tags(where: str, tags: dict[str, str]) -> dict[str, str]:
    """KFP's tag rules: at most 20; keys and values at most 63 characters; no "." in keys."""
    if len(tags) > MAX_TAGS:
        raise InvalidArgument(f"{where}.tags has {len(tags)} entries; at most {MAX_TAGS} are allowed")
    for key, value in tags.items():
        if not key or len(key) > TAG_LENGTH or "." in key:
            raise InvalidArgument(f"{where}.tags key {key!r} must be 1-{TAG_LENGTH} characters without '.'")
        if len(value) > TAG_LENGTH:
            raise InvalidArgument(f"{where}.tags[{key!r}] is longer than {TAG_LENGTH} characters")
    return dict(tags)


def _names(where: str, name: str, display_name: str, fallback: str = "") -> tuple[str, str]:
    name, display_name = name.strip(), display_name.strip()
    name = name or display_name or fallback
    display_name = display_name or name
    if not name:
        raise InvalidArgument(f"{where}.name or {where}.display_name is required")
    if len(name) > NAME_LENGTH:
        raise InvalidArgument(f"{where}.name is longer than {NAME_LENGTH} characters")
    return name, display_name


def _apply(row: PipelineRow | PipelineVersionRow, where: str, change: MetadataChange) -> None:
    for name, value in change.fixed.items():
        if value != getattr(row, name):
            raise InvalidArgument(f"{where}.{name} cannot change (only display_name, description and tags can)")
    if change.display_name is not None:
        display_name = change.display_name.strip()
        if not display_name:
            raise InvalidArgument(f"{where}.display_name cannot be empty")
        row.display_name = display_name
    if change.description is not None:
        row.description = change.description
    if change.tags is not None:
        row.tags = check_tags(where, change.tags)


def _stem(filename: str) -> str:
    base = PurePosixPath(filename.replace("\\", "/")).name
    for suffix in (".tar.gz", ".tgz", ".yaml", ".yml", ".json", ".zip"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


class PipelineService:
    """Pipelines and versions in ``api_pipelines`` / ``api_pipeline_versions``."""

    def __init__(self, db: Database, default_namespace: str = "", max_upload_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.db = db
        self.default_namespace = default_namespace
        self.max_upload_bytes = max_upload_bytes

    # -- pipelines ------------------------------------------------------------------

    def create_pipeline(self, new: NewPipeline, version: NewVersion | None = None) -> Pipeline:
        """Creates a pipeline, and its first version when ``version`` is given, in one
        transaction. The version's names default to the pipeline's."""
        fallback = _stem(version.filename) if version is not None else ""
        name, display_name = _names("pipeline", new.name, new.display_name, fallback)
        namespace = new.namespace or self.default_namespace
        if len(namespace) > NAMESPACE_LENGTH:
            raise InvalidArgument(f"pipeline.namespace is longer than {NAMESPACE_LENGTH} characters")
        row = PipelineRow(
            pipeline_id=str(uuid.uuid4()),
            name=name,
            display_name=display_name,
            description=new.description,
            namespace=namespace,
            tags=check_tags("pipeline", new.tags),
            created_at=_now(),
        )
        version_row = None
        if version is not None:
            version.name = version.name or name
            version.display_name = version.display_name or display_name
            version.description = version.description or new.description
            version_row = self._version_row(row.pipeline_id, version)
        try:
            with self.db.session() as session:
                session.add(row)
                session.flush()
                if version_row is not None:
                    session.add(version_row)
                    session.flush()
        except IntegrityError:
            raise AlreadyExists(f"a pipeline named {name!r} already exists in namespace {namespace!r}") from None
        log.info("pipeline %s (%s) created", row.pipeline_id, name)
        return from_row(Pipeline, row)

    def update_pipeline(self, pipeline_id: str, change: MetadataChange) -> Pipeline:
        """Changes the pipeline's display name, description or tags (KFP's mutable fields)."""
        with self.db.session() as session:
            row = self._pipeline_row(session, pipeline_id)
            _apply(row, "pipeline", change)
            session.flush()
            return from_row(Pipeline, row)

    def update_version(self, pipeline_version_id: str, pipeline_id: str, change: MetadataChange) -> PipelineVersion:
        """Changes the version's display name, description or tags; its spec never changes."""
        if not pipeline_version_id:
            raise InvalidArgument("pipeline_version.pipeline_version_id is required")
        with self.db.session() as session:
            row = session.get(PipelineVersionRow, pipeline_version_id)
            if row is None or (pipeline_id and row.pipeline_id != pipeline_id):
                raise NotFound(f"pipeline version {pipeline_version_id!r} not found")
            _apply(row, "pipeline_version", change)
            session.flush()
            return from_row(PipelineVersion, row)

    def get_pipeline(self, pipeline_id: str) -> Pipeline:
        with self.db.session() as session:
            return from_row(Pipeline, self._pipeline_row(session, pipeline_id))

    def get_pipeline_by_name(self, name: str, namespace: str = "") -> Pipeline:
        if not name:
            raise InvalidArgument("name is required")
        namespace = namespace or self.default_namespace
        with self.db.session() as session:
            row = session.scalars(
                select(PipelineRow).where(PipelineRow.name == name, PipelineRow.namespace == namespace)
            ).one_or_none()
            if row is None:
                raise NotFound(f"pipeline named {name!r} not found in namespace {namespace!r}")
            return from_row(Pipeline, row)

    def list_pipelines(self, request: ListRequest, namespace: str = "") -> tuple[list[Pipeline], str, int]:
        query = select(PipelineRow)
        if namespace:
            query = query.where(PipelineRow.namespace == namespace)
        with self.db.session() as session:
            page = PIPELINES.page(session, query, request, scope=[namespace])
            return [from_row(Pipeline, r) for r in page.rows], page.next_page_token, page.total_size

    def delete_pipeline(self, pipeline_id: str, cascade: bool = False) -> None:
        with self.db.session() as session:
            row = self._pipeline_row(session, pipeline_id)
            versions = session.scalar(
                select(func.count()).select_from(PipelineVersionRow).where(PipelineVersionRow.pipeline_id == pipeline_id)
            )
            if versions and not cascade:
                raise FailedPrecondition(
                    f"pipeline {pipeline_id!r} has existing pipeline versions ({versions}); "
                    "delete them first or set cascade=true"
                )
            session.execute(delete(PipelineVersionRow).where(PipelineVersionRow.pipeline_id == pipeline_id))
            session.delete(row)

    # -- versions -------------------------------------------------------------------

    def create_version(self, new: NewVersion) -> PipelineVersion:
        """Adds a version to an existing pipeline; names default to the file name."""
        if not new.pipeline_id:
            raise InvalidArgument("pipeline_id is required")
        row = self._version_row(new.pipeline_id, new)
        try:
            with self.db.session() as session:
                self._pipeline_row(session, new.pipeline_id)
                session.add(row)
                session.flush()
        except IntegrityError:
            raise AlreadyExists(
                f"pipeline {new.pipeline_id!r} already has a version named {row.name!r}"
            ) from None
        return from_row(PipelineVersion, row)

    def get_version(self, pipeline_version_id: str, pipeline_id: str = "") -> PipelineVersion:
        if not pipeline_version_id:
            raise InvalidArgument("pipeline_version_id is required")
        with self.db.session() as session:
            row = session.get(PipelineVersionRow, pipeline_version_id)
            if row is None or (pipeline_id and row.pipeline_id != pipeline_id):
                raise NotFound(f"pipeline version {pipeline_version_id!r} not found")
            return from_row(PipelineVersion, row)

    def latest_version(self, pipeline_id: str) -> PipelineVersion:
        """The pipeline's newest version (what a reference without a version id means)."""
        with self.db.session() as session:
            self._pipeline_row(session, pipeline_id)
            row = session.scalars(
                select(PipelineVersionRow)
                .where(PipelineVersionRow.pipeline_id == pipeline_id)
                .order_by(PipelineVersionRow.created_at.desc(), PipelineVersionRow.pipeline_version_id.desc())
                .limit(1)
            ).one_or_none()
            if row is None:
                raise FailedPrecondition(f"pipeline {pipeline_id!r} has no versions")
            return from_row(PipelineVersion, row)

    def version_ids(self, pipeline_version_id: str, pipeline_id: str = "") -> tuple[str, str]:
        """``(pipeline_id, pipeline_version_id)`` of the version a run reference names:
        the given version, or the pipeline's newest when no version id is given. Reads
        the ids only, not the spec. Errors as :meth:`get_version` / :meth:`latest_version`."""
        if pipeline_version_id:
            with self.db.session() as session:
                found = session.execute(
                    select(PipelineVersionRow.pipeline_id).where(
                        PipelineVersionRow.pipeline_version_id == pipeline_version_id
                    )
                ).first()
            if found is None or (pipeline_id and found.pipeline_id != pipeline_id):
                raise NotFound(f"pipeline version {pipeline_version_id!r} not found")
            return str(found.pipeline_id), pipeline_version_id
        with self.db.session() as session:
            self._pipeline_row(session, pipeline_id)
            latest = session.scalar(
                select(PipelineVersionRow.pipeline_version_id)
                .where(PipelineVersionRow.pipeline_id == pipeline_id)
                .order_by(PipelineVersionRow.created_at.desc(), PipelineVersionRow.pipeline_version_id.desc())
                .limit(1)
            )
        if latest is None:
            raise FailedPrecondition(f"pipeline {pipeline_id!r} has no versions")
        return pipeline_id, str(latest)

    def list_versions(self, pipeline_id: str, request: ListRequest) -> tuple[list[PipelineVersion], str, int]:
        if not pipeline_id:
            raise InvalidArgument("pipeline_id is required")
        with self.db.session() as session:
            self._pipeline_row(session, pipeline_id)
            query = select(PipelineVersionRow).where(PipelineVersionRow.pipeline_id == pipeline_id)
            page = VERSIONS.page(session, query, request, scope=[pipeline_id])
            return [from_row(PipelineVersion, r) for r in page.rows], page.next_page_token, page.total_size

    def delete_version(self, pipeline_version_id: str, pipeline_id: str = "") -> None:
        with self.db.session() as session:
            row = session.get(PipelineVersionRow, pipeline_version_id)
            if row is None or (pipeline_id and row.pipeline_id != pipeline_id):
                raise NotFound(f"pipeline version {pipeline_version_id!r} not found")
            session.delete(row)

    # -- helpers --------------------------------------------------------------------

    def _pipeline_row(self, session: Session, pipeline_id: str) -> PipelineRow:
        if not pipeline_id:
            raise InvalidArgument("pipeline_id is required")
        row = session.get(PipelineRow, pipeline_id)
        if row is None:
            raise NotFound(f"pipeline {pipeline_id!r} not found")
        return row

    def _version_row(self, pipeline_id: str, new: NewVersion) -> PipelineVersionRow:
        doc = self._spec_of(new)
        name, display_name = _names("pipeline_version", new.name, new.display_name, _stem(new.filename))
        return PipelineVersionRow(
            pipeline_version_id=str(uuid.uuid4()),
            pipeline_id=pipeline_id,
            name=name,
            display_name=display_name,
            description=new.description,
            tags=check_tags("pipeline_version", new.tags),
            package_url=new.package_url,
            code_source_url=new.code_source_url,
            pipeline_spec=doc.spec,
            platform_spec=doc.platform_spec,
            created_at=_now(),
        )

    def _spec_of(self, new: NewVersion) -> PipelineSpecDoc:
        if new.package is not None:
            return read_package(new.package, new.filename, self.max_upload_bytes)
        if new.spec:
            return load_pipeline_spec(new.spec)
        if new.package_url:
            content, filename = fetch_package(new.package_url, self.max_upload_bytes)
            new.filename = new.filename or filename
            return read_package(content, filename, self.max_upload_bytes)
        raise InvalidArgument("pipeline_version.package_url.pipeline_url (or pipeline_spec) is required")
