"""``stepwell.Client`` methods for stored pipelines, experiments and recurring runs.

Names and arguments follow ``kfp.Client`` where KFP has the operation; everything
goes over gRPC to the API service.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from google.protobuf import field_mask_pb2

from stepwell.client import convert
from stepwell.client.types import Experiment, Page, Pipeline, PipelineVersion, RecurringRun
from stepwell.errors import InvalidArgument, NotFound
from stepwell.v1 import experiment_pb2, pipeline_pb2, recurring_run_pb2, run_pb2


def _eq(key: str, value: str) -> str:
    import json

    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "string_value": value}]})


def _read(path: str | os.PathLike[str]) -> tuple[bytes, str]:
    try:
        return Path(path).read_bytes(), Path(path).name
    except OSError as err:
        raise InvalidArgument(f"cannot read pipeline package {str(path)!r}: {err}") from None


class ResourceMethods:
    """Mixed into :class:`stepwell.client.Client`, which provides the stubs and ``_call``."""

    namespace: str
    _call: Callable[..., Any]
    _pipelines: Any
    _experiments: Any
    _recurring: Any

    # --- pipelines --------------------------------------------------------------------

    def upload_pipeline(
        self,
        pipeline_package_path: str | os.PathLike[str],
        pipeline_name: str | None = None,
        description: str | None = None,
        namespace: str | None = None,
    ) -> Pipeline:
        """Stores a compiled pipeline (YAML, JSON, zip or tar.gz) and its first version.

        The name defaults to the spec's ``pipelineInfo.name``, as kfp's does.
        """
        content, filename = _read(pipeline_package_path)
        if pipeline_name is None:
            from stepwell.client.client import pipeline_spec_from_file

            spec = pipeline_spec_from_file(pipeline_package_path) if filename.endswith((".yaml", ".yml", ".json")) else {}
            pipeline_name = spec.get("pipeline_spec", spec).get("pipelineInfo", {}).get("name", "")
        request = pipeline_pb2.UploadPipelineRequest(
            content=content, filename=filename, name=pipeline_name or "", description=description or "",
            namespace=namespace if namespace is not None else self.namespace,
        )
        return convert.pipeline_from_proto(self._call(self._pipelines.UploadPipeline, request))

    def upload_pipeline_version(
        self,
        pipeline_package_path: str | os.PathLike[str],
        pipeline_version_name: str,
        pipeline_id: str | None = None,
        pipeline_name: str | None = None,
        description: str | None = None,
    ) -> PipelineVersion:
        """Adds a version to a stored pipeline, named by id or by name."""
        if not pipeline_id:
            if not pipeline_name:
                raise InvalidArgument("give pipeline_id or pipeline_name")
            pipeline_id = self.get_pipeline_id(pipeline_name)
            if pipeline_id is None:
                raise NotFound(f"no pipeline named {pipeline_name!r}")
        content, filename = _read(pipeline_package_path)
        request = pipeline_pb2.UploadPipelineVersionRequest(
            content=content, filename=filename, pipeline_id=pipeline_id, name=pipeline_version_name,
            description=description or "",
        )
        return convert.version_from_proto(self._call(self._pipelines.UploadPipelineVersion, request))

    def update_pipeline(
        self, pipeline_id: str, display_name: str | None = None, description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> Pipeline:
        """Changes a pipeline's display name, description or tags (``{}`` clears the tags);
        what is None stays."""
        message = pipeline_pb2.Pipeline(pipeline_id=pipeline_id, display_name=display_name or "",
                                        description=description or "", tags=tags or {})
        request = pipeline_pb2.UpdatePipelineRequest(pipeline=message)
        request.update_mask.paths.extend(_paths(display_name=display_name, description=description, tags=tags))
        return convert.pipeline_from_proto(self._call(self._pipelines.UpdatePipeline, request))

    def update_pipeline_version(
        self, pipeline_id: str, pipeline_version_id: str, display_name: str | None = None,
        description: str | None = None, tags: dict[str, str] | None = None,
    ) -> PipelineVersion:
        """Changes a version's display name, description or tags; its spec never changes."""
        message = pipeline_pb2.PipelineVersion(
            pipeline_id=pipeline_id, pipeline_version_id=pipeline_version_id, display_name=display_name or "",
            description=description or "", tags=tags or {})
        request = pipeline_pb2.UpdatePipelineVersionRequest(pipeline_version=message)
        request.update_mask.paths.extend(_paths(display_name=display_name, description=description, tags=tags))
        return convert.version_from_proto(self._call(self._pipelines.UpdatePipelineVersion, request))

    def get_pipeline(self, pipeline_id: str) -> Pipeline:
        reply = self._call(self._pipelines.GetPipeline, pipeline_pb2.GetPipelineRequest(pipeline_id=pipeline_id))
        return convert.pipeline_from_proto(reply)

    def get_pipeline_id(self, name: str) -> str | None:
        """The id of the pipeline named ``name``, or None."""
        try:
            reply = self._call(
                self._pipelines.GetPipelineByName,
                pipeline_pb2.GetPipelineByNameRequest(name=name, namespace=self.namespace),
            )
        except NotFound:
            return None
        return str(reply.pipeline_id)

    def list_pipelines(
        self, page_token: str = "", page_size: int = 10, sort_by: str = "", filter: str | None = None,
        namespace: str | None = None,
    ) -> Page[Pipeline]:
        reply = self._call(self._pipelines.ListPipelines, pipeline_pb2.ListPipelinesRequest(
            namespace=namespace if namespace is not None else self.namespace, page_token=page_token,
            page_size=page_size, sort_by=sort_by, filter=filter or ""))
        return Page([convert.pipeline_from_proto(p) for p in reply.pipelines], reply.next_page_token, reply.total_size)

    def delete_pipeline(self, pipeline_id: str, cascade: bool = False) -> None:
        """Deletes a pipeline; with versions it needs ``cascade=True`` (as in KFP)."""
        self._call(self._pipelines.DeletePipeline, pipeline_pb2.DeletePipelineRequest(pipeline_id=pipeline_id, cascade=cascade))

    def list_pipeline_versions(
        self, pipeline_id: str, page_token: str = "", page_size: int = 10, sort_by: str = "",
        filter: str | None = None,
    ) -> Page[PipelineVersion]:
        reply = self._call(self._pipelines.ListPipelineVersions, pipeline_pb2.ListPipelineVersionsRequest(
            pipeline_id=pipeline_id, page_token=page_token, page_size=page_size, sort_by=sort_by, filter=filter or ""))
        return Page([convert.version_from_proto(v) for v in reply.pipeline_versions], reply.next_page_token, reply.total_size)

    def get_pipeline_version(self, pipeline_id: str, pipeline_version_id: str) -> PipelineVersion:
        reply = self._call(self._pipelines.GetPipelineVersion, pipeline_pb2.GetPipelineVersionRequest(
            pipeline_id=pipeline_id, pipeline_version_id=pipeline_version_id))
        return convert.version_from_proto(reply)

    def delete_pipeline_version(self, pipeline_id: str, pipeline_version_id: str) -> None:
        self._call(self._pipelines.DeletePipelineVersion, pipeline_pb2.DeletePipelineVersionRequest(
            pipeline_id=pipeline_id, pipeline_version_id=pipeline_version_id))

    # --- experiments ------------------------------------------------------------------

    def create_experiment(self, name: str, description: str | None = None, namespace: str | None = None) -> Experiment:
        """The experiment named ``name``, created when missing (kfp's get-or-create)."""
        namespace = namespace if namespace is not None else self.namespace
        found = self.list_experiments(filter=_eq("display_name", name), namespace=namespace, page_size=2).items
        if found:
            return found[0]
        request = experiment_pb2.CreateExperimentRequest(
            experiment=experiment_pb2.Experiment(display_name=name, description=description or "", namespace=namespace))
        return convert.experiment_from_proto(self._call(self._experiments.CreateExperiment, request))

    def get_experiment(
        self, experiment_id: str | None = None, experiment_name: str | None = None, namespace: str | None = None
    ) -> Experiment:
        """An experiment by id or by name (:class:`NotFound` when there is none)."""
        if experiment_id:
            reply = self._call(self._experiments.GetExperiment, experiment_pb2.GetExperimentRequest(experiment_id=experiment_id))
            return convert.experiment_from_proto(reply)
        if not experiment_name:
            raise InvalidArgument("give experiment_id or experiment_name")
        found = self.list_experiments(filter=_eq("display_name", experiment_name), namespace=namespace, page_size=2).items
        if not found:
            raise NotFound(f"No experiment is found with name {experiment_name}")
        return found[0]

    def list_experiments(
        self, page_token: str = "", page_size: int = 10, sort_by: str = "", namespace: str | None = None,
        filter: str | None = None,
    ) -> Page[Experiment]:
        reply = self._call(self._experiments.ListExperiments, experiment_pb2.ListExperimentsRequest(
            page_token=page_token, page_size=page_size, sort_by=sort_by, filter=filter or "",
            namespace=namespace if namespace is not None else self.namespace))
        return Page([convert.experiment_from_proto(e) for e in reply.experiments], reply.next_page_token, reply.total_size)

    def archive_experiment(self, experiment_id: str) -> None:
        self._call(self._experiments.ArchiveExperiment, experiment_pb2.ArchiveExperimentRequest(experiment_id=experiment_id))

    def unarchive_experiment(self, experiment_id: str) -> None:
        self._call(self._experiments.UnarchiveExperiment, experiment_pb2.UnarchiveExperimentRequest(experiment_id=experiment_id))

    def delete_experiment(self, experiment_id: str) -> None:
        """Deletes the experiment with its runs and recurring runs."""
        self._call(self._experiments.DeleteExperiment, experiment_pb2.DeleteExperimentRequest(experiment_id=experiment_id))

    # --- recurring runs ---------------------------------------------------------------

    def create_recurring_run(
        self,
        experiment_id: str,
        job_name: str,
        description: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        interval_second: int | None = None,
        cron_expression: str | None = None,
        max_concurrency: int = 1,
        no_catchup: bool | None = None,
        params: dict[str, Any] | None = None,
        pipeline_package_path: str | os.PathLike[str] | None = None,
        pipeline_id: str | None = None,
        version_id: str | None = None,
        enabled: bool = True,
        pipeline_root: str | None = None,
        service_account: str | None = None,
    ) -> RecurringRun:
        """Creates runs on a schedule: ``cron_expression`` (six fields, seconds first)
        or every ``interval_second`` seconds."""
        message = recurring_run_pb2.RecurringRun(
            display_name=job_name, description=description or "", experiment_id=experiment_id,
            max_concurrency=max_concurrency, no_catchup=bool(no_catchup), namespace=self.namespace,
            service_account=service_account or "",
            mode=recurring_run_pb2.RecurringRun.ENABLE if enabled else recurring_run_pb2.RecurringRun.DISABLE,
        )
        _fill_trigger(message.trigger, cron_expression, interval_second, start_time, end_time)
        _fill_source(message, pipeline_package_path, pipeline_id, version_id, params, pipeline_root)
        reply = self._call(self._recurring.CreateRecurringRun, recurring_run_pb2.CreateRecurringRunRequest(recurring_run=message))
        return convert.recurring_from_proto(reply)

    def update_recurring_run(
        self,
        recurring_run_id: str,
        *,
        job_name: str | None = None,
        description: str | None = None,
        cron_expression: str | None = None,
        interval_second: int | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        max_concurrency: int | None = None,
        no_catchup: bool | None = None,
        params: dict[str, Any] | None = None,
        enabled: bool | None = None,
    ) -> RecurringRun:
        """Changes a recurring run in place (Stepwell; KFP has no update): only the
        arguments given change. A new trigger needs its start/end times again."""
        message = recurring_run_pb2.RecurringRun(recurring_run_id=recurring_run_id)
        paths = []
        for path, value, field_name in (
            ("display_name", job_name, "display_name"), ("description", description, "description"),
            ("max_concurrency", max_concurrency, "max_concurrency"), ("no_catchup", no_catchup, "no_catchup"),
        ):
            if value is not None:
                setattr(message, field_name, value)
                paths.append(path)
        if cron_expression is not None or interval_second is not None:
            _fill_trigger(message.trigger, cron_expression, interval_second, start_time, end_time)
            paths.append("trigger")
        if params is not None:
            _fill_source(message, None, None, None, params, None)
            paths.append("runtime_config.parameters")
        if enabled is not None:
            message.mode = recurring_run_pb2.RecurringRun.ENABLE if enabled else recurring_run_pb2.RecurringRun.DISABLE
            paths.append("mode")
        request = recurring_run_pb2.UpdateRecurringRunRequest(
            recurring_run=message, update_mask=field_mask_pb2.FieldMask(paths=paths))
        return convert.recurring_from_proto(self._call(self._recurring.UpdateRecurringRun, request))

    def get_recurring_run(self, recurring_run_id: str) -> RecurringRun:
        reply = self._call(self._recurring.GetRecurringRun, recurring_run_pb2.GetRecurringRunRequest(recurring_run_id=recurring_run_id))
        return convert.recurring_from_proto(reply)

    def list_recurring_runs(
        self, page_token: str = "", page_size: int = 10, sort_by: str = "", experiment_id: str | None = None,
        namespace: str | None = None, filter: str | None = None,
    ) -> Page[RecurringRun]:
        reply = self._call(self._recurring.ListRecurringRuns, recurring_run_pb2.ListRecurringRunsRequest(
            page_token=page_token, page_size=page_size, sort_by=sort_by, experiment_id=experiment_id or "",
            namespace=namespace if namespace is not None else self.namespace, filter=filter or ""))
        return Page([convert.recurring_from_proto(r) for r in reply.recurringRuns], reply.next_page_token, reply.total_size)

    def enable_recurring_run(self, recurring_run_id: str) -> None:
        self._call(self._recurring.EnableRecurringRun, recurring_run_pb2.EnableRecurringRunRequest(recurring_run_id=recurring_run_id))

    def disable_recurring_run(self, recurring_run_id: str) -> None:
        self._call(self._recurring.DisableRecurringRun, recurring_run_pb2.DisableRecurringRunRequest(recurring_run_id=recurring_run_id))

    def delete_recurring_run(self, recurring_run_id: str, propagation_policy: str | None = None) -> None:
        """Deletes a recurring run. ``propagation_policy`` (KFP's field) says what happens
        to its active runs: ``"ORPHAN"`` (the default) keeps them running,
        ``"BACKGROUND"`` stops them after the deletion, ``"FOREGROUND"`` before it."""
        policy = (propagation_policy or "PROPAGATION_POLICY_UNSPECIFIED").upper()
        names = list(recurring_run_pb2.DeleteRecurringRunRequest.PropagationPolicy.keys())
        if policy not in names:
            raise InvalidArgument(f"propagation_policy {propagation_policy!r} is not one of {names[1:]}")
        request = recurring_run_pb2.DeleteRecurringRunRequest(
            recurring_run_id=recurring_run_id, propagation_policy=policy  # type: ignore[arg-type]
        )
        self._call(self._recurring.DeleteRecurringRun, request)


def _paths(**fields: object) -> list[str]:
    """update_mask paths: the fields that are not None."""
    return [name for name, value in fields.items() if value is not None]


def _fill_trigger(
    trigger: recurring_run_pb2.Trigger, cron: str | None, interval: int | None,
    start: datetime | None, end: datetime | None,
) -> None:
    if cron:
        schedule: Any = trigger.cron_schedule
        schedule.cron = cron
    elif interval:
        schedule = trigger.periodic_schedule
        schedule.interval_second = interval
    else:
        raise InvalidArgument("give cron_expression or interval_second")
    if start is not None:
        schedule.start_time.FromDatetime(start)
    if end is not None:
        schedule.end_time.FromDatetime(end)


def _fill_source(
    message: recurring_run_pb2.RecurringRun, package: str | os.PathLike[str] | None, pipeline_id: str | None,
    version_id: str | None, params: dict[str, Any] | None, pipeline_root: str | None,
) -> None:
    if package is not None:
        from stepwell.client.client import pipeline_spec_from_file

        message.pipeline_spec.CopyFrom(convert.dict_to_struct(pipeline_spec_from_file(package)))
    elif pipeline_id or version_id:
        message.pipeline_version_reference.CopyFrom(
            run_pb2.PipelineVersionReference(pipeline_id=pipeline_id or "", pipeline_version_id=version_id or ""))
    for name, value in (params or {}).items():
        message.runtime_config.parameters[name].CopyFrom(convert.value_of(value))
    message.runtime_config.pipeline_root = pipeline_root or ""
