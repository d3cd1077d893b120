"""The API service's run logic. Owns the database transactions; raises :mod:`stepwell.errors`.

Creating a run validates the spec and parameters (resolving a pipeline version
reference and the Default experiment) before anything is written, records the run as
PENDING, commits, and only then hands it to the scheduler through
:class:`~stepwell_api.scheduler_link.SchedulerLink`, which keeps offering it until the
scheduler takes it. Lists use KFP's filter, sort and page tokens (:mod:`listing`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import defer, undefer

from stepwell.errors import FailedPrecondition, InvalidArgument, NotFound
from stepwell.ir import resolve_parameters
from stepwell.server import Database
from stepwell_api.domain import (
    FINAL_STATES,
    Handover,
    NewRun,
    Run,
    RunPage,
    RunQuery,
    RunState,
    StatusReport,
)
from stepwell_api.experiments import ExperimentService
from stepwell_api.listing import Field, Listing, ListRequest
from stepwell_api.models import ID_LENGTH, NAMESPACE_LENGTH, RunRow, RunTaskRow
from stepwell_api.pipelines import PipelineService
from stepwell_api.repository import RunRepository, as_utc
from stepwell_api.resources import ARCHIVED, AVAILABLE
from stepwell_api.run_artifacts import ArtifactCleaner
from stepwell_api.scheduler_link import (
    REFUSALS,
    HandoverPass,
    SchedulerGateway,
    SchedulerLink,
    utcnow,
)
from stepwell_api.specs import CheckedSpec, SpecCache, to_json

log = logging.getLogger(__name__)

RUNS = Listing(
    key=RunRow.run_id,
    fields={
        "run_id": Field(RunRow.run_id),
        "display_name": Field(RunRow.display_name),
        "created_at": Field(RunRow.created_at, "time"),
        "finished_at": Field(RunRow.finished_at, "time", nullable=True),
        "scheduled_at": Field(RunRow.scheduled_at, "time", nullable=True),
        "description": Field(RunRow.description),
        "storage_state": Field(RunRow.storage_state),
        "namespace": Field(RunRow.namespace),
        "experiment_id": Field(RunRow.experiment_id),
        "state": Field(RunRow.state),
        "recurring_run_id": Field(RunRow.recurring_run_id),
    },
)
class RunService(SchedulerLink):
    """Creates, reads, lists and terminates runs; applies the scheduler's status reports.

    Talking to the scheduler (handover, cancel, their retries) is :class:`SchedulerLink`'s."""

    def __init__(
        self,
        db: Database,
        scheduler: SchedulerGateway,
        default_namespace: str = "",
        pipelines: PipelineService | None = None,
        experiments: ExperimentService | None = None,
        artifacts: ArtifactCleaner | None = None,
    ) -> None:
        super().__init__(db, scheduler)
        self.artifacts = artifacts
        self.default_namespace = default_namespace
        self.pipelines = pipelines or PipelineService(db, default_namespace)
        self.experiments = experiments or ExperimentService(db, default_namespace)
        self.specs = SpecCache()

    # -- create -------------------------------------------------------------------------

    def create_run(self, new: NewRun) -> Run:
        """Validates ``new``, records it as PENDING and tries to hand it to the scheduler.

        Raises :class:`InvalidArgument` for a bad spec or bad parameters; nothing is
        written then. When the scheduler cannot be reached the run is returned PENDING
        and the handover loop offers it again later. Without an experiment the run
        goes to the namespace's "Default" experiment (created on first use).

        An empty display name defaults to ``"<pipeline name> <UTC timestamp>"`` (KFP
        refuses an empty name; Stepwell's CLI does not ask for one).

        The write is one statement on an autocommit connection: the run is inserted
        into its experiment only if the experiment may take it (exists, not archived,
        in the requested namespace). Only when nothing was inserted is the experiment
        read, to say why.
        """
        prepared = self._prepare(new)
        values, checked = prepared.values, prepared.checked
        experiment_id = new.experiment_id
        defaulted = not experiment_id
        namespace: str | None = None
        for attempt in range(3):
            if defaulted:
                experiment_id = self.experiments.default_experiment_id(values["namespace"], fresh=attempt > 0)
            namespace = self._insert(values, experiment_id, new.namespace)
            if namespace is not None:
                break
            try:  # nothing was inserted: raise what is wrong with the experiment
                with self.db.session() as session:
                    self.experiments.resolve(session, experiment_id, new.namespace)
            except NotFound:
                if not defaulted:
                    raise
                # a remembered Default experiment was deleted: look it up again
            # else it changed under us (unarchived, created): try again
        if namespace is None:
            raise FailedPrecondition(f"experiment {experiment_id!r} kept changing while the run was created; retry")
        run_id = values["run_id"]
        log.info("run %s (%s) recorded as PENDING", run_id, checked.name)
        handover = Handover(
            run_id=run_id,
            pipeline_spec=checked.full_spec,
            parameters=prepared.parameters,
            pipeline_root=values["pipeline_root"],
            namespace=namespace,
            pipeline_spec_json=checked.full_json,
        )
        outcome = self._hand_over(handover)
        if outcome not in ("handed", "unreachable"):
            return self.get_run(run_id)
        return Run(
            run_id=run_id,
            display_name=values["display_name"],
            description=values["description"],
            namespace=namespace,
            experiment_id=experiment_id,
            pipeline_name=checked.name,
            pipeline_spec=checked.full_spec,  # shared with the spec cache: read-only
            pipeline_spec_json=checked.full_json,
            parameters=prepared.parameters,
            pipeline_root=values["pipeline_root"],
            state=RunState.PENDING,
            created_at=values["created_at"],
            scheduled_at=values["scheduled_at"],
            handed_at=utcnow() if outcome == "handed" else None,
            storage_state=AVAILABLE,
            pipeline_id=values["pipeline_id"],
            pipeline_version_id=values["pipeline_version_id"],
            service_account=values["service_account"],
        )

    def _insert(self, values: dict[str, Any], experiment_id: str, requested_namespace: str) -> str | None:
        """Inserts the run (see :meth:`RunRepository.insert_in_experiment`); returns its
        namespace, None when the experiment refused it.

        A connection found dead is retried once: the run id is new, so a duplicate key
        on the retry means the first attempt did commit."""
        for attempt in range(2):
            try:
                with self.db.autocommit() as connection:
                    return RunRepository.insert_in_experiment(connection, values, experiment_id, requested_namespace)
            except IntegrityError:
                if not attempt:
                    raise
                with self.db.session() as session:
                    row = RunRepository(session).get_row(values["run_id"])
                    if row is None:
                        raise
                    return row.namespace
            except DBAPIError as err:
                if attempt or not err.connection_invalidated:
                    raise
                log.warning("lost the database connection while creating run %s; retrying", values["run_id"])
        raise AssertionError("unreachable")

    def prepare(
        self,
        new: NewRun,
        now: datetime | None = None,
        scheduled_at: datetime | None = None,
        recurring_run_id: str = "",
        index: int = 0,
    ) -> RunRow:
        """Checks ``new`` and builds its PENDING row (not yet added to any session).

        Resolves a pipeline version reference, validates the spec and parameters,
        fills defaults and expands KFP's ``[[RunUUID]]``, ``[[CurrentTime]]``,
        ``[[ScheduledTime]]`` and ``[[Index]]`` macros in string parameters.
        """
        prepared = self._prepare(new, now, scheduled_at, recurring_run_id, index)
        values = dict(prepared.values)
        values.update(
            experiment_id=new.experiment_id,
            pipeline_spec=prepared.checked.doc.spec,
            platform_spec=prepared.checked.doc.platform_spec,
            parameters=prepared.parameters,
            outputs={},
        )
        return RunRow(**values)

    def _prepare(
        self,
        new: NewRun,
        now: datetime | None = None,
        scheduled_at: datetime | None = None,
        recurring_run_id: str = "",
        index: int = 0,
    ) -> _Prepared:
        """What :meth:`prepare` checks and computes, with the JSON columns as text."""
        pipeline_id, version_id = new.pipeline_id, new.pipeline_version_id
        if new.has_inline_spec:
            checked = self.specs.check(new.spec_digest, new.load_spec)
        else:
            if not pipeline_id and not version_id:
                raise InvalidArgument("run.pipeline_spec or run.pipeline_version_reference is required")
            pipeline_id, version_id = self.pipelines.version_ids(version_id, pipeline_id)
            # A version's spec never changes: its id names its content.
            checked = self.specs.check(
                b"version:" + version_id.encode(), lambda: self.pipelines.get_version(version_id).full_spec
            )
        parameters = resolve_parameters(checked.root_parameters, dict(new.parameters))
        namespace = new.namespace or self.default_namespace
        _check_length("run.namespace", namespace, NAMESPACE_LENGTH)
        _check_length("run.experiment_id", new.experiment_id, ID_LENGTH)
        now = now or utcnow()
        scheduled_at = scheduled_at or now
        run_id = str(uuid.uuid4())
        macros = {
            "[[RunUUID]]": run_id,
            "[[CurrentTime]]": _rfc3339(now),
            "[[ScheduledTime]]": _rfc3339(scheduled_at),
            "[[Index]]": str(index),
        }
        parameters = {k: _expand(v, macros) for k, v in parameters.items()}
        display_name = new.display_name.strip() or f"{checked.name} {scheduled_at:%Y-%m-%d %H:%M:%S}"
        values = {
            "run_id": run_id,
            "display_name": display_name,
            "description": new.description,
            "namespace": namespace,
            "pipeline_name": checked.name,
            "pipeline_spec": checked.spec_json,
            "platform_spec": checked.platform_json,
            "parameters": to_json(parameters),
            "pipeline_root": new.pipeline_root,
            "state": RunState.PENDING.value,
            "error": "",
            "outputs": "{}",
            "created_at": now,
            "scheduled_at": scheduled_at,
            "handover_attempts": 0,
            "storage_state": AVAILABLE,
            "recurring_run_id": recurring_run_id,
            "pipeline_id": pipeline_id,
            "pipeline_version_id": version_id,
            "service_account": new.service_account,
        }
        return _Prepared(values=values, checked=checked, parameters=parameters)

    # -- read ---------------------------------------------------------------------------

    def get_run(self, run_id: str, query: RunQuery = RunQuery()) -> Run:
        """The run with its task details; :class:`NotFound` naming the id when unknown.

        ``query`` is what a watcher leaves out: with ``tasks_after_version`` > 0 only the
        tasks changed after that status version are listed (``partial_tasks``), unless
        task rows were deleted since, when every task is; ``omit_pipeline_spec`` drops
        the spec."""
        if not run_id:
            raise InvalidArgument("run_id is required")
        if query.tasks_after_version < 0:
            raise InvalidArgument(f"tasks_after_version must not be negative, got {query.tasks_after_version}")
        with self.db.session() as session:
            run = RunRepository(session).get_run(run_id, query)
        if run is None:
            raise NotFound(f"run {run_id!r} not found")
        return run

    def list_runs(
        self,
        namespace: str | None = None,
        page_size: int = 0,
        page_token: str = "",
        experiment_id: str = "",
        sort_by: str = "",
        filter: str = "",
    ) -> RunPage:
        """One page of runs in ``namespace`` (all namespaces when None or "").

        KFP's filter JSON and ``sort_by`` (default newest first); ``page_size`` 0 means
        20, more than 200 is cut to 200. One query reads the page, one counts the
        filtered runs, one reads all the page's tasks.
        """
        query = select(RunRow).options(defer(RunRow.pipeline_spec), undefer(RunRow.pipeline_spec_text))
        if namespace:
            query = query.where(RunRow.namespace == namespace)
        if experiment_id:
            query = query.where(RunRow.experiment_id == experiment_id)
        request = ListRequest(page_size=page_size, page_token=page_token, sort_by=sort_by, filter=filter)
        with self.db.session() as session:
            repo = RunRepository(session)
            page = RUNS.page(session, query, request, scope=[namespace or "", experiment_id])
            tasks = repo.tasks_of([r.run_id for r in page.rows])
            runs = [repo.to_domain(r, tasks.get(r.run_id, [])) for r in page.rows]
        return RunPage(runs=runs, next_page_token=page.next_page_token, total_size=page.total_size)

    # -- archive, delete, retry ---------------------------------------------------------

    def archive_run(self, run_id: str) -> None:
        """Marks the run ARCHIVED (it keeps running if it was)."""
        with self.db.session() as session:
            self._row(session, run_id).storage_state = ARCHIVED

    def unarchive_run(self, run_id: str) -> None:
        """Marks the run AVAILABLE; refused while its experiment is archived."""
        with self.db.session() as session:
            row = self._row(session, run_id)
            if row.experiment_id:
                experiment = self.experiments.row(session, row.experiment_id) if row.experiment_id else None
                if experiment is not None and experiment.storage_state == ARCHIVED:
                    raise FailedPrecondition(
                        f"run {run_id!r} belongs to archived experiment {row.experiment_id!r}; unarchive that first"
                    )
            row.storage_state = AVAILABLE

    def delete_run(self, run_id: str, delete_artifacts: bool = False) -> None:
        """Deletes the run and its task records; an active run is asked to stop first.

        With ``delete_artifacts`` the run must have ended; what it stored is deleted
        first (:mod:`stepwell_api.run_artifacts`), and its records only once that
        succeeded, so a failed attempt can simply be repeated.
        """
        if delete_artifacts:
            if self.artifacts is None:
                raise FailedPrecondition("deleting a run's artifacts is not configured on this API service")
            with self.db.session() as session:
                row = self._row(session, run_id)
                state = RunState(row.state) if row.state in RunState.__members__ else RunState.RUNTIME_STATE_UNSPECIFIED
                if state not in FINAL_STATES:
                    raise FailedPrecondition(
                        f"run {run_id!r} is {state.value}; terminate it and let it end before deleting its artifacts"
                    )
                pipeline_name, namespace = row.pipeline_name, row.namespace
            self.artifacts.delete_run_artifacts(run_id, pipeline_name, namespace)
        with self.db.session() as session:
            row = self._row(session, run_id, lock=True)
            active = RunState(row.state) not in FINAL_STATES and row.handed_at is not None
            session.execute(delete(RunTaskRow).where(RunTaskRow.run_id == run_id))
            session.delete(row)
        if active:
            try:
                self.scheduler.cancel_run(run_id)
            except Exception as err:  # the run is gone either way; the scheduler's reports become NotFound
                log.warning("could not stop deleted run %s: %s", run_id, err)

    def retry_run(self, run_id: str) -> Run:
        """Runs a FAILED or CANCELED run's failed tasks again.

        A run the scheduler never took (it refused it, or it was terminated before the
        handover) is simply offered again. A run the scheduler has needs its
        ``RetryRun``; until the scheduler has one this is :class:`FailedPrecondition`.
        """
        retry = getattr(self.scheduler, "retry_run", None)
        with self.db.session() as session:
            row = self._row(session, run_id, lock=True)
            state = RunState(row.state)
            if state not in (RunState.FAILED, RunState.CANCELED):
                raise FailedPrecondition(f"only FAILED or CANCELED runs can be retried; run {run_id!r} is {state.value}")
            before = (row.state, row.error, row.finished_at, row.cancel_requested_at, row.cancel_acked_at)
            never_handed = row.handed_at is None
            if not never_handed and retry is None:
                raise FailedPrecondition("retrying a run is not supported yet: the scheduler has no RetryRun")
            row.state = RunState.PENDING.value if never_handed else RunState.RUNNING.value
            row.error, row.finished_at = "", None
            row.cancel_requested_at = row.cancel_acked_at = None
        if never_handed:
            self.hand_over_pending()
            return self.get_run(run_id)
        try:
            assert retry is not None
            retry(run_id)
        except Exception:
            with self.db.session() as session:
                row = self._row(session, run_id, lock=True)
                if row.state == RunState.RUNNING.value:
                    (row.state, row.error, row.finished_at, row.cancel_requested_at, row.cancel_acked_at) = before
            raise
        return self.get_run(run_id)

    def _row(self, session: Any, run_id: str, lock: bool = False) -> RunRow:
        if not run_id:
            raise InvalidArgument("run_id is required")
        repo = RunRepository(session)
        row = repo.lock_row(run_id) if lock else repo.get_row(run_id)
        if row is None:
            raise NotFound(f"run {run_id!r} not found")
        return row

    # -- terminate ----------------------------------------------------------------------

    def terminate_run(self, run_id: str) -> Run:
        """Asks for the run to stop: CANCELING until the scheduler reports CANCELED.

        A run the scheduler never received is CANCELED at once. A run that already
        ended is :class:`FailedPrecondition`.
        """
        if not run_id:
            raise InvalidArgument("run_id is required")
        with self.db.session() as session:
            repo = RunRepository(session)
            row = repo.lock_row(run_id)
            if row is None:
                raise NotFound(f"run {run_id!r} not found")
            state = RunState(row.state)
            if state in FINAL_STATES:
                raise FailedPrecondition(
                    f"run {run_id!r} already ended ({state.value}); there is nothing to terminate"
                )
            send_cancel = self.request_cancel(row)
        if send_cancel:
            self._send_cancel(run_id)
        return self.get_run(run_id)

    @staticmethod
    def request_cancel(row: RunRow) -> bool:
        """Records the wish to stop an active run (the caller's transaction holds its
        row). True when the scheduler must be sent CancelRun: a run it never
        acknowledged is CANCELED at once instead (should a handover be in flight, its
        acknowledgement sends CancelRun). Unacknowledged cancellations are re-sent by
        the handover loop, so the wish is never lost."""
        now = utcnow()
        row.cancel_requested_at = row.cancel_requested_at or now
        if row.handed_at is None:
            row.state = RunState.CANCELED.value
            row.finished_at = now
            return False
        row.state = RunState.CANCELING.value
        row.cancel_acked_at = None
        return True

    def send_cancels(self, run_ids: list[str]) -> bool:
        """Sends CancelRun for each run now; False when the scheduler could not be reached
        (the handover loop keeps trying)."""
        return all([self._send_cancel(run_id) for run_id in run_ids])

    # -- status reports -----------------------------------------------------------------

    def report_status(self, report: StatusReport) -> None:
        """Applies a scheduler's status report: state, error, outputs and task details.

        Unknown runs are :class:`NotFound`. A run in a final state keeps it (a report of
        another state is stale and ignored), a report older than the last one applied
        is ignored, and a CANCELING run stays CANCELING until a final state arrives.

        Every applied report moves the run's ``status_version`` on by one and stamps the
        task rows it writes with it. A full report (``partial`` false) lists every task:
        changed rows are rewritten, rows not listed deleted (recorded as
        ``tasks_removed_version``). A partial report lists only changed tasks: they are
        upserted, the others kept, so its cost follows the number of changed tasks.
        """
        if not report.run_id:
            raise InvalidArgument("run_id is required")
        if report.state == RunState.RUNTIME_STATE_UNSPECIFIED:
            raise InvalidArgument(f"report for run {report.run_id!r} has no state")
        with self.db.session() as session:
            repo = RunRepository(session)
            row = repo.lock_status(report.run_id)
            if row is None:
                raise NotFound(f"run {report.run_id!r} not found")
            current = RunState(row.state)
            last = as_utc(row.status_updated_at)
            if report.update_time is not None and last is not None and report.update_time < last:
                log.debug("ignoring a stale report for run %s", report.run_id)
                return
            new = report.state
            if current in FINAL_STATES and new != current:
                log.info(
                    "run %s is %s; ignoring a report of %s", report.run_id, current.value, new.value
                )
                return
            if current == RunState.CANCELING and new not in FINAL_STATES:
                new = RunState.CANCELING
            now = utcnow()
            version = int(row.status_version or 0) + 1
            values: dict[str, Any] = {
                "state": new.value,
                "error": report.error,
                "outputs": report.outputs.to_json(),
                "status_updated_at": report.update_time or now,
                "status_version": version,
            }
            if new in FINAL_STATES and row.finished_at is None:
                values["finished_at"] = report.update_time or now
            if row.handed_at is None:
                values["handed_at"] = now  # a report proves the scheduler has the run
            if repo.write_tasks(report.run_id, report.task_details, version, partial=report.partial):
                values["tasks_removed_version"] = version
            repo.update_status(report.run_id, values)

@dataclass
class _Prepared:
    """A checked run before it is written: column values (JSON columns as text), the
    checked spec, and the resolved parameters."""

    values: dict[str, Any]
    checked: CheckedSpec
    parameters: dict[str, Any]


def _check_length(field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(f"{field} is longer than {limit} characters")


def _rfc3339(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _expand(value: Any, macros: dict[str, str]) -> Any:
    if isinstance(value, str) and "[[" in value:
        for macro, replacement in macros.items():
            value = value.replace(macro, replacement)
    return value


__all__ = ["REFUSALS", "HandoverPass", "RunService", "SchedulerGateway", "utcnow"]
