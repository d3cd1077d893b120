"""KFP filters, sort and page tokens on a real SQLite database; cron and periodic
triggers; package reading; the gateway's routes read from the protos."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from stepwell.errors import InvalidArgument
from stepwell.server import Database, upgrade
from stepwell.v1 import experiment_pb2, pipeline_pb2, recurring_run_pb2, run_pb2
from stepwell_api.app import MIGRATIONS_DIR, VERSION_TABLE
from stepwell_api.gateway import routes_for
from stepwell_api.models import ExperimentRow
from stepwell_api.packages import read_package
from stepwell_api.resources import Trigger
from stepwell_api.schedule import check_trigger, due_times, next_fire

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'api.db'}")
    upgrade(database.engine, MIGRATIONS_DIR, VERSION_TABLE)
    with database.session() as session:
        for i, name in enumerate(["b", "a", "c", "a-2", "d_x"]):
            session.add(ExperimentRow(experiment_id=f"id{i}", display_name=name, description="", namespace="ns" if i % 2 else "",
                                      storage_state="ARCHIVED" if i == 4 else "AVAILABLE", created_at=T0 + timedelta(hours=i)))
    yield database
    database.dispose()


def names(db: Database, **request: Any) -> list[str]:
    from stepwell_api.experiments import EXPERIMENTS
    from stepwell_api.listing import ListRequest

    with db.session() as session:
        page = EXPERIMENTS.page(session, select(ExperimentRow), ListRequest(**request))
        return [r.display_name for r in page.rows]


def flt(*predicates: dict[str, Any]) -> str:
    return json.dumps({"predicates": list(predicates)})


def test_filters_in_kfps_shapes(db: Database) -> None:
    assert names(db, filter=flt({"key": "display_name", "operation": 1, "stringValue": "a"})) == ["a"]
    assert names(db, filter=flt({"key": "display_name", "operation": "IS_SUBSTRING", "string_value": "a"}), sort_by="display_name") == ["a", "a-2"]
    assert names(db, filter=flt({"key": "display_name", "operation": "IS_SUBSTRING", "string_value": "_"})) == ["d_x"]
    assert names(db, filter=flt({"key": "display_name", "operation": 8, "stringValues": {"values": ["a", "c"]}}), sort_by="display_name") == ["a", "c"]
    assert names(db, filter=flt({"key": "created_at", "operation": 5, "timestamp_value": "2024-01-01T03:00:00Z"}), sort_by="created_at") == ["a-2", "d_x"]
    assert names(db, filter=flt({"key": "created_at", "operation": 6, "long_value": str(int(T0.timestamp()) + 3600)})) == ["b"]
    assert names(db, filter=flt({"key": "storage_state", "operation": 2, "string_value": "ARCHIVED"},
                                {"key": "namespace", "operation": 1, "string_value": ""}), sort_by="display_name") == ["b", "c"]


@pytest.mark.parametrize("bad, needle", [
    ("{", "JSON"), ("[]", "predicates"), (flt({"key": "colour", "operation": 1, "string_value": "x"}), "colour"),
    (flt({"key": "display_name", "operation": 4, "string_value": "x"}), "operation"),
    (flt({"key": "display_name", "operation": 1}), "exactly one value"),
    (flt({"key": "display_name", "operation": 8, "string_value": "x"}), "IN needs"),
    (flt({"key": "created_at", "operation": 1, "string_value": "yesterday"}), "RFC 3339"),
    (flt({"key": "created_at", "operation": 9, "string_value": "x"}), "RFC 3339"),
    (flt({"key": "display_name", "operation": 1, "string_value": "x", "extra": 1}), "extra"),
])
def test_bad_filters_name_the_problem(db: Database, bad: str, needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        names(db, filter=bad)


def test_sort_and_page_tokens(db: Database) -> None:
    from stepwell_api.experiments import EXPERIMENTS
    from stepwell_api.listing import ListRequest

    assert names(db) == ["d_x", "a-2", "c", "a", "b"]  # newest first by default
    assert names(db, sort_by="display_name desc") == ["d_x", "c", "b", "a-2", "a"]
    seen: list[str] = []
    token = ""
    with db.session() as session:
        while True:
            page = EXPERIMENTS.page(session, select(ExperimentRow), ListRequest(page_size=2, sort_by="display_name", page_token=token))
            seen += [r.display_name for r in page.rows]
            assert page.total_size == 5
            token = page.next_page_token
            if not token:
                break
        with pytest.raises(InvalidArgument, match="another filter"):
            EXPERIMENTS.page(session, select(ExperimentRow), ListRequest(page_size=2, sort_by="created_at",
                             page_token=EXPERIMENTS.page(session, select(ExperimentRow), ListRequest(page_size=2)).next_page_token))
    assert seen == ["a", "a-2", "b", "c", "d_x"]
    for bad in ("colour", "display_name sideways", "a b c"):
        with pytest.raises(InvalidArgument, match="sort_by"):
            names(db, sort_by=bad)


def test_cron_is_six_fields_seconds_first() -> None:
    weekdays = Trigger(cron="0 0 9 ? * 2-6")
    check_trigger(weekdays)
    assert next_fire(weekdays, T0) == datetime(2024, 1, 2, 9, tzinfo=timezone.utc)  # Jan 1 2024 is a Monday
    every_two = Trigger(cron="*/2 * * * * *")
    assert next_fire(every_two, T0) == T0 + timedelta(seconds=2)
    assert next_fire(Trigger(cron="@every 1m30s"), T0) == T0 + timedelta(seconds=90)
    assert next_fire(Trigger(cron="@hourly"), T0) == T0 + timedelta(hours=1)
    for bad in ("0 9 * * *", "61 * * * * *", "@every soon", ""):
        with pytest.raises(InvalidArgument):
            check_trigger(Trigger(cron=bad) if bad else Trigger(interval_second=0))


def test_periodic_start_end_and_catch_up() -> None:
    periodic = Trigger(interval_second=10, start_time=T0, end_time=T0 + timedelta(seconds=35))
    assert next_fire(periodic, T0 - timedelta(days=1)) == T0
    assert next_fire(periodic, T0 + timedelta(seconds=12)) == T0 + timedelta(seconds=20)
    assert next_fire(periodic, T0 + timedelta(seconds=30)) is None  # past the end time
    missed = due_times(periodic, T0, T0 + timedelta(seconds=25), catch_up=True)
    assert missed == [T0, T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)]
    assert due_times(periodic, T0, T0 + timedelta(seconds=25), catch_up=False) == [T0 + timedelta(seconds=20)]
    with pytest.raises(InvalidArgument, match="end_time"):
        check_trigger(Trigger(interval_second=5, start_time=T0, end_time=T0 - timedelta(seconds=1)))


def test_packages_by_name_and_by_bytes(tmp_path: Path) -> None:
    spec = {"schemaVersion": "2.1.0", "pipelineInfo": {"name": "p"}, "root": {"dag": {"tasks": {}}}}
    text = json.dumps(spec).encode()
    assert read_package(text, "p.json").name == "p"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("other/readme.json", b"{}")
        archive.writestr("x/pipeline.yaml", text)
    assert read_package(buffer.getvalue(), "bundle.zip").name == "p"
    with pytest.raises(InvalidArgument, match="larger than"):
        read_package(text, "p.json", max_bytes=10)
    with pytest.raises(InvalidArgument, match="empty"):
        read_package(b"  ", "p.yaml")


def test_every_rest_route_comes_from_the_protos() -> None:
    services = [
        (module.DESCRIPTOR.services_by_name[name], object())
        for module, name in ((run_pb2, "RunService"), (pipeline_pb2, "PipelineService"),
                             (experiment_pb2, "ExperimentService"), (recurring_run_pb2, "RecurringRunService"))
    ]
    routes = {(r.verb, r.template) for r in routes_for([(s, type("S", (), {m.name: None for m in s.methods})()) for s, _ in services])}
    assert ("POST", "/apis/v2beta1/runs/{run_id}:retry") in routes
    assert ("GET", "/apis/v2beta1/pipelines/names/{name}") in routes
    assert ("PATCH", "/apis/v2beta1/recurringruns/{recurring_run.recurring_run_id}") in routes
    assert ("PATCH", "/apis/v2beta1/pipelines/{pipeline.pipeline_id}") in routes
    assert ("PATCH", "/apis/v2beta1/pipelines/{pipeline_version.pipeline_id}/versions/"
                     "{pipeline_version.pipeline_version_id}") in routes
    # KFP's gateway routes, plus UpdateRecurringRun
    # (uploads and healthz are plain handlers, as in KFP).
    assert len(routes) == 33
    assert not any("ReportRunStatus" in t or "Upload" in t for _, t in routes)
