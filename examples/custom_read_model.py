"""A host's own read model over the journal: orders waiting for approval, per customer.

The journal's events are public (docs/journal.md lists each with its TOPIC and fields), so a
host builds its own views with the `eventsourcing` library, two ways, same answer:

1. ``WaitingApprovals``, a library ``ProcessApplication`` in the ``System`` that
   ``squidmesh_es.projections.system()`` defines: its policy records events of its own
   ``CustomerOrders`` aggregates, one per customer. Runs with ``SingleThreadedRunner`` or
   ``MultiThreadedRunner`` on memory, SQLite and Postgres. On SQLite it needs a file of its
   own (``WAITINGAPPROVALS_SQLITE_DBNAME``): two applications that record events must
   never share one.
2. ``WaitingApprovalsProjection``, a library ``Projection`` kept by ``ProjectionRunner`` in a
   table of its own (``PostgresWaitingApprovalsView``). Postgres only: the runner subscribes
   to the journal, and SQLite cannot.

Run it: ``python examples/custom_read_model.py sqlite:///orders.db`` (or a
``postgresql://...?schema=...`` URL, which also runs the ``ProjectionRunner`` way).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import ProcessingEvent
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.system import ProcessApplication, SingleThreadedRunner
from psycopg import sql
from pydantic import BaseModel

from squidmesh_es import SquidMesh
from squidmesh_es.domain import WorkflowRun
from squidmesh_es.projections import FOLLOWERS, system
from squidmesh_es.runtime import journal_env
from squidmesh_es.workflow import (
    COMPLETE,
    JSONObject,
    Ok,
    Outcome,
    Step,
    StepContext,
    Workflow,
    approval,
    manual,
    step,
    transition,
)

# -- the workflow ---------------------------------------------------------------------------


class OrderRequest(BaseModel):
    order_id: str
    customer: str


class Ship(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"shipped": input["order_id"]})


class OrderApproval(Workflow):
    """An order waits for a reviewer before it ships; a rejected order just ends."""

    payload = OrderRequest
    triggers = [manual("order")]

    review = approval(output="review")
    ship = step(Ship, input=["order_id"])

    transitions = [
        transition(review, to=ship),
        transition(review, on=Outcome.ERROR, to=COMPLETE),
        transition(ship, to=COMPLETE),
    ]


FOLLOWED = (
    WorkflowRun.RunStarted,
    WorkflowRun.ManualStepPaused,
    WorkflowRun.ManualStepResolved,
    WorkflowRun.RunEnded,
)
"""The journal events this read model needs: filtered by topic in the database."""

# -- way 1: a process application with aggregates of its own ---------------------------------


class CustomerOrders(Aggregate):
    """The orders of one customer and which of them wait for approval."""

    @event("Started")
    def __init__(self, customer: str) -> None:
        self.customer = customer
        self.waiting: list[str] = []

    @staticmethod
    def id_for(customer: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"example:customer-orders:{customer}")

    @classmethod
    def create_id(cls, customer: str) -> UUID:
        return cls.id_for(customer)

    @event("Waiting")
    def wait(self, run_id: str) -> None:
        self.waiting.append(run_id)

    @event("NoLongerWaiting")
    def stop_waiting(self, run_id: str) -> None:
        self.waiting.remove(run_id)


class OrderCustomer(Aggregate):
    """Which customer a run is for: the later events name only the run."""

    @event("Noted")
    def __init__(self, run_id: UUID, customer: str) -> None:
        self.customer = customer

    @classmethod
    def create_id(cls, run_id: UUID, customer: str) -> UUID:
        return run_id


class WaitingApprovals(ProcessApplication[UUID]):
    """Orders waiting for approval per customer, as events of its own aggregates."""

    topics = tuple(e.TOPIC for e in FOLLOWED)

    @singledispatchmethod
    def policy(self, domain_event: Any, processing_event: ProcessingEvent[UUID]) -> None:
        """Events of other kinds change nothing here."""

    @policy.register
    def _(self, e: WorkflowRun.RunStarted, processing_event: ProcessingEvent[UUID]) -> None:
        if e.workflow == OrderApproval.name:
            processing_event.collect_events(OrderCustomer(e.originator_id, e.input["customer"]))

    @policy.register
    def _(self, e: WorkflowRun.ManualStepPaused, processing_event: ProcessingEvent[UUID]) -> None:
        orders = self._orders_of(e.originator_id, processing_event)
        if orders is not None and str(e.originator_id) not in orders.waiting:
            orders.wait(str(e.originator_id))
            processing_event.collect_events(orders)

    @policy.register
    def _(self, e: WorkflowRun.ManualStepResolved, processing_event: ProcessingEvent[UUID]) -> None:
        self._done(e.originator_id, processing_event)

    @policy.register
    def _(self, e: WorkflowRun.RunEnded, processing_event: ProcessingEvent[UUID]) -> None:
        self._done(e.originator_id, processing_event)

    def _done(self, run_id: UUID, processing_event: ProcessingEvent[UUID]) -> None:
        orders = self._orders_of(run_id, processing_event)
        if orders is not None and str(run_id) in orders.waiting:
            orders.stop_waiting(str(run_id))
            processing_event.collect_events(orders)

    def _orders_of(
        self, run_id: UUID, processing_event: ProcessingEvent[UUID]
    ) -> CustomerOrders | None:
        if run_id not in self.repository:
            return None  # not an order run
        customer = self.repository.get(run_id).customer
        orders_id = CustomerOrders.id_for(customer)
        if orders_id in self.repository:
            orders: CustomerOrders = self.repository.get(orders_id)
            return orders
        orders = CustomerOrders(customer)
        processing_event.collect_events(orders)
        return orders

    def waiting(self, customer: str) -> list[str]:
        """Run ids of ``customer``'s orders waiting for approval, oldest first."""
        orders_id = CustomerOrders.id_for(customer)
        if orders_id not in self.repository:
            return []
        orders: CustomerOrders = self.repository.get(orders_id)
        return list(orders.waiting)


# -- way 2: a projection into a table, kept by ProjectionRunner (Postgres) ---------------------


class PostgresWaitingApprovalsView(PostgresTrackingRecorder):
    """One row per order run: its customer and whether it waits for approval."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.orders = sql.Identifier(datastore.schema or "public", "waiting_approvals_orders")
        self.sql_create_statements.append(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (run_id uuid PRIMARY KEY, customer text NOT NULL, "
                "waiting boolean NOT NULL DEFAULT false, since timestamptz)"
            ).format(self.orders)
        )

    def write(self, statement: sql.Composable, params: tuple[Any, ...], tracking: Tracking) -> None:
        """Run ``statement`` and record ``tracking`` in one transaction."""
        with self.datastore.transaction(commit=True) as cursor:
            self._insert_tracking(cursor, tracking)
            cursor.execute(statement, params)

    def waiting(self, customer: str) -> list[str]:
        """Run ids of ``customer``'s orders waiting for approval, oldest first."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                sql.SQL(
                    "SELECT run_id FROM {} WHERE customer = %s AND waiting ORDER BY since, run_id"
                ).format(self.orders),
                (customer,),
            )
            return [str(row["run_id"]) for row in cursor.fetchall()]


class WaitingApprovalsProjection(Projection[PostgresWaitingApprovalsView]):
    """Orders waiting for approval per customer, as rows."""

    name = "waiting_approvals"
    topics = tuple(e.TOPIC for e in FOLLOWED)

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events of other kinds move the position only."""
        self.view.write(sql.SQL("SELECT 1"), (), tracking)

    @process_event.register
    def _(self, e: WorkflowRun.RunStarted, tracking: Tracking) -> None:
        if e.workflow != OrderApproval.name:
            self.view.write(sql.SQL("SELECT 1"), (), tracking)
            return
        self.view.write(
            sql.SQL("INSERT INTO {} (run_id, customer) VALUES (%s, %s)").format(self.view.orders),
            (e.originator_id, e.input["customer"]),
            tracking,
        )

    @process_event.register
    def _(self, e: WorkflowRun.ManualStepPaused, tracking: Tracking) -> None:
        self.view.write(
            sql.SQL("UPDATE {} SET waiting = true, since = %s WHERE run_id = %s").format(
                self.view.orders
            ),
            (e.timestamp, e.originator_id),
            tracking,
        )

    @process_event.register
    def _(self, e: WorkflowRun.ManualStepResolved, tracking: Tracking) -> None:
        self._done(e.originator_id, tracking)

    @process_event.register
    def _(self, e: WorkflowRun.RunEnded, tracking: Tracking) -> None:
        self._done(e.originator_id, tracking)

    def _done(self, run_id: UUID, tracking: Tracking) -> None:
        self.view.write(
            sql.SQL("UPDATE {} SET waiting = false, since = NULL WHERE run_id = %s").format(
                self.view.orders
            ),
            (run_id,),
            tracking,
        )


# -- running both -----------------------------------------------------------------------------


def place_orders(mesh: SquidMesh) -> dict[str, list[str]]:
    """Five orders of two customers; one approved, one rejected. Expected answer per customer."""
    runs = {
        name: mesh.start(OrderApproval, {"order_id": name, "customer": customer}).run_id
        for name, customer in [
            ("o1", "acme"),
            ("o2", "acme"),
            ("o3", "globex"),
            ("o4", "acme"),
            ("o5", "globex"),
        ]
    }
    while mesh.execute_next(owner_id="example") is not None:
        pass
    mesh.approve(runs["o1"], actor="reviewer")
    mesh.reject(runs["o3"], actor="reviewer")
    while mesh.execute_next(owner_id="example") is not None:
        pass
    return {"acme": [runs["o2"], runs["o4"]], "globex": [runs["o5"]]}


def with_system(url: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Way 1: the answer the process application gives, and the expected one."""
    env = journal_env(url)
    if url.startswith("sqlite"):
        journal = Path(env["SQLITE_DBNAME"])
        env["WAITINGAPPROVALS_SQLITE_DBNAME"] = str(journal.with_suffix(".approvals.db"))
    runner = SingleThreadedRunner(system(followers=[*FOLLOWERS, WaitingApprovals]), env=env)
    with runner:
        expected = place_orders(runner.get(SquidMesh))
        approvals = runner.get(WaitingApprovals)
        answer = {c: approvals.waiting(c) for c in expected}
    return answer, expected


def with_projection_runner(url: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Way 2 (Postgres): the answer the projection's table gives, and the expected one."""
    with SquidMesh.open(url) as mesh:
        expected = place_orders(mesh)  # recorded before the runner starts: it catches up
        topics = list(WaitingApprovalsProjection.topics)
        newest = mesh.recorder.select_notifications(start=1, limit=10_000, topics=topics)[-1].id
    with ProjectionRunner(
        application_class=SquidMesh,
        projection_class=WaitingApprovalsProjection,
        view_class=PostgresWaitingApprovalsView,
        env=journal_env(url),
    ) as runner:
        runner.wait(newest, timeout=30)
        answer = {c: runner.view.waiting(c) for c in expected}
        runner.view.datastore.close()
    return answer, expected


if __name__ == "__main__":
    database_url = sys.argv[1] if len(sys.argv) > 1 else "sqlite:///orders.db"
    SquidMesh.open(database_url).close()  # creates the tables, and a Postgres schema
    answer, expected = with_system(database_url)
    print("process application:", answer, "as expected" if answer == expected else "UNEXPECTED")
    if database_url.startswith("postgres"):
        # The same journal again: this answer also holds the orders placed above.
        print("ProjectionRunner:   ", with_projection_runner(database_url)[0])
