"""Order fulfilment: a DDD host whose domain change and workflow start commit together.

``Shop`` is the host's own ``eventsourcing`` application. It subclasses ``SquidMesh``, so
its ``Order`` aggregate lives in the same event store as the runtime's runs and queues,
and ``place_order`` records the order *and* starts its fulfilment run in one transaction:
there is no outbox, and no window where an order exists without its run (or a run
without its order). See docs/embedding.md.

Run it: ``python examples/order_fulfilment.py [DATABASE_URL]`` places an order, drains
the worker in this process, records the shipment and prints what happened. Without a URL
it uses a SQLite file in a temporary directory.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event
from pydantic import BaseModel

from squidmesh_es import SquidMesh
from squidmesh_es.errors import Conflict, RunIdTaken
from squidmesh_es.workflow import (
    COMPLETE,
    JSONObject,
    Ok,
    Step,
    StepContext,
    Workflow,
    manual,
    step,
    transition,
)

DECISION_ATTEMPTS = 3
"""How often a command re-reads and decides again after a `Conflict` before giving up."""


# -- the host's domain ---------------------------------------------------------------------


class Order(Aggregate):
    """A customer's order: placed with its fulfilment run, then shipped.

    Explicit topics keep stored events readable whatever module name loaded this class
    (``__main__`` when run as a script). ``@event`` bodies run again on every replay, so
    times and ids come in as arguments.
    """

    TOPIC = "shop.Order"

    class Created(Aggregate.Created):
        TOPIC = "shop.Order.Created"

    @staticmethod
    def create_id(number: str) -> UUID:
        """One order per order number: a repeated placement finds the first one."""
        return uuid5(NAMESPACE_URL, f"/shop/orders/{number}")

    @event("Placed", topic="shop.Order.Placed")
    def __init__(
        self,
        number: str,
        sku: str,
        quantity: int,
        amount_cents: int,
        fulfilment_run_id: UUID,
        placed_at: datetime,
    ) -> None:
        self.number = number
        self.sku = sku
        self.quantity = quantity
        self.amount_cents = amount_cents
        self.fulfilment_run_id = fulfilment_run_id
        self.placed_at = placed_at
        self.status = "placed"
        self.tracking_number: str | None = None

    @event("Shipped", topic="shop.Order.Shipped")
    def mark_shipped(self, tracking_number: str, shipped_at: datetime) -> None:
        self.status = "shipped"
        self.tracking_number = tracking_number


class OrderNumberTaken(Exception):
    """The order number already names a different order."""


# -- the workflow --------------------------------------------------------------------------


class FulfilmentRequest(BaseModel):
    """What fulfilling one order needs to know."""

    order_id: str
    sku: str
    quantity: int
    amount_cents: int


class ReserveStock(Step):
    """Hold the stock (a warehouse call in a real shop)."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"reservation": {"sku": input["sku"], "quantity": input["quantity"]}})


class ChargePayment(Step):
    """Charge the customer; the idempotency key stops a redelivery from charging twice."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        charge = {"amount_cents": input["amount_cents"], "idempotency_key": ctx.idempotency_key}
        return Ok({"payment": charge})


class ShipOrder(Step):
    """Hand the parcel to the carrier and keep its tracking number."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"shipment": {"tracking_number": f"TRK-{str(input['order_id'])[:8]}"}})


class Fulfilment(Workflow):
    """Reserve, charge, ship."""

    payload = FulfilmentRequest
    triggers = [manual("order_placed")]

    reserve_stock = step(ReserveStock)
    charge_payment = step(ChargePayment)
    ship_order = step(ShipOrder)

    transitions = [
        transition(reserve_stock, to=charge_payment),
        transition(charge_payment, to=ship_order),
        transition(ship_order, to=COMPLETE),
    ]


# -- the host application ------------------------------------------------------------------


class Shop(SquidMesh):
    """The shop's application: its orders and their fulfilment runs in one event store."""

    # The library names tables after the application (on Postgres); keeping the runtime's
    # name lets `squidmesh worker` and the projections open this same journal.
    name = "SquidMesh"

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        # Registered here, not only by `start`, so a process that only works runs them too.
        self.register(Fulfilment)

    def place_order(self, number: str, *, sku: str, quantity: int, amount_cents: int) -> Order:
        """Place the order and start its fulfilment run atomically; returns the order.

        Idempotent: placing the same order again returns the order already placed. A
        `Conflict` (another command moved the queue, or placed this order, meanwhile)
        means nothing was written, so the whole decision is made again from fresh state.

        Raises:
            OrderNumberTaken: ``number`` already names a different order.
            RunIdTaken: the order's run key already started a different run.
            Conflict: the journal kept moving for `DECISION_ATTEMPTS` decisions.
        """
        wanted = (sku, quantity, amount_cents)
        for _ in range(DECISION_ATTEMPTS):
            existing = self.find_order(number)
            if existing is not None:
                if (existing.sku, existing.quantity, existing.amount_cents) != wanted:
                    raise OrderNumberTaken(number)
                return existing
            try:
                with self.transaction() as tx:
                    order_id = Order.create_id(number)
                    run_id = tx.start(
                        Fulfilment,
                        {
                            "order_id": str(order_id),
                            "sku": sku,
                            "quantity": quantity,
                            "amount_cents": amount_cents,
                        },
                        idempotency_key=f"order:{number}",
                    )
                    order = Order(
                        number=number,
                        sku=sku,
                        quantity=quantity,
                        amount_cents=amount_cents,
                        fulfilment_run_id=run_id,
                        placed_at=self.now(),
                    )
                    tx.add(order)
            except RunIdTaken:
                raise  # another request owns this order's run key: deciding again cannot help
            except Conflict:
                continue  # nothing was written; the objects of this attempt are discarded
            return order
        raise Conflict("the journal kept moving while placing the order", order=number)

    def record_shipment(self, number: str) -> Order:
        """Mark the order shipped once its fulfilment run completed; returns the order.

        Raises:
            LookupError: no such order, or its run has not completed yet.
            Conflict: the order kept changing for `DECISION_ATTEMPTS` decisions.
        """
        for _ in range(DECISION_ATTEMPTS):
            order = self.find_order(number)
            if order is None:
                raise LookupError(f"no order {number!r}")
            if order.status == "shipped":
                return order
            run = self.inspect_run(order.fulfilment_run_id)
            if run.status != "completed":
                raise LookupError(f"order {number!r} is still {run.status}")
            shipment = run.context["shipment"]
            assert isinstance(shipment, dict)
            order.mark_shipped(str(shipment["tracking_number"]), self.now())
            try:
                self.save(order)
            except Conflict:
                continue
            return order
        raise Conflict("the order kept changing while recording its shipment", order=number)

    def find_order(self, number: str) -> Order | None:
        """The order with this number, or ``None``."""
        try:
            order: object = self.repository.get(Order.create_id(number))
        except AggregateNotFoundError:
            return None
        return order if isinstance(order, Order) else None


def main(url: str) -> None:
    """Place an order, run its fulfilment in this process and print what happened."""
    shop = Shop.open(url)
    assert isinstance(shop, Shop)  # `open` is typed to return `SquidMesh`
    with shop:
        order = shop.place_order("A-1001", sku="tea-earl-grey", quantity=2, amount_cents=1299)
        again = shop.place_order("A-1001", sku="tea-earl-grey", quantity=2, amount_cents=1299)
        print(f"order {order.number}: {order.status}, version {order.version}")
        print(f"placing it again returned the same order: {again.id == order.id}")
        print(f"steps executed: {shop.drain(owner_id='example-worker')}")
        run = shop.inspect_run(order.fulfilment_run_id)
        print(f"run {run.run_id}: {run.status}")
        print(f"context: {run.context}")
        shipped = shop.record_shipment("A-1001")
        print(f"order {shipped.number}: {shipped.status}, tracking {shipped.tracking_number}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as directory:
            main(f"sqlite:///{Path(directory) / 'shop.db'}")
