"""Options and helpers the ``squidmesh`` commands share: journal, imports, scope, errors."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import IO, Any, NoReturn, TypeVar

import click

from squidmesh_es.errors import SquidMeshError
from squidmesh_es.read_model import VisibilityScope
from squidmesh_es.runtime import (
    DEFAULT_DATABASE_URL,
    SquidMesh,
    partition_limit_from_env,
    partitions_from_env,
)
from squidmesh_es.workflow import ActionRegistry, Workflow

__all__ = [
    "database_url_option",
    "fail",
    "import_option",
    "json_option",
    "import_modules",
    "load_worker_code",
    "load_workflows",
    "open_journal",
    "scope_option",
    "workflows_of",
]

F = TypeVar("F", bound=Callable[..., object])


def database_url_option(
    help: str = "Journal to read (also SQUIDMESH_DATABASE_URL).",
) -> Callable[[F], F]:
    """``--database-url``, read from ``SQUIDMESH_DATABASE_URL`` when not given."""
    return click.option(
        "--database-url",
        envvar="SQUIDMESH_DATABASE_URL",
        default=DEFAULT_DATABASE_URL,
        show_default=True,
        help=help,
    )


def open_journal(database_url: str, **options: Any) -> SquidMesh:
    """``SquidMesh.open(database_url, **options)``, encrypted with ``SQUIDMESH_CIPHER_KEY``.

    ``SQUIDMESH_ON_DEFINITION_CHANGE=fail`` puts the command (a worker, say) in strict mode;
    ``SQUIDMESH_QUEUE_PARTITIONS`` spreads the runs it starts (a scheduler's) over partitions,
    and ``SQUIDMESH_QUEUE_PARTITION_LIMIT`` says when their count grows.

    The key is read from the environment only: a command-line flag would show it in the
    process list and the shell history.
    """
    cipher_key = os.environ.get("SQUIDMESH_CIPHER_KEY") or None
    on_change = os.environ.get("SQUIDMESH_ON_DEFINITION_CHANGE") or "follow"
    options.setdefault("on_definition_change", on_change)
    options.setdefault("queue_partitions", partitions_from_env(os.environ))
    options.setdefault("queue_partition_limit", partition_limit_from_env(os.environ))
    return SquidMesh.open(database_url, cipher_key=cipher_key, **options)


def import_option(*, required: bool = False, help: str | None = None) -> Callable[[F], F]:
    """``--import MODULE`` (repeatable): modules whose Workflow classes get registered."""
    return click.option(
        "--import",
        "modules",
        multiple=True,
        required=required,
        metavar="MODULE",
        help=help
        or "Module whose Workflow classes are registered, so graphs get their edges; repeat "
        "for several.",
    )


def json_option(f: F) -> F:
    """``--json``: print the JSON document instead of the human view."""
    return click.option("--json", "as_json", is_flag=True, help="Print as JSON.")(f)


def scope_option(f: F) -> F:
    """``--scope``: the visibility scope the output is redacted to (default operator)."""
    return click.option(
        "--scope",
        type=click.Choice([s.value for s in VisibilityScope]),
        default=VisibilityScope.OPERATOR.value,
        show_default=True,
        help="Redact for this reader: external, operator or auditor (everything).",
    )(f)


def workflows_of(module: ModuleType) -> list[type[Workflow]]:
    """Concrete workflows defined in ``module`` (not the ones it merely imports)."""
    return [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, Workflow)
        and value.__module__ == module.__name__
        and value._spec is not None
    ]


def load_workflows(modules: Iterable[str]) -> list[type[Workflow]]:
    """The Workflow classes defined in each of ``modules``, imported by name.

    Modules are found on ``sys.path`` plus the working directory, as with ``python -m``.

    Raises:
        click.BadParameter: a module cannot be imported or defines no workflow (exit 2).
    """
    found: list[type[Workflow]] = []
    for name, module in import_modules(modules):
        workflows = workflows_of(module)
        if not workflows:
            raise click.BadParameter(f"no Workflow classes in {name!r}", param_hint="--import")
        found.extend(workflows)
    return found


def load_worker_code(
    modules: Iterable[str], actions: str | None
) -> tuple[list[type[Workflow]], ActionRegistry | None]:
    """The workflows of ``modules`` and the action registry a worker executes with.

    The registry is ``actions`` (``MODULE:NAME``) when given, else the one `ActionRegistry`
    defined at the top level of the imported modules, if any: runs of runtime-authored specs
    and dynamic nodes need it.

    Raises:
        click.BadParameter: an import fails, ``actions`` does not name a registry, several
            registries leave the choice open, or there is neither a workflow nor a registry.
    """
    workflows: list[type[Workflow]] = []
    registries: list[tuple[str, ActionRegistry]] = []
    for name, module in import_modules(modules):
        workflows.extend(workflows_of(module))
        for attribute, value in vars(module).items():
            # One registry imported by several modules (or named twice) is still one.
            if isinstance(value, ActionRegistry) and all(value is not r for _, r in registries):
                registries.append((f"{name}:{attribute}", value))
    registry: ActionRegistry | None = None
    if actions is not None:
        registry = _registry_named(actions)
    elif len(registries) > 1:
        names = ", ".join(where for where, _ in registries)
        raise click.BadParameter(
            f"several action registries ({names}); choose one with --actions",
            param_hint="--import",
        )
    elif registries:
        registry = registries[0][1]
    if not workflows and registry is None:
        raise click.BadParameter(
            "no Workflow classes and no ActionRegistry in the imported modules",
            param_hint="--import",
        )
    return workflows, registry


def _registry_named(reference: str) -> ActionRegistry:
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise click.BadParameter("expected MODULE:NAME", param_hint="--actions")
    [(_, module)] = import_modules([module_name], param_hint="--actions")
    value = getattr(module, attribute, None)
    if not isinstance(value, ActionRegistry):
        raise click.BadParameter(f"{reference!r} is not an ActionRegistry", param_hint="--actions")
    return value


def import_modules(
    modules: Iterable[str], *, param_hint: str = "--import"
) -> list[tuple[str, ModuleType]]:
    """Import ``modules`` by name, from ``sys.path`` and the working directory.

    Raises:
        click.BadParameter: a module cannot be imported (exit 2).
    """
    names = list(modules)
    if names and "" not in sys.path and os.getcwd() not in sys.path:
        # As ``python -m`` does: the installed script would not see the project it runs in.
        sys.path.insert(0, os.getcwd())
    imported = []
    for name in names:
        try:
            imported.append((name, importlib.import_module(name)))
        except ImportError as exc:
            raise click.BadParameter(
                f"cannot import {name!r}: {exc}", param_hint=param_hint
            ) from exc
    return imported


def fail(error: SquidMeshError, *, as_json: bool, hint: str | None = None) -> NoReturn:
    """End the command on one of our errors: exit status 1, never a traceback.

    With ``as_json`` the error goes to stdout as ``{"error": {"code", "message", "details"}}``;
    otherwise one line ``Error: <code>: <message>`` goes to stderr. A ``hint`` (what the
    operator can do about it) follows on stderr as ``hint: ...``, after the error line so
    that scripts reading the first line still get the code.
    """
    if as_json:
        click.echo(json.dumps({"error": error.to_dict()}))
        if hint:
            click.echo(f"hint: {hint}", err=True)
        click.get_current_context().exit(1)
    raise _Refusal(f"{error.code}: {error}", hint=hint) from error


class _Refusal(click.ClickException):
    """A `click.ClickException` (exit 1, ``Error: ...`` on stderr) with an optional hint."""

    def __init__(self, message: str, *, hint: str | None) -> None:
        super().__init__(message)
        self.hint = hint

    def show(self, file: IO[Any] | None = None) -> None:
        """Print ``Error: <message>``, then the hint, on stderr (or ``file``)."""
        super().show(file)
        if self.hint:
            click.echo(f"hint: {self.hint}", file=file, err=file is None)
