"""Closing attached projections waits for the runtime's catch-up thread.

Before, ``with Projections.attach(mesh):`` closed the SQLite view while the background thread
could still be reading it, which crashed the interpreter (SIGSEGV) once in a few hundred
closes. A crash cannot be caught in-process, so the loop runs in a child process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ENGINE_TESTS = Path(__file__).resolve().parents[1] / "engine"

LOOP = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from engine_workflows import Sequential
    from squidmesh_es import SquidMesh
    from squidmesh_es.projections import Projections

    with SquidMesh.open(sys.argv[1], workflows=[Sequential]) as mesh:
        for i in range(300):
            mesh.start(Sequential, {"order_id": f"o{i}"})
            with Projections.attach(mesh):
                mesh.start(Sequential, {"order_id": f"p{i}"})
                assert mesh.list_runs(limit=1)
    print("closed cleanly")
    """
)


def test_attach_and_close_in_a_loop_never_crashes_the_process(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOOP, f"sqlite:///{tmp_path / 'journal.db'}", str(ENGINE_TESTS)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert "closed cleanly" in result.stdout


def test_a_closed_projections_object_is_no_longer_nudged(tmp_path: Path) -> None:
    from squidmesh_es import SquidMesh
    from squidmesh_es.errors import InvalidArgument
    from squidmesh_es.projections import Projections

    with SquidMesh.open(f"sqlite:///{tmp_path / 'journal.db'}") as mesh:
        with Projections.attach(mesh):
            assert mesh.list_runs() == []
        try:
            mesh.list_runs(index={"order_id": "o1"})  # only the catalog answers it
        except InvalidArgument as refused:
            assert refused.option == "index"
        else:
            raise AssertionError("list_runs still used closed projections")
