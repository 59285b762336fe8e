"""Server-side timeouts: a stuck writer is cut off, and the other writers go on."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from squidmesh_es import SquidMesh

from conftest import POSTGRES_BASE_URL
from engine_workflows import Sequential

pytestmark = pytest.mark.postgres_only

FAST = "&lock_timeout=1&statement_timeout=1&idle_in_transaction_timeout=1"


def _schema(database_url: str) -> str:
    return database_url.split("schema=", 1)[1].split("&", 1)[0]


def test_a_writer_stuck_holding_the_journal_is_cut_off_and_the_others_go_on(
    database_url: str, backend: str
) -> None:
    with SquidMesh.open(database_url + FAST, workflows=[Sequential]) as mesh:
        mesh.start(Sequential, {"order_id": "warm-up"})
        stuck = threading.Event()
        cut_off: list[str] = []

        def hold_the_table_and_hang() -> None:
            # A connection of the journal's own pool, so it has the journal's settings.
            try:
                with mesh.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
                    conn.execute("BEGIN")
                    conn.execute(
                        f'LOCK TABLE "{_schema(database_url)}".squidmesh_events IN EXCLUSIVE MODE'
                    )
                    stuck.set()
                    time.sleep(4)  # idle in its transaction: the server ends it after 1 s
            except Exception as exc:  # noqa: BLE001 - what the server did to it is the point
                cut_off.append(str(exc))

        holder = threading.Thread(target=hold_the_table_and_hang)
        holder.start()
        stuck.wait(5)
        began = time.monotonic()
        started = mesh.start(Sequential, {"order_id": "after"})
        waited = time.monotonic() - began
        holder.join()

    assert started.status == "running"
    assert waited < 3.5, f"the writer waited {waited:.1f} s for a stuck transaction"
    assert cut_off and "idle-in-transaction" in cut_off[0]


def test_a_writer_waits_for_a_lock_held_elsewhere_and_proceeds_once_released(
    database_url: str, backend: str
) -> None:
    with SquidMesh.open(database_url + FAST, workflows=[Sequential]) as mesh:
        mesh.start(Sequential, {"order_id": "warm-up"})
        with psycopg.connect(POSTGRES_BASE_URL.split("?", 1)[0]) as other:
            other.execute(
                f'LOCK TABLE "{_schema(database_url)}".squidmesh_events IN EXCLUSIVE MODE'
            )
            threading.Timer(1.5, other.rollback).start()
            began = time.monotonic()
            started = mesh.start(Sequential, {"order_id": "after"})
            waited = time.monotonic() - began

    assert started.status == "running"
    assert 1.0 < waited < 6


def test_a_statement_over_the_statement_timeout_is_cancelled(
    database_url: str, backend: str
) -> None:
    with SquidMesh.open(database_url + FAST) as mesh:
        with mesh.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            began = time.monotonic()
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("SELECT pg_sleep(10)")

    assert time.monotonic() - began < 5
