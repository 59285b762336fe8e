"""Embedding: a host's domain event and the run it starts commit together, or not at all.

Drives examples/order_fulfilment.py (``Shop``, a ``SquidMesh`` subclass with an ``Order``
aggregate) on every backend, runs it as a script and under a ``squidmesh worker`` process,
and keeps docs/embedding.md true (excerpts verbatim, snippets run).
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID, uuid4

import pytest

from squidmesh_es import SquidMesh, SystemClock
from squidmesh_es.errors import Conflict, RunIdTaken, RunNotFound
from squidmesh_es.runtime import Clock, Transaction

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DOC = ROOT / "docs" / "embedding.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
EXCERPTS = [block for block in BLOCKS if block.startswith("# examples/")]
SNIPPETS = [block for block in BLOCKS if not block.startswith("# examples/")]
TEA = {"sku": "tea-earl-grey", "quantity": 2, "amount_cents": 1299}


def _example() -> ModuleType:
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module("order_fulfilment")
    finally:
        sys.path.remove(str(EXAMPLES))


example = _example()
Shop = example.Shop
Order = example.Order
Fulfilment = example.Fulfilment


@pytest.fixture
def open_shop(database_url: str, backend: str, clock: Clock) -> Iterator[Callable[..., Any]]:
    """Open ``Shop`` instances on the test's journal (one shared instance on memory)."""
    opened: list[SquidMesh] = []

    def open_(**options: Any) -> Any:
        if backend == "memory" and opened:
            return opened[0]
        options.setdefault("clock", clock)
        shop = Shop.open(database_url, **options)
        opened.append(shop)
        return shop

    yield open_
    for shop in opened:
        shop.close()


def payload(order_id: UUID, **overrides: Any) -> dict[str, Any]:
    return {"order_id": str(order_id), **TEA, **overrides}


def new_order(shop: Any, number: str, run_id: UUID) -> Any:
    return Order(number=number, **TEA, fulfilment_run_id=run_id, placed_at=shop.now())


def assert_no_run(shop: Any, run_id: UUID) -> None:
    with pytest.raises(RunNotFound):
        shop.get_run(run_id)
    assert all(a.run_id != str(run_id) for a in shop.get_queue().claimable(shop.now()))


# -- (a) one commit --------------------------------------------------------------------------


def test_placing_an_order_commits_its_event_and_the_run_start_in_one_insert(
    open_shop: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = open_shop()
    inserts: list[list[str]] = []
    insert_events = shop.recorder.insert_events

    def spy(stored_events: list[Any], **kwargs: Any) -> Any:
        inserts.append([e.topic for e in stored_events])
        return insert_events(stored_events, **kwargs)

    monkeypatch.setattr(shop.recorder, "insert_events", spy)

    order = shop.place_order("A-1", **TEA)

    (topics,) = inserts
    assert "shop.Order.Placed" in topics
    assert "squidmesh.WorkflowRun.RunStarted" in topics
    assert any(t.startswith("squidmesh.DispatchQueue.") for t in topics)
    reader = open_shop()
    stored = reader.find_order("A-1")
    assert (stored.version, stored.status) == (1, "placed")
    run = reader.inspect_run(stored.fulfilment_run_id)
    assert run.input["order_id"] == str(order.id)
    assert not run.terminal


def test_a_placed_order_is_fulfilled_by_draining_and_then_shipped(
    open_shop: Callable[..., Any],
) -> None:
    shop = open_shop()
    order = shop.place_order("A-1", **TEA)

    assert shop.drain(owner_id="w1") == 3

    run = shop.inspect_run(order.fulfilment_run_id)
    assert run.status == "completed"
    assert set(run.context) == {"reservation", "payment", "shipment"}
    shipped = shop.record_shipment("A-1")
    assert (shipped.status, shipped.version) == ("shipped", 2)
    assert shipped.tracking_number == run.context["shipment"]["tracking_number"]


def test_placing_the_same_order_again_returns_it_and_starts_nothing(
    open_shop: Callable[..., Any],
) -> None:
    shop = open_shop()
    first = shop.place_order("A-1", **TEA)
    queue_version = shop.get_queue().version

    again = shop.place_order("A-1", **TEA)

    assert (again.id, again.fulfilment_run_id) == (first.id, first.fulfilment_run_id)
    assert shop.get_queue().version == queue_version
    with pytest.raises(example.OrderNumberTaken):
        shop.place_order("A-1", **{**TEA, "quantity": 3})


# -- (b) a conflict on the Order -------------------------------------------------------------


def test_a_second_placement_of_the_same_order_leaves_neither_its_order_nor_its_run(
    open_shop: Callable[..., Any],
) -> None:
    shop = open_shop()
    winner = shop.place_order("A-1", **TEA)
    loser_run = uuid4()

    with pytest.raises(Conflict), shop.transaction() as tx:
        tx.start(Fulfilment, payload(winner.id), run_id=loser_run)
        tx.add(new_order(shop, "A-1", loser_run))

    assert_no_run(shop, loser_run)
    stored = open_shop().find_order("A-1")
    assert (stored.version, stored.fulfilment_run_id) == (1, winner.fulfilment_run_id)


def test_a_stale_order_version_leaves_neither_the_order_change_nor_the_run(
    open_shop: Callable[..., Any],
) -> None:
    shop = open_shop()
    shop.place_order("A-1", **TEA)
    stale = shop.find_order("A-1")
    fresh = open_shop().find_order("A-1")
    fresh.mark_shipped("TRK-other", shop.now())
    open_shop().save(fresh)
    queue_version = shop.get_queue().version
    second_run = uuid4()

    with pytest.raises(Conflict), shop.transaction() as tx:
        stale.mark_shipped("TRK-stale", shop.now())
        tx.add(stale)
        tx.start(Fulfilment, payload(stale.id), run_id=second_run)

    assert_no_run(shop, second_run)
    stored = open_shop().find_order("A-1")
    assert (stored.version, stored.tracking_number) == (2, "TRK-other")
    assert shop.get_queue().version == queue_version


# -- (c) a conflict on the run side ----------------------------------------------------------


def test_a_run_id_used_by_a_different_request_leaves_neither_the_order_nor_a_run(
    open_shop: Callable[..., Any],
) -> None:
    shop = open_shop()
    taken = uuid4()
    shop.start(Fulfilment, payload(uuid4(), sku="coffee"), run_id=taken)

    with pytest.raises(Conflict), shop.transaction() as tx:
        order = new_order(shop, "A-1", taken)
        tx.add(order)
        tx.start(Fulfilment, payload(order.id), run_id=taken)

    assert shop.find_order("A-1") is None
    assert shop.inspect_run(taken).input["sku"] == "coffee"


def test_place_order_gives_up_when_its_run_key_belongs_to_a_different_request(
    open_shop: Callable[..., Any],
) -> None:
    shop = open_shop()
    other = shop.start(Fulfilment, payload(uuid4(), sku="coffee"), idempotency_key="order:A-1")

    with pytest.raises(RunIdTaken):
        shop.place_order("A-1", **TEA)

    assert open_shop().find_order("A-1") is None
    assert shop.inspect_run(other.run_id).input["sku"] == "coffee"


def test_a_queue_write_between_decision_and_commit_leaves_neither_the_order_nor_the_run(
    open_shop: Callable[..., Any],
) -> None:
    shop = open_shop()
    other_writer = open_shop()

    with pytest.raises(Conflict), shop.transaction() as tx:
        order_id = Order.create_id("A-1")
        run_id = tx.start(Fulfilment, payload(order_id))
        tx.add(new_order(shop, "A-1", run_id))
        concurrent = other_writer.start(Fulfilment, payload(uuid4(), sku="coffee"))

    assert open_shop().find_order("A-1") is None
    assert_no_run(shop, run_id)
    assert shop.inspect_run(concurrent.run_id).status != "failed"


def test_place_order_decides_again_after_a_queue_write_and_commits_once(
    open_shop: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = open_shop()
    other_writer = open_shop()
    transaction = shop.transaction
    decisions = 0

    @contextmanager
    def raced() -> Iterator[Transaction]:
        nonlocal decisions
        decisions += 1
        with transaction() as tx:
            yield tx
            if decisions == 1:  # another process schedules work on the queue meanwhile
                other_writer.start(Fulfilment, payload(uuid4(), sku="coffee"))

    def raced_transaction() -> AbstractContextManager[Transaction]:
        return raced()

    monkeypatch.setattr(shop, "transaction", raced_transaction)

    order = shop.place_order("A-1", **TEA)

    assert decisions == 2
    assert open_shop().find_order("A-1").version == 1
    assert shop.drain(owner_id="w1") == 6
    assert shop.inspect_run(order.fulfilment_run_id).status == "completed"


# -- (d) the example and a separate worker process -------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQUIDMESH_")}
    return {**env, **extra}


def test_the_example_runs_as_a_script(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / "order_fulfilment.py")],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    assert "placing it again returned the same order: True" in completed.stdout
    assert ": completed" in completed.stdout
    assert "A-1001: shipped, tracking TRK-" in completed.stdout


@pytest.mark.shared_journal
def test_a_squidmesh_worker_process_fulfils_orders_the_shop_placed(
    open_shop: Callable[..., Any], database_url: str
) -> None:
    shop = open_shop(clock=SystemClock())
    order = shop.place_order("A-1", **TEA)
    command = [
        sys.executable, "-m", "squidmesh_es.cli", "worker",
        "--database-url", database_url, "--import", "order_fulfilment",
    ]  # fmt: skip
    worker = subprocess.Popen(
        command, env=clean_env(PYTHONPATH=str(EXAMPLES)), stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.poll() is None:
            if shop.get_run(order.fulfilment_run_id).is_terminal:
                break
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        stderr = worker.communicate(timeout=30)[1]

    assert shop.inspect_run(order.fulfilment_run_id).status == "completed", stderr
    assert shop.record_shipment("A-1").status == "shipped"


# -- docs/embedding.md -----------------------------------------------------------------------


def test_the_doc_has_excerpts_and_snippets() -> None:
    assert len(EXCERPTS) >= 2 and len(SNIPPETS) >= 2


@pytest.mark.parametrize("block", EXCERPTS, ids=lambda b: b.splitlines()[1][:40])
def test_doc_excerpt_is_verbatim_from_the_example(block: str) -> None:
    marker, _, body = block.partition("\n")

    assert body in (ROOT / marker.removeprefix("# ")).read_text()


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.splitlines()[0][:40])
def test_doc_snippet_runs(snippet: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.chdir(tmp_path)

    exec(compile(snippet, str(DOC), "exec"), {"__name__": "doc_snippet"})
