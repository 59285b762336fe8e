"""examples/custom_read_model.py: a host's own view, as a process application and a projection."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from squidmesh_es import SquidMesh

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def example() -> ModuleType:
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module("custom_read_model")
    finally:
        sys.path.remove(str(EXAMPLES))


def test_the_process_application_answers_orders_waiting_per_customer(
    example: ModuleType, database_url: str
) -> None:
    SquidMesh.open(database_url).close()

    answer, expected = example.with_system(database_url)

    assert answer == expected
    assert sum(len(v) for v in answer.values()) == 3


@pytest.mark.postgres_only
def test_the_projection_runner_answers_orders_waiting_per_customer(
    example: ModuleType, database_url: str
) -> None:
    answer, expected = example.with_projection_runner(database_url)

    assert answer == expected
    assert sum(len(v) for v in answer.values()) == 3
