"""Experiments: named groups of runs, with KFP's archive semantics and the "Default"
experiment that runs without an experiment land in (created on first use)."""

from __future__ import annotations

import builtins
import logging
import uuid

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stepwell.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from stepwell.server import Database
from stepwell_api.listing import Field, Listing, ListRequest
from stepwell_api.models import (
    NAME_LENGTH,
    NAMESPACE_LENGTH,
    ExperimentRow,
    RecurringRunRow,
    RunRow,
    RunTaskRow,
    utcnow,
)
from stepwell_api.resources import ARCHIVED, AVAILABLE, DEFAULT_EXPERIMENT, Experiment, from_row

log = logging.getLogger(__name__)

EXPERIMENTS = Listing(
    key=ExperimentRow.experiment_id,
    fields={
        "experiment_id": Field(ExperimentRow.experiment_id),
        "display_name": Field(ExperimentRow.display_name),
        "created_at": Field(ExperimentRow.created_at, "time"),
        "last_run_created_at": Field(ExperimentRow.last_run_created_at, "time", nullable=True),
        "description": Field(ExperimentRow.description),
        "namespace": Field(ExperimentRow.namespace),
        "storage_state": Field(ExperimentRow.storage_state),
    },
)


class ExperimentService:
    """Experiments in ``api_experiments``."""

    def __init__(self, db: Database, default_namespace: str = "") -> None:
        self.db = db
        self.default_namespace = default_namespace
        #: Default experiment id by namespace (checked by :meth:`resolve` on every use).
        self._defaults: dict[str, str] = {}

    def create(self, display_name: str, description: str = "", namespace: str = "") -> Experiment:
        """A new experiment; its name must be unique in the namespace (:class:`AlreadyExists`)."""
        name = display_name.strip()
        if not name:
            raise InvalidArgument("experiment.display_name is required")
        if len(name) > NAME_LENGTH:
            raise InvalidArgument(f"experiment.display_name is longer than {NAME_LENGTH} characters")
        namespace = namespace or self.default_namespace
        if len(namespace) > NAMESPACE_LENGTH:
            raise InvalidArgument(f"experiment.namespace is longer than {NAMESPACE_LENGTH} characters")
        row = ExperimentRow(
            experiment_id=str(uuid.uuid4()),
            display_name=name,
            description=description,
            namespace=namespace,
            storage_state=AVAILABLE,
            created_at=utcnow(),
        )
        try:
            with self.db.session() as session:
                session.add(row)
                session.flush()
                return from_row(Experiment, row)
        except IntegrityError:
            raise AlreadyExists(f"an experiment named {name!r} already exists in namespace {namespace!r}") from None

    def get(self, experiment_id: str) -> Experiment:
        with self.db.session() as session:
            return from_row(Experiment, self.row(session, experiment_id))

    def list(self, request: ListRequest, namespace: str = "") -> tuple[builtins.list[Experiment], str, int]:
        query = select(ExperimentRow)
        if namespace:
            query = query.where(ExperimentRow.namespace == namespace)
        with self.db.session() as session:
            page = EXPERIMENTS.page(session, query, request, scope=[namespace])
            return [from_row(Experiment, r) for r in page.rows], page.next_page_token, page.total_size

    def default_experiment_id(self, namespace: str, fresh: bool = False) -> str:
        """The id of the namespace's "Default" experiment, created when missing.

        Remembered per namespace; pass ``fresh`` after the remembered one turned out
        deleted."""
        if not fresh and namespace in self._defaults:
            return self._defaults[namespace]
        self._defaults[namespace] = found = self._find_or_create_default(namespace)
        return found

    def _find_or_create_default(self, namespace: str) -> str:
        for _ in range(3):
            with self.db.session() as session:
                found = session.scalar(
                    select(ExperimentRow.experiment_id).where(
                        ExperimentRow.namespace == namespace, ExperimentRow.display_name == DEFAULT_EXPERIMENT
                    )
                )
            if found:
                return str(found)
            try:
                return self.create(DEFAULT_EXPERIMENT, "All runs created without specifying an experiment", namespace).experiment_id
            except AlreadyExists:
                continue  # another caller created it first
        raise FailedPrecondition(f"could not create the Default experiment in namespace {namespace!r}")

    def resolve(self, session: Session, experiment_id: str, namespace: str) -> tuple[str, str]:
        """Checks a run's experiment inside the run's transaction (no lock: runs in one
        experiment are created concurrently); returns the experiment's id and namespace."""
        row = session.execute(
            select(ExperimentRow.experiment_id, ExperimentRow.namespace, ExperimentRow.storage_state).where(
                ExperimentRow.experiment_id == experiment_id
            )
        ).first()
        if row is None:
            raise NotFound(f"experiment {experiment_id!r} not found")
        if namespace and row.namespace != namespace:
            raise InvalidArgument(
                f"experiment {experiment_id!r} is in namespace {row.namespace!r}, not {namespace!r}"
            )
        if row.storage_state == ARCHIVED:
            raise FailedPrecondition(f"experiment {experiment_id!r} is archived; unarchive it first")
        return row.experiment_id, row.namespace

    def archive(self, experiment_id: str) -> None:
        """Archives the experiment and its runs, and disables its recurring runs."""
        with self.db.session() as session:
            row = self.row(session, experiment_id)
            row.storage_state = ARCHIVED
            session.execute(
                update(RunRow).where(RunRow.experiment_id == experiment_id).values(storage_state=ARCHIVED)
            )
            session.execute(
                update(RecurringRunRow)
                .where(RecurringRunRow.experiment_id == experiment_id)
                .values(enabled=False, next_fire_at=None, updated_at=utcnow())
            )

    def unarchive(self, experiment_id: str) -> None:
        """Makes the experiment available again (its runs stay archived, as in KFP)."""
        with self.db.session() as session:
            self.row(session, experiment_id).storage_state = AVAILABLE

    def delete(self, experiment_id: str) -> builtins.list[str]:
        """Deletes the experiment with its recurring runs and runs; returns the ids of
        deleted runs that may still be active (the caller asks the scheduler to stop them)."""
        with self.db.session() as session:
            row = self.row(session, experiment_id)
            active: builtins.list[str] = list(
                session.scalars(
                    select(RunRow.run_id).where(
                        RunRow.experiment_id == experiment_id,
                        RunRow.state.in_(["PENDING", "RUNNING", "CANCELING", "PAUSED"]),
                        RunRow.handed_at.is_not(None),
                    )
                )
            )
            run_ids = select(RunRow.run_id).where(RunRow.experiment_id == experiment_id)
            session.execute(delete(RunTaskRow).where(RunTaskRow.run_id.in_(run_ids)))
            session.execute(delete(RunRow).where(RunRow.experiment_id == experiment_id))
            session.execute(delete(RecurringRunRow).where(RecurringRunRow.experiment_id == experiment_id))
            session.delete(row)
        return active

    @staticmethod
    def row(session: Session, experiment_id: str) -> ExperimentRow:
        if not experiment_id:
            raise InvalidArgument("experiment_id is required")
        row = session.get(ExperimentRow, experiment_id)
        if row is None:
            raise NotFound(f"experiment {experiment_id!r} not found")
        return row
