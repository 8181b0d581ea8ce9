"""What the client commands print: rich tables for people, ``--json`` for scripts, and exit codes.

Exit codes mean one thing each, so a script can branch on them: 0 ok, 1 error, 2 usage (typer's
own for a bad option), 3 not found, 4 unauthorised. An error goes to stderr as one line saying
what went wrong and, where there is one, what to do next.

Only ``typer`` is imported here at module level: rich loads when something is printed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

OK = 0
ERROR = 1
USAGE = 2
NOT_FOUND = 3
UNAUTHORISED = 4

Json = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts), not a table.")]

# Tables are at least this wide (ids are never cut); a narrower terminal wraps the lines.
MIN_TABLE_WIDTH = 100


def fail(message: str, code: int = ERROR) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def console(*, stderr: bool = False, wide: bool = False) -> Console:
    from rich.console import Console

    made = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if wide and made.width < MIN_TABLE_WIDTH:
        made = Console(stderr=stderr, highlight=False, width=MIN_TABLE_WIDTH)
    return made


def print_json(value: Any) -> None:
    """Indented JSON on stdout (no colour: it is for scripts)."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def print_table(
    rows: Iterable[Sequence[object]], columns: Sequence[str], *, title: str | None = None
) -> None:
    """A simple-headed table; ``None`` cells print empty.

    Every column but the last is kept on one line (ids are copied into the next command: never
    cut); the last, free text, wraps. The table is as wide as that needs, even if the terminal
    is narrower (the terminal then wraps lines, which a script reading the output never sees).
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table

    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    table = Table(
        *columns,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        title=title,
        title_justify="left",
    )
    for column in table.columns[:-1]:
        column.no_wrap = True
    table.columns[-1].overflow = "fold"
    for row in cells:
        table.add_row(*row)
    fixed = sum(
        max([len(name), *(len(row[n]) for row in cells)]) + 3 for n, name in enumerate(columns[:-1])
    )
    terminal = Console().width
    width = max(terminal, fixed + max(len(columns[-1]), 24) + 4)
    Console(width=width, highlight=False).print(table)


def print_fields(pairs: Sequence[tuple[str, object]]) -> None:
    """``name  value`` lines, names aligned: one resource shown in full."""
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in pairs:
        table.add_row(name, "" if value is None else str(value))
    console(wide=True).print(table)


def short(ts: str | None) -> str:
    """``2030-01-31T12:00:00.000Z`` as ``2030-01-31 12:00:00``."""
    return ts[:19].replace("T", " ") if ts else ""


def clip(text: object, width: int = 60) -> str:
    """One line, at most ``width`` characters (an ellipsis marks the cut)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr while the block runs; yields ``advance(n)``.

    Off (a no-op) when stdout is not a terminal, so piped output and scripts stay clean."""
    if not sys.stdout.isatty():
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
