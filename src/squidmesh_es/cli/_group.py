"""How every ``squidmesh`` command ends on an ordinary mistake: one line, a fixed exit status.

Exit status 0 is success, 1 a refusal or failure (one of our errors, an unreachable or
refusing database), 2 a usage error (click's: unknown command, bad option value, missing
argument). Anything else is a bug and keeps its traceback. No message shows a password:
driver messages go through the redaction policy first.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, NoReturn

import click
import psycopg
from eventsourcing.persistence import PersistenceError

from squidmesh_es.errors import SquidMeshError, StorageUnavailable
from squidmesh_es.redaction import redact_text

__all__ = ["SquidMeshGroup"]

_JSON = "squidmesh.json"


class SquidMeshGroup(click.Group):
    """A click group that turns our errors and database failures into exit status 1."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Note whether ``--json`` was asked for, so a failure is printed as JSON too."""
        ctx.meta.setdefault(_JSON, "--json" in args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; on failure print ``Error: <code>: <message>`` or ``{"error": ...}``."""
        try:
            return super().invoke(ctx)
        except SquidMeshError as error:
            _fail(ctx, error)
        except sqlite3.Error as exc:
            _fail(ctx, _unavailable("sqlite", exc))
        except psycopg.Error as exc:
            _fail(ctx, _unavailable("postgres", exc))
        except PersistenceError as exc:
            _fail(ctx, _unavailable("database", exc))


def _unavailable(backend: str, exc: BaseException) -> StorageUnavailable:
    return StorageUnavailable(backend=backend, reason=redact_text(str(exc)))


def _fail(ctx: click.Context, error: SquidMeshError) -> NoReturn:
    if ctx.meta.get(_JSON):
        click.echo(json.dumps({"error": error.to_dict()}))
    else:
        click.echo(f"Error: {error.code}: {redact_text(str(error))}", err=True)
    ctx.exit(1)
