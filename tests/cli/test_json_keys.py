"""Every ``--json`` document of the CLI has plain identifier keys (no ``terminal?``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from squidmesh_es import SquidMesh
from squidmesh_es.cli import main

HERE = Path(__file__).parent
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
IMPORTS = ("--import", "cli_workflows", "--import", "control_workflows")


def commands_with_json(group: click.Group, path: tuple[str, ...] = ()) -> set[str]:
    found: set[str] = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= commands_with_json(command, (*path, name))
        elif any(param.name == "as_json" for param in command.params):
            found.add(" ".join((*path, name)))
    return found


def bad_keys(document: object, where: str = "$") -> list[str]:
    if isinstance(document, dict):
        return [
            problem
            for key, value in document.items()
            for problem in (
                ([] if IDENTIFIER.fullmatch(key) else [f"{where}.{key}"])
                + bad_keys(value, f"{where}.{key}")
            )
        ]
    if isinstance(document, list):
        return [p for i, item in enumerate(document) for p in bad_keys(item, f"{where}[{i}]")]
    return []


GROUPS = ("workers", "projections", "deploy", "runs")


def takes_imports(args: tuple[str, ...]) -> bool:
    command: click.Command = main
    for name in args[: 2 if args[0] in GROUPS else 1]:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return any(param.name == "modules" for param in command.params)


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, str]]:
    """A SQLite journal with a routed run under way, a paused, a held and a finished run."""
    monkeypatch.syspath_prepend(str(HERE))
    from cli_workflows import CliRouted
    from control_workflows import CtlRefund, CtlRestock

    url = f"sqlite:///{tmp_path / 'keys.db'}"
    with SquidMesh.open(url, workflows=[CliRouted, CtlRefund, CtlRestock]) as mesh:
        routed = mesh.start(CliRouted, {"order_id": "o-1", "amount": 500}).run_id
        mesh.execute_next(owner_id="keys-worker")
        paused = mesh.start(CtlRefund, {"order_id": "A-1", "amount": 30}).run_id
        rejected = mesh.start(CtlRefund, {"order_id": "A-2", "amount": 30}).run_id
        held = mesh.start(CtlRestock, {"order_id": "B-2"}).run_id
        cancelled = mesh.start(CtlRestock, {"order_id": "B-3"}).run_id
        mesh.drain()
    runs = {"routed": routed, "paused": paused, "rejected": rejected, "held": held}
    return url, {**{k: str(v) for k, v in runs.items()}, "cancelled": str(cancelled)}


def test_every_json_document_of_the_cli_has_identifier_keys(
    journal: tuple[str, dict[str, str]],
) -> None:
    url, runs = journal
    invocations: list[tuple[str, ...]] = [
        ("list",),
        ("inspect", runs["routed"]),
        ("inspect", runs["routed"], "--history"),
        ("explain", runs["paused"]),
        ("graph", runs["routed"], "--history", "--scope", "auditor"),
        ("approve", runs["paused"]),
        ("reject", runs["rejected"]),
        ("resume", runs["held"]),
        ("cancel", runs["cancelled"]),
        ("replay", runs["paused"]),
        ("recover",),
        ("workers", "list"),
        ("workers", "release", "nobody"),
        ("projections", "status"),
        ("projections", "rebuild", "run_index"),
        ("deploy", "check"),
        ("runs", "migrate", "--workflow", "CliRouted"),
        ("inspect", "not-a-run-id"),  # an error document
        ("forget", runs["routed"]),  # refused: the workflow is not erasable (an error document)
    ]
    assert {" ".join(a[:2]) if a[0] in GROUPS else a[0] for a in invocations} >= (
        commands_with_json(main)
    ), "a command with --json is not exercised here"

    for args in invocations:
        extra = IMPORTS if takes_imports(args) else ()
        result = CliRunner().invoke(main, [*args, *extra, "--json", "--database-url", url])
        assert result.stdout.strip(), (args, result.output)
        document = json.loads(result.stdout)
        assert bad_keys(document) == [], args
