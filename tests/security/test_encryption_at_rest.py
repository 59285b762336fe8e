"""Encryption at rest: stored rows hold no plaintext, and a key that does not fit is refused."""

from __future__ import annotations

import pytest
from raw_rows import raw_states
from security_workflows import Leaky

from squidmesh_es import SquidMesh
from squidmesh_es.errors import CipherKeyMismatch, InvalidArgument
from squidmesh_es.projections import Projections
from squidmesh_es.runtime import create_cipher_key

from conftest import OpenMesh

KEY = create_cipher_key()
MARKER = "zqplaintextcustomer"


def start_and_snapshot(mesh: SquidMesh) -> str:
    run_id = mesh.start(Leaky, {}, metadata={"customer": MARKER}).run_id
    mesh.drain(owner_id="w")
    mesh.take_snapshot(mesh.get_run(run_id).id)
    return run_id


def test_events_and_snapshots_hold_no_plaintext(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(cipher_key=KEY)

    run_id = start_and_snapshot(mesh)

    rows = raw_states(mesh)
    assert len(rows) > 3
    assert not any(MARKER.encode() in row or b"workflow" in row for row in rows)
    receipt = mesh.inspect_run(run_id, include_history=True).command_history[0]
    assert receipt.metadata == {"customer": MARKER}


@pytest.mark.shared_journal
def test_the_same_key_reads_the_journal_back_with_its_projections(open_mesh: OpenMesh) -> None:
    run_id = start_and_snapshot(open_mesh(cipher_key=KEY))

    reopened = open_mesh(cipher_key=KEY)

    assert reopened.inspect_run(run_id).workflow == "Leaky"
    with Projections.attach(reopened):
        assert [str(s.run_id) for s in reopened.list_runs()] == [run_id]


@pytest.mark.shared_journal
def test_a_wrong_key_is_refused_at_open(open_mesh: OpenMesh) -> None:
    start_and_snapshot(open_mesh(cipher_key=KEY))

    with pytest.raises(CipherKeyMismatch) as refused:
        open_mesh(cipher_key=create_cipher_key())

    assert refused.value.code == "cipher_key_mismatch" and refused.value.key_given


@pytest.mark.shared_journal
def test_an_encrypted_journal_opened_without_a_key_is_refused(open_mesh: OpenMesh) -> None:
    start_and_snapshot(open_mesh(cipher_key=KEY))

    with pytest.raises(CipherKeyMismatch) as refused:
        open_mesh()

    assert not refused.value.key_given
    assert "SQUIDMESH_CIPHER_KEY" in str(refused.value)


@pytest.mark.shared_journal
def test_a_plain_journal_opened_with_a_key_is_refused(open_mesh: OpenMesh) -> None:
    start_and_snapshot(open_mesh())

    with pytest.raises(CipherKeyMismatch):
        open_mesh(cipher_key=KEY)


@pytest.mark.parametrize("bad", ["", "not base64!", "c2hvcnQ=", "QUJDREVGR0hJSktMTU5PUA"])
def test_a_malformed_key_is_refused_without_being_repeated(database_url: str, bad: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        SquidMesh.open(database_url, cipher_key=bad)

    assert refused.value.code == "invalid_option"
    assert not bad or bad not in str(refused.value)


@pytest.mark.shared_journal
def test_from_env_reads_the_key_from_squidmesh_cipher_key(database_url: str) -> None:
    environ = {"SQUIDMESH_DATABASE_URL": database_url, "SQUIDMESH_CIPHER_KEY": KEY}
    with SquidMesh.from_env(environ) as mesh:
        start_and_snapshot(mesh)

    with pytest.raises(CipherKeyMismatch):
        SquidMesh.from_env({"SQUIDMESH_DATABASE_URL": database_url})
