"""Domain objects of the stored resources besides runs: pipelines, pipeline versions,
experiments and recurring runs. Plain dataclasses, free of protobuf and SQLAlchemy."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

from stepwell_api.repository import as_utc

T = TypeVar("T")

AVAILABLE = "AVAILABLE"
ARCHIVED = "ARCHIVED"
DEFAULT_EXPERIMENT = "Default"


def from_row(cls: type[T], row: Any) -> T:
    """A dataclass of ``cls`` filled from the same-named attributes of ``row``
    (datetimes made aware UTC)."""
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        value = getattr(row, f.name)
        if isinstance(value, datetime):
            value = as_utc(value)
        elif isinstance(value, dict):
            value = dict(value)
        values[f.name] = value
    return cls(**values)


@dataclass
class Pipeline:
    pipeline_id: str
    name: str
    display_name: str
    created_at: datetime
    description: str = ""
    namespace: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class MetadataChange:
    """What UpdatePipeline / UpdatePipelineVersion change (None = unchanged).

    ``fixed`` holds the immutable fields the caller sent (name, namespace ...): each
    must equal the stored value, so a read-modify-write of the whole object works and
    an attempt to rename is refused."""

    display_name: str | None = None
    description: str | None = None
    tags: dict[str, str] | None = None
    fixed: dict[str, str] = field(default_factory=dict)


@dataclass
class PipelineVersion:
    pipeline_version_id: str
    pipeline_id: str
    name: str
    display_name: str
    created_at: datetime
    pipeline_spec: dict[str, Any]
    platform_spec: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    package_url: str = ""
    code_source_url: str = ""

    @property
    def full_spec(self) -> dict[str, Any]:
        """The IR, wrapped with its platform spec when it has one (KFP's shape)."""
        if self.platform_spec:
            return {"pipeline_spec": self.pipeline_spec, "platform_spec": self.platform_spec}
        return self.pipeline_spec


@dataclass
class NewPipeline:
    """What a caller asks for when creating a pipeline (and maybe its first version)."""

    name: str = ""
    display_name: str = ""
    description: str = ""
    namespace: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class NewVersion:
    """What a caller asks for when creating a pipeline version; the spec comes as
    ``package`` bytes (with ``filename``), a parsed ``spec`` or a ``package_url``."""

    pipeline_id: str = ""
    name: str = ""
    display_name: str = ""
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    package_url: str = ""
    code_source_url: str = ""
    spec: dict[str, Any] | None = None
    package: bytes | None = None
    filename: str = ""


@dataclass
class Experiment:
    experiment_id: str
    display_name: str
    created_at: datetime
    description: str = ""
    namespace: str = ""
    storage_state: str = AVAILABLE
    last_run_created_at: datetime | None = None


@dataclass
class Trigger:
    """When a recurring run fires: a six-field cron or a period in seconds."""

    cron: str = ""
    interval_second: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None

    @property
    def kind(self) -> str:
        return "cron" if self.cron else "periodic"


@dataclass
class RecurringRun:
    recurring_run_id: str
    display_name: str
    created_at: datetime
    updated_at: datetime
    trigger: Trigger
    pipeline_spec: dict[str, Any]
    platform_spec: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    namespace: str = ""
    experiment_id: str = ""
    pipeline_id: str = ""
    pipeline_version_id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    pipeline_root: str = ""
    service_account: str = ""
    max_concurrency: int = 1
    no_catchup: bool = False
    enabled: bool = True
    next_fire_at: datetime | None = None

    @property
    def full_spec(self) -> dict[str, Any]:
        if self.platform_spec:
            return {"pipeline_spec": self.pipeline_spec, "platform_spec": self.platform_spec}
        return self.pipeline_spec


@dataclass
class RecurringRunChange:
    """A new recurring run, or the fields an update sets (None = unchanged)."""

    display_name: str | None = None
    description: str | None = None
    namespace: str | None = None
    experiment_id: str | None = None
    pipeline_spec: dict[str, Any] | None = None
    pipeline_id: str | None = None
    pipeline_version_id: str | None = None
    parameters: dict[str, Any] | None = None
    pipeline_root: str | None = None
    service_account: str | None = None
    max_concurrency: int | None = None
    trigger: Trigger | None = None
    no_catchup: bool | None = None
    enabled: bool | None = None
