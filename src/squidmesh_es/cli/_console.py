"""Tables and progress for people: colour, boxes and live bars on a terminal, plain text else.

rich decides what a terminal is: a stream whose ``isatty()`` is true, or ``FORCE_COLOR`` /
``TTY_COMPATIBLE=1``; ``NO_COLOR`` turns colour off and ``TERM=dumb`` turns live display
off. Piped or redirected output gets the same table as plain columns (no colour, no box, no
width limit, no trailing spaces), so ``grep`` and ``awk`` keep working, and no progress.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import click
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["STATUS_STYLES", "console", "print_table", "spinner"]

STATUS_STYLES: dict[str, str] = {
    "completed": "green",
    "live": "green",
    "caught_up": "green",
    "failed": "red",
    "silent": "red",
    "cancelled": "bright_black",
    "stopped": "bright_black",
    "released": "bright_black",
    "pending": "yellow",
    "running": "yellow",
    "retrying": "yellow",
    "behind": "yellow",
    "paused": "cyan",
}
"""Colour of a status word wherever a table shows one (run, worker or projection state)."""

_PIPE_WIDTH = 10_000
"""Off a terminal nothing wraps: a row stays one line however long."""


def console(*, stderr: bool = False) -> Console:
    """A console on the current stdout (or stderr), sized for a pipe when not a terminal.

    The stream is looked up on each call: click's test runner swaps ``sys.stdout``.
    """
    stream = sys.stderr if stderr else sys.stdout
    terminal = Console(file=stream, highlight=False, markup=False, emoji=False)
    if terminal.is_terminal:
        return terminal
    return Console(
        file=stream, highlight=False, markup=False, emoji=False, width=_PIPE_WIDTH, no_color=True
    )


def print_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    right: Sequence[int] = (),
    status_column: int | None = None,
) -> None:
    """Print ``rows`` under ``headers``; columns in ``right`` align right.

    The ``status_column``'s words are coloured by `STATUS_STYLES`. A table wider than the
    terminal is not squeezed (run ids must stay whole to be copied): the terminal wraps it,
    as it wraps any long line.
    """
    out = console()
    terminal = out.is_terminal
    table = Table(
        box=box.SIMPLE_HEAD if terminal else None,
        show_edge=False,
        pad_edge=False,
        padding=(0, 2, 0, 0),
        header_style="bold" if terminal else "",
    )
    for index, header in enumerate(headers):
        table.add_column(header, justify="right" if index in right else "left", no_wrap=True)
    for row in rows:
        cells = [Text(cell) for cell in row]
        if status_column is not None:
            cells[status_column].stylize(STATUS_STYLES.get(row[status_column], ""))
        table.add_row(*cells)
    if terminal:
        unbounded = out.options.update_width(_PIPE_WIDTH)
        out.width = max(out.width, Measurement.get(out, unbounded, table).maximum)
        out.print(table)
        return
    with out.capture() as captured:
        out.print(table)
    for line in captured.get().splitlines():
        click.echo(line.rstrip())


@contextmanager
def spinner(message: str) -> Iterator[None]:
    """A spinner with ``message`` on stderr while the block runs, on a terminal only."""
    err = console(stderr=True)
    if not err.is_terminal or err.is_dumb_terminal:
        yield
        return
    with err.status(message):
        yield
