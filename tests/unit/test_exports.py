"""The public names are a contract: adding one is deliberate, removing one is breaking."""

from __future__ import annotations

import squidmesh_es
import squidmesh_es.domain
import squidmesh_es.errors
import squidmesh_es.runtime


def test_top_level_exports() -> None:
    assert set(squidmesh_es.__all__) == {
        "ActionRegistry",
        "Clock",
        "Defer",
        "DispatchOrder",
        "DynamicWorkPreview",
        "EditorSpec",
        "Error",
        "Explanation",
        "LoopLocal",
        "Ok",
        "Retry",
        "RunGraph",
        "RunSnapshot",
        "RunSummary",
        "Signal",
        "SquidMesh",
        "Step",
        "StepContext",
        "SystemClock",
        "Worker",
        "Workflow",
        "WorkflowSpec",
        "__version__",
        "redact",
        "validate_spec",
    }
    assert all(hasattr(squidmesh_es, name) for name in squidmesh_es.__all__)


def test_domain_exports_the_aggregates() -> None:
    from squidmesh_es.domain import DispatchQueue, WorkflowRun

    assert WorkflowRun.TOPIC == "squidmesh.WorkflowRun"
    assert DispatchQueue.TOPIC == "squidmesh.DispatchQueue"
    assert all(hasattr(squidmesh_es.domain, name) for name in squidmesh_es.domain.__all__)


def test_every_error_has_a_stable_code_and_is_exported() -> None:
    errors = squidmesh_es.errors
    classes = [getattr(errors, n) for n in errors.__all__ if isinstance(getattr(errors, n), type)]
    codes = {cls.code for cls in classes if issubclass(cls, errors.SquidMeshError) and cls.code}
    assert {
        "conflict",
        "stale_claim",
        "not_found",
        "terminal_run",
        "invalid_journal_entry",
    } <= codes
    assert all(n in errors.__all__ for n in ("Conflict", "StaleClaim", "RunTerminal"))


def test_no_private_names_in_any_all() -> None:
    for module in (squidmesh_es, squidmesh_es.domain, squidmesh_es.errors, squidmesh_es.runtime):
        assert all(not n.startswith("_") or n == "__version__" for n in module.__all__)
