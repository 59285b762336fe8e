"""Crypto-shredding: an erasable run's personal data is sealed, and ``forget_run`` erases it.

After forgetting, the history still loads, inspects, explains and graphs with the values
shown as `ERASED`, and no stored row (events, snapshots, projection tables, key table)
holds the plaintext any more.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from raw_rows import raw_states
from starlette.testclient import TestClient

from squidmesh_es import SquidMesh
from squidmesh_es.errors import InvalidReplaySource, RunNotErasable
from squidmesh_es.projections import TABLES, Projections
from squidmesh_es.redaction import ERASED
from squidmesh_es.runtime import create_cipher_key
from squidmesh_es.web import create_app
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

from conftest import OpenMesh

MARKER = "alice.zq9@example.com"


class Person(BaseModel):
    email: str


class Greet(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"greeting": f"hello {input['email']}"})


class Signup(Workflow):
    erasable = True
    payload = Person
    index_keys = ["email"]
    triggers = [manual("go")]

    greet = step(Greet)
    review = approval(output="review")

    transitions = [
        transition(greet, to=review),
        transition(review, to=COMPLETE),
        transition(review, on=Outcome.ERROR, to=COMPLETE),
    ]


class PlainSignup(Workflow):
    payload = Person
    triggers = [manual("go")]

    greet = step(Greet)

    transitions = [transition(greet, to=COMPLETE)]


def signed_up(mesh: SquidMesh, *, snapshot_queue: bool = False) -> str:
    """A finished Signup run whose payload, output and approval all hold `MARKER`.

    With ``snapshot_queue``, the queue is snapshotted while the run's attempt is live.
    """
    run_id = str(mesh.start(Signup, {"email": MARKER}).run_id)
    if snapshot_queue:
        mesh.take_snapshot(mesh.get_queue().id)
    mesh.drain(owner_id="w")
    mesh.approve(run_id, actor="ops", comment=f"ok for {MARKER}", metadata={"who": MARKER})
    return run_id


def every_row(mesh: SquidMesh, projections: Projections) -> str:
    """Every stored row, read around the library where a driver exists, as one text."""
    parts = [repr(state) for state in raw_states(mesh)]
    parts += [json.dumps(projections.view.dump(t), default=str) for t in TABLES]
    storage = mesh.storage
    assert storage is not None
    if storage.backend == "sqlite":
        with sqlite3.connect(storage.env["SQLITE_DBNAME"]) as conn:
            names = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for name in names:
                parts += [repr(row) for row in conn.execute(f'SELECT * FROM "{name}"')]  # noqa: S608
    elif storage.backend == "postgres":
        import psycopg

        env = storage.env
        schema = storage.postgres_schema or "public"
        with psycopg.connect(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=int(env["POSTGRES_PORT"]),
            user=env["POSTGRES_USER"],
        ) as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (schema,),
                )
            ]
            for name in names:
                query = f'SELECT t::text FROM "{schema}"."{name}" t'  # noqa: S608 - test schema
                parts += [row[0] for row in conn.execute(query)]
    return "\n".join(parts)


def test_forgetting_erases_the_data_and_keeps_the_history(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(workflows=[Signup])
    with Projections.attach(mesh) as projections:
        run_id = signed_up(mesh)
        projections.catch_up()
        assert [str(s.run_id) for s in mesh.list_runs(index={"email": MARKER})] == [run_id]

        forgotten = mesh.forget_run(run_id, actor="dpo")
        projections.catch_up()

        assert forgotten.status == "completed"
        assert forgotten.input == {"email": ERASED}
        assert forgotten.context == {
            "greeting": ERASED,
            "review": ERASED,
            "index": {"email": ERASED},
        }
        receipt = forgotten.command_history[-1]
        assert (receipt.comment, receipt.metadata) == (ERASED, {"who": ERASED})
        assert receipt.actor == "ops"  # who did what, and when, stays readable
        shown = mesh.inspect_run(run_id, include_history=True).model_dump_json()
        assert MARKER not in shown and ERASED in shown
        assert MARKER not in json.dumps(
            mesh.inspect_run_graph(run_id, include_history=True).to_map(), default=str
        )
        assert mesh.explain_run(run_id).status == "completed"
        assert mesh.list_runs(index={"email": MARKER}) == []
        assert [str(s.run_id) for s in mesh.list_runs()] == [run_id]
        inspected = projections.view.dump(next(t for t in TABLES if t.name.endswith("inspection")))
        assert inspected[0]["document"]["input"] == {"email": ERASED}


def test_no_row_holds_the_plaintext_after_forgetting(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(workflows=[Signup])
    with Projections.attach(mesh) as projections:
        run_id = signed_up(mesh, snapshot_queue=True)
        mesh.take_snapshot(mesh.get_run(run_id).id)
        projections.catch_up()
        # Sealed in the journal from the start; only the projections held it in clear.
        assert not any(MARKER.encode() in state for state in raw_states(mesh))
        assert MARKER in every_row(mesh, projections)

        mesh.forget_run(run_id)
        projections.catch_up()

        assert MARKER not in every_row(mesh, projections)
        assert mesh.data_keys.get(mesh.get_run(run_id).id) is None


def test_a_run_under_way_is_cancelled_before_it_is_forgotten(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(workflows=[Signup])
    run_id = mesh.start(Signup, {"email": MARKER}).run_id

    forgotten = mesh.forget_run(run_id)

    assert forgotten.status == "cancelled"
    assert forgotten.command_history[-1].signal_type == "cancel_run"
    assert mesh.drain(owner_id="w") == 0  # its step never runs on erased data


def test_forgetting_is_idempotent_and_a_forgotten_run_cannot_be_replayed(
    open_mesh: OpenMesh,
) -> None:
    mesh = open_mesh(workflows=[Signup])
    run_id = signed_up(mesh)
    first = mesh.forget_run(run_id)
    version = mesh.get_run(run_id).version

    again = mesh.forget_run(run_id)

    assert again.input == first.input == {"email": ERASED}
    assert mesh.get_run(run_id).version == version  # nothing written the second time
    with pytest.raises(InvalidReplaySource) as refused:
        mesh.replay(run_id)
    assert refused.value.reason == "data_forgotten"


def test_a_run_stored_in_clear_cannot_be_forgotten(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(workflows=[PlainSignup])
    run_id = mesh.start(PlainSignup, {"email": MARKER}).run_id
    before = mesh.get_run(run_id).version

    with pytest.raises(RunNotErasable) as refused:
        mesh.forget_run(run_id)

    assert refused.value.code == "run_not_erasable"
    assert mesh.get_run(run_id).version == before
    assert mesh.inspect_run(run_id).input == {"email": MARKER}


@pytest.mark.shared_journal
def test_another_process_sees_the_erasure_even_with_the_run_cached(open_mesh: OpenMesh) -> None:
    writer = open_mesh(workflows=[Signup])
    reader = open_mesh(workflows=[Signup])
    run_id = signed_up(writer)
    assert reader.inspect_run(run_id).input == {"email": MARKER}  # key and run now cached

    writer.forget_run(run_id)

    assert reader.inspect_run(run_id).input == {"email": ERASED}
    fresh = open_mesh(workflows=[Signup])
    assert fresh.inspect_run(run_id).context["greeting"] == ERASED


def test_a_read_only_open_creates_no_key_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    with SquidMesh.open(url, workflows=[PlainSignup]) as mesh:
        run_id = mesh.start(PlainSignup, {"email": MARKER}).run_id
    with sqlite3.connect(tmp_path / "journal.db") as conn:
        conn.execute("DROP TABLE squidmesh_run_keys")  # as a journal from before 0.3

    with SquidMesh.open(url, create=False) as mesh:
        assert mesh.inspect_run(run_id).input == {"email": MARKER}

    with sqlite3.connect(tmp_path / "journal.db") as conn:
        names: list[Any] = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    assert "squidmesh_run_keys" not in names


def test_the_destroyed_key_leaves_no_bytes_in_the_sqlite_files(tmp_path: Path) -> None:
    with SquidMesh.open(f"sqlite:///{tmp_path / 'journal.db'}", workflows=[Signup]) as mesh:
        run_id = signed_up(mesh)
        key = mesh.data_keys.get(mesh.get_run(run_id).id)
        assert key is not None and any(key in f.read_bytes() for f in tmp_path.iterdir())

        mesh.forget_run(run_id)

        assert not any(key in f.read_bytes() for f in tmp_path.iterdir())  # file and log


@pytest.mark.parametrize("cipher", [False, True], ids=["clear", "cipher_key"])
def test_with_a_cipher_key_the_data_keys_are_stored_encrypted(tmp_path: Path, cipher: bool) -> None:
    key = create_cipher_key() if cipher else None
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    with SquidMesh.open(url, workflows=[Signup], cipher_key=key) as mesh:
        run_id = signed_up(mesh)
        data_key = mesh.data_keys.get(mesh.get_run(run_id).id)
    with sqlite3.connect(tmp_path / "journal.db") as conn:
        (stored,) = conn.execute("SELECT data_key FROM squidmesh_run_keys").fetchone()

    assert (bytes(stored) == data_key) is not cipher

    with SquidMesh.open(url, workflows=[Signup], cipher_key=key) as reopened:
        assert reopened.inspect_run(run_id).input == {"email": MARKER}


def test_the_dashboard_shows_a_forgotten_run_as_erased(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(workflows=[Signup])
    run_id = signed_up(mesh)
    mesh.forget_run(run_id)
    app = create_app(mesh, scope="auditor")  # the scope that shows inputs and outputs
    try:
        with TestClient(app, base_url="http://127.0.0.1") as client:
            page = client.get(f"/runs/{run_id}")
            listing = client.get("/")
    finally:
        app.state.dashboard.close()

    assert page.status_code == 200 and ERASED in page.text and MARKER not in page.text
    assert listing.status_code == 200 and run_id in listing.text
