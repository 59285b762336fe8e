"""The CLI reads an encrypted journal with ``SQUIDMESH_CIPHER_KEY``, and refuses it without."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from security_workflows import Leaky

from squidmesh_es import SquidMesh
from squidmesh_es.cli import main
from squidmesh_es.runtime import create_cipher_key


def test_inspect_reads_an_encrypted_journal_only_with_its_key(tmp_path: Path) -> None:
    journal = f"sqlite:///{tmp_path / 'secret.db'}"
    key = create_cipher_key()
    with SquidMesh.open(journal, cipher_key=key) as mesh:
        run_id = mesh.start(Leaky, {}).run_id

    runner = CliRunner()
    ok = runner.invoke(
        main, ["inspect", run_id, "--database-url", journal], env={"SQUIDMESH_CIPHER_KEY": key}
    )
    refused = runner.invoke(
        main, ["inspect", run_id, "--database-url", journal], env={"SQUIDMESH_CIPHER_KEY": ""}
    )

    assert ok.exit_code == 0, ok.output
    assert run_id in ok.stdout
    assert refused.exit_code == 1
    assert refused.stderr.startswith("Error: cipher_key_mismatch: the journal is encrypted")
    assert key not in ok.output + refused.output
