"""Recurring runs: create, get, list, enable, disable, update in place, delete, and
:meth:`RecurringRunService.fire_due`, which the trigger loop calls to create the runs
that are due.

Firing is one transaction per recurring run: the row is locked, its due fire times are
computed, at most ``max_concurrency`` minus its active runs are created as PENDING
runs, and ``next_fire_at`` moves on, so two API replicas never fire the same time
twice. With ``no_catchup`` only the latest missed time fires; otherwise every missed
time fires in order, as concurrency allows.
"""

from __future__ import annotations

import builtins
import logging
import uuid
from datetime import datetime

from sqlalchemy import func, select, update

from stepwell.errors import InvalidArgument, NotFound, Unavailable
from stepwell.ir import load_pipeline_spec, resolve_parameters
from stepwell.server import Database
from stepwell_api.domain import NewRun
from stepwell_api.listing import Field, Listing, ListRequest
from stepwell_api.models import RecurringRunRow, RunRow, utcnow
from stepwell_api.repository import as_utc
from stepwell_api.resources import RecurringRun, RecurringRunChange, Trigger
from stepwell_api.schedule import check_trigger, due_times, next_fire
from stepwell_api.service import RunService

log = logging.getLogger(__name__)

MAX_CONCURRENCY = 10
RECURRING_RUNS = Listing(
    key=RecurringRunRow.recurring_run_id,
    fields={
        "recurring_run_id": Field(RecurringRunRow.recurring_run_id),
        "display_name": Field(RecurringRunRow.display_name),
        "created_at": Field(RecurringRunRow.created_at, "time"),
        "updated_at": Field(RecurringRunRow.updated_at, "time"),
        "description": Field(RecurringRunRow.description),
    },
)
#: States of a run that count against ``max_concurrency``.
_ACTIVE = ["PENDING", "RUNNING", "CANCELING", "PAUSED"]

#: KFP's DeleteRecurringRunRequest.propagation_policy, by name.
ORPHAN, BACKGROUND, FOREGROUND = "ORPHAN", "BACKGROUND", "FOREGROUND"
PROPAGATION_POLICIES = frozenset({ORPHAN, BACKGROUND, FOREGROUND})


def to_domain(row: RecurringRunRow) -> RecurringRun:
    created_at, updated_at = as_utc(row.created_at), as_utc(row.updated_at)
    assert created_at is not None and updated_at is not None
    return RecurringRun(
        recurring_run_id=row.recurring_run_id,
        display_name=row.display_name,
        created_at=created_at,
        updated_at=updated_at,
        trigger=Trigger(
            cron=row.cron,
            interval_second=int(row.interval_second or 0),
            start_time=as_utc(row.start_time),
            end_time=as_utc(row.end_time),
        ),
        pipeline_spec=dict(row.pipeline_spec),
        platform_spec=dict(row.platform_spec or {}),
        description=row.description,
        namespace=row.namespace,
        experiment_id=row.experiment_id,
        pipeline_id=row.pipeline_id,
        pipeline_version_id=row.pipeline_version_id,
        parameters=dict(row.parameters or {}),
        pipeline_root=row.pipeline_root,
        service_account=row.service_account,
        max_concurrency=row.max_concurrency,
        no_catchup=row.no_catchup,
        enabled=row.enabled,
        next_fire_at=as_utc(row.next_fire_at),
    )


class RecurringRunService:
    """Recurring runs in ``api_recurring_runs``; their runs go through :class:`RunService`."""

    def __init__(self, db: Database, runs: RunService) -> None:
        self.db = db
        self.runs = runs

    def create(self, change: RecurringRunChange) -> RecurringRun:
        """A new recurring run; :class:`InvalidArgument` for a bad trigger, spec or parameter."""
        if not (change.display_name or "").strip():
            raise InvalidArgument("recurring_run.display_name is required")
        if change.trigger is None:
            raise InvalidArgument("recurring_run.trigger is required")
        if not (change.pipeline_spec or change.pipeline_id or change.pipeline_version_id):
            raise InvalidArgument("recurring_run.pipeline_spec or recurring_run.pipeline_version_reference is required")
        now = utcnow()
        row = RecurringRunRow(
            recurring_run_id=str(uuid.uuid4()),
            display_name="",
            description="",
            namespace=change.namespace or self.runs.default_namespace,
            experiment_id="",
            pipeline_id="",
            pipeline_version_id="",
            parameters={},
            pipeline_root="",
            service_account="",
            max_concurrency=1,
            trigger_kind="periodic",
            cron="",
            interval_second=0,
            no_catchup=False,
            enabled=True,
            fire_count=0,
            created_at=now,
            updated_at=now,
        )
        self._apply(row, change, now)
        if not row.experiment_id:
            row.experiment_id = self.runs.experiments.default_experiment_id(row.namespace)
        with self.db.session() as session:
            row.experiment_id, row.namespace = self.runs.experiments.resolve(
                session, row.experiment_id, change.namespace or ""
            )
            session.add(row)
        log.info("recurring run %s (%s) created", row.recurring_run_id, row.display_name)
        return to_domain(row)

    def get(self, recurring_run_id: str) -> RecurringRun:
        with self.db.session() as session:
            return to_domain(self._row(session, recurring_run_id))

    def list(
        self, request: ListRequest, namespace: str = "", experiment_id: str = ""
    ) -> tuple[builtins.list[RecurringRun], str, int]:
        query = select(RecurringRunRow)
        if namespace:
            query = query.where(RecurringRunRow.namespace == namespace)
        if experiment_id:
            query = query.where(RecurringRunRow.experiment_id == experiment_id)
        with self.db.session() as session:
            page = RECURRING_RUNS.page(session, query, request, scope=[namespace, experiment_id])
            return [to_domain(r) for r in page.rows], page.next_page_token, page.total_size

    def set_enabled(self, recurring_run_id: str, enabled: bool) -> None:
        """Enables (fire times count from now; missed ones are not caught up) or disables."""
        self.update(recurring_run_id, RecurringRunChange(enabled=enabled))

    def update(self, recurring_run_id: str, change: RecurringRunChange) -> RecurringRun:
        """Changes the fields set in ``change``; the next fire time is recomputed."""
        with self.db.session() as session:
            row = self._row(session, recurring_run_id, lock=True)
            if change.experiment_id is not None and change.experiment_id != row.experiment_id:
                self.runs.experiments.resolve(session, change.experiment_id, row.namespace)
            if change.namespace not in (None, "", row.namespace):
                raise InvalidArgument("recurring_run.namespace cannot change")
            change.namespace = None
            self._apply(row, change, utcnow())
            return to_domain(row)

    def delete(self, recurring_run_id: str, propagation: str = ORPHAN) -> None:
        """Deletes the recurring run. ``propagation`` (KFP's ``propagation_policy``, read
        as Kubernetes reads it for an owner and its dependents, the runs it created):

        - ``ORPHAN`` (and unspecified, KFP's behaviour): its runs stay and keep running;
        - ``BACKGROUND``: deleted at once, its active runs asked to stop in the same
          transaction; the handover loop delivers CancelRun to the scheduler;
        - ``FOREGROUND``: its active runs are stopped first (CancelRun delivered before
          the call returns), then it is deleted. When the scheduler cannot be reached
          it stays, disabled, and the call is :class:`Unavailable` (retry it).

        Finished runs always stay: they are records, not dependents.
        """
        if propagation not in PROPAGATION_POLICIES:
            raise InvalidArgument(
                f"propagation_policy {propagation!r} is not one of {sorted(PROPAGATION_POLICIES)}"
            )
        with self.db.session() as session:
            row = self._row(session, recurring_run_id, lock=True)
            to_cancel: list[str] = []
            if propagation != ORPHAN:
                active = session.scalars(
                    select(RunRow)
                    .where(RunRow.recurring_run_id == recurring_run_id, RunRow.state.in_(_ACTIVE))
                    .order_by(RunRow.run_id)
                    .with_for_update()
                ).all()
                to_cancel = [run.run_id for run in active if self.runs.request_cancel(run)]
            if propagation == FOREGROUND and to_cancel:
                row.enabled, row.next_fire_at, row.updated_at = False, None, utcnow()
            else:
                session.delete(row)
        if propagation != FOREGROUND or not to_cancel:
            return
        if not self.runs.send_cancels(to_cancel):
            raise Unavailable(
                f"could not reach the scheduler to stop the runs of recurring run {recurring_run_id!r}; "
                "it is disabled and its runs will be stopped: retry the deletion"
            )
        with self.db.session() as session:
            found = self._row(session, recurring_run_id, lock=True, missing_ok=True)
            if found is not None:
                session.delete(found)

    # -- firing ---------------------------------------------------------------------

    def fire_due(self, now: datetime | None = None, limit: int = 50) -> int:
        """Creates the runs that are due at ``now``; returns how many it created."""
        now = now or utcnow()
        with self.db.session() as session:
            due = list(
                session.scalars(
                    select(RecurringRunRow.recurring_run_id)
                    .where(RecurringRunRow.enabled.is_(True), RecurringRunRow.next_fire_at <= now)
                    .order_by(RecurringRunRow.next_fire_at)
                    .limit(limit)
                )
            )
        created = 0
        for recurring_run_id in due:
            try:
                created += self._fire(recurring_run_id, now)
            except Exception:
                log.exception("firing recurring run %s failed", recurring_run_id)
        return created

    def _fire(self, recurring_run_id: str, now: datetime) -> int:
        with self.db.session() as session:
            row = self._row(session, recurring_run_id, lock=True, missing_ok=True)
            first = as_utc(row.next_fire_at) if row is not None else None
            if row is None or not row.enabled or first is None or first > now:
                return 0
            recurring = to_domain(row)
            times = due_times(recurring.trigger, first, now, catch_up=not row.no_catchup)
            active = int(
                session.scalar(
                    select(func.count())
                    .select_from(RunRow)
                    .where(RunRow.recurring_run_id == recurring_run_id, RunRow.state.in_(_ACTIVE))
                )
                or 0
            )
            room = max(0, row.max_concurrency - active)
            fired = times[:room]
            for when in fired:
                row.fire_count += 1
                new = NewRun(
                    pipeline_spec=recurring.full_spec,
                    display_name=f"{row.display_name} {when:%Y-%m-%d %H:%M:%S}",
                    namespace=row.namespace,
                    experiment_id=row.experiment_id,
                    parameters=dict(row.parameters or {}),
                    pipeline_root=row.pipeline_root,
                    pipeline_id=row.pipeline_id,
                    pipeline_version_id=row.pipeline_version_id,
                    service_account=row.service_account,
                )
                run = self.runs.prepare(new, now=utcnow(), scheduled_at=when, recurring_run_id=recurring_run_id, index=row.fire_count)
                session.add(run)
            if row.no_catchup or len(fired) == len(times):
                row.next_fire_at = next_fire(recurring.trigger, max(times[-1] if times else now, now))
            else:
                row.next_fire_at = times[len(fired)]  # wait for room, then catch up from here
            if row.next_fire_at is None:
                log.info("recurring run %s passed its end time", recurring_run_id)
        if fired:
            log.info("recurring run %s fired %d run(s)", recurring_run_id, len(fired))
        return len(fired)

    # -- helpers --------------------------------------------------------------------

    def _row(self, session, recurring_run_id: str, lock: bool = False, missing_ok: bool = False):  # type: ignore[no-untyped-def]
        if not recurring_run_id:
            raise InvalidArgument("recurring_run_id is required")
        query = select(RecurringRunRow).where(RecurringRunRow.recurring_run_id == recurring_run_id)
        if lock:
            if session.get_bind().dialect.name == "sqlite":
                session.execute(
                    update(RecurringRunRow)
                    .where(RecurringRunRow.recurring_run_id == recurring_run_id)
                    .values(recurring_run_id=recurring_run_id),
                    execution_options={"synchronize_session": False},
                )
            query = query.with_for_update()
        row = session.scalars(query).one_or_none()
        if row is None and not missing_ok:
            raise NotFound(f"recurring run {recurring_run_id!r} not found")
        return row

    def _apply(self, row: RecurringRunRow, change: RecurringRunChange, now: datetime) -> None:
        """Checks and copies the set fields of ``change`` onto ``row``."""
        if change.display_name is not None:
            if not change.display_name.strip():
                raise InvalidArgument("recurring_run.display_name must not be empty")
            row.display_name = change.display_name.strip()
        for name in ("description", "experiment_id", "pipeline_root", "service_account", "no_catchup"):
            value = getattr(change, name)
            if value is not None:
                setattr(row, name, value)
        if change.max_concurrency is not None:
            if not 1 <= change.max_concurrency <= MAX_CONCURRENCY:
                raise InvalidArgument(f"recurring_run.max_concurrency must be 1 to {MAX_CONCURRENCY}")
            row.max_concurrency = change.max_concurrency
        if change.pipeline_spec is not None or change.pipeline_id is not None or change.pipeline_version_id is not None:
            self._set_source(row, change)
        if change.parameters is not None or change.pipeline_spec is not None:
            params = change.parameters if change.parameters is not None else dict(row.parameters or {})
            declared = dict(row.pipeline_spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}))
            resolve_parameters(declared, dict(params))  # checked now; defaults are filled per run
            row.parameters = dict(params)
        reschedule = change.trigger is not None or change.enabled is not None
        if change.trigger is not None:
            trigger = check_trigger(change.trigger)
            row.trigger_kind, row.cron, row.interval_second = trigger.kind, trigger.cron, trigger.interval_second
            row.start_time, row.end_time = trigger.start_time, trigger.end_time
        if change.enabled is not None:
            row.enabled = change.enabled
        if reschedule:
            trigger = Trigger(row.cron, int(row.interval_second or 0), as_utc(row.start_time), as_utc(row.end_time))
            row.next_fire_at = next_fire(trigger, now) if row.enabled else None
        row.updated_at = now

    def _set_source(self, row: RecurringRunRow, change: RecurringRunChange) -> None:
        if change.pipeline_spec:
            doc = load_pipeline_spec(change.pipeline_spec)
            row.pipeline_id, row.pipeline_version_id = change.pipeline_id or "", change.pipeline_version_id or ""
        else:
            if not change.pipeline_id and not change.pipeline_version_id:
                raise InvalidArgument("recurring_run.pipeline_spec or pipeline_version_reference is required")
            pipelines = self.runs.pipelines
            version = (
                pipelines.get_version(change.pipeline_version_id, change.pipeline_id or "")
                if change.pipeline_version_id
                else pipelines.latest_version(change.pipeline_id or "")
            )
            doc = load_pipeline_spec(version.full_spec)
            row.pipeline_id, row.pipeline_version_id = version.pipeline_id, version.pipeline_version_id
        row.pipeline_spec, row.platform_spec = doc.spec, doc.platform_spec

