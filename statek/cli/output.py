"""Everything the CLI prints goes through here: literal text, quoted file names, tables that fit.

Terminal safety (the one place it is done): any text that came from outside (a price file's model
name, a LiteLLM JSON key, a file name, an exception message) is printed *literally*:

- :func:`clean` replaces every character that is not printable (C0/C1 controls, ESC, BEL, DEL, line
  and paragraph separators, bidi overrides) by its visible Python escape (``\\x1b``, ``\\n``,
  ``\\u202e``), so no escape sequence reaches the terminal and no text can start a line of its own;
- :func:`literal` wraps cleaned text in a :class:`rich.text.Text`, which rich never parses as markup
  (``[/]`` or ``[link=...]`` show as typed);
- :func:`shown_path` quotes a file name when it holds anything :func:`clean` would change, a quote
  or a space, so a file named ``"a\\nOK: 1 rows"`` cannot print a fake line.

Tables (:func:`fitted_table`) fit the console's width by dropping the least important columns first
(named in the caption); money columns are never wrapped or cut, long names fold. On a pipe the
console is wide and colourless (:func:`console`), so nothing is dropped or wrapped there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = [
    "PIPE_WIDTH",
    "ColumnSpec",
    "clean",
    "console",
    "echo",
    "fitted_table",
    "literal",
    "shown_path",
    "table_width",
]

PIPE_WIDTH = 240
"""Width of output that does not go to a terminal: wide enough that piped tables are never cut."""


def clean(value: object) -> str:
    """``str(value)`` with every non-printable character replaced by its visible escape."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def literal(value: object, style: str = "") -> Text:
    """Text rich prints exactly as given (no markup, no control characters)."""
    return Text(clean(value), style=style)


def shown_path(path: object) -> str:
    """A file name as printed: as is when plain, else quoted with its escapes visible."""
    text = str(path)
    if text.isprintable() and not any(c in text for c in " '\"") and text:
        return text
    return "'" + clean(text.replace("\\", "\\\\").replace("'", "\\'")) + "'"


def echo(message: object, *, err: bool = False) -> None:
    """``typer.echo`` of :func:`clean` text: one line, whatever the message holds."""
    typer.echo(clean(message), err=err)


def console(stderr: bool = False, width: int | None = None) -> Console:
    """A console that never highlights: on a terminal, lines wrap at its width; otherwise nothing
    wraps and tables are :data:`PIPE_WIDTH` wide."""
    out = Console(stderr=stderr, highlight=False, width=width)
    if width is None and not out.is_terminal:
        out = Console(stderr=stderr, highlight=False, soft_wrap=True, width=PIPE_WIDTH)
    return out


@dataclass(frozen=True)
class ColumnSpec:
    """One table column.

    ``kind``: ``"number"`` (right-aligned, never wrapped or cut: prices, costs, counts), ``"text"``
    (never wrapped: short labels) or ``"fold"`` (long names: folded onto several lines when narrow).
    ``keep``: the higher, the later the column is dropped when the table is too wide; ``None``
    never drops it. ``fold_at``: the narrowest a ``"fold"`` column gets (or its widest cell, if
    narrower).
    """

    title: str
    kind: Literal["number", "text", "fold"] = "text"
    keep: int | None = None
    fold_at: int = 12


def _min_width(spec: ColumnSpec, cells: Iterable[Text]) -> int:
    widest = max([len(spec.title), *(c.cell_len for c in cells)])
    return min(widest, max(spec.fold_at, len(spec.title))) if spec.kind == "fold" else widest


def table_width(widths: Sequence[int]) -> int:
    """Width of a :func:`fitted_table` whose columns are ``widths`` wide: one space of padding
    either side of each column but the outer two, and a one-character rule between columns."""
    return sum(widths) + 3 * len(widths) - 3 if widths else 0


def _build(
    title: Text | None,
    specs: Sequence[ColumnSpec],
    rows: Sequence[Sequence[Text]],
    shown: Sequence[int],
    caption: Text | None,
    footer: Sequence[Text] | None,
) -> Table:
    table = Table(
        title=title,
        caption=caption,
        box=box.SIMPLE_HEAD,
        title_justify="left",
        caption_justify="left",
        pad_edge=False,
        show_edge=False,
        show_footer=footer is not None,
        footer_style="bold",
    )
    every = [*rows, footer] if footer is not None else rows
    for i in shown:
        spec = specs[i]
        least = _min_width(spec, (r[i] for r in every))
        end = footer[i] if footer is not None else ""
        if spec.kind == "fold":
            table.add_column(spec.title, end, overflow="fold", min_width=least)
        else:
            justify: Literal["left", "right"] = "right" if spec.kind == "number" else "left"
            table.add_column(spec.title, end, no_wrap=True, min_width=least, justify=justify)
    for r in rows:
        table.add_row(*(r[i] for i in shown))
    return table


def fitted_table(
    out: Console,
    specs: Sequence[ColumnSpec],
    rows: Iterable[Sequence[object]],
    *,
    title: object = None,
    caption: object = None,
    footer: Sequence[object] | None = None,
    wider: str = "--json or a wider terminal shows them",
) -> Table:
    """A table of ``rows`` (cells made :func:`literal`) that fits ``out``'s width.

    Columns are dropped, lowest ``keep`` first (an all-empty column before any other), until the
    table's narrowest rendering fits; the caption then names what was left out. Columns with
    ``keep=None`` always stay, so a table can still be wider than a very narrow console. ``footer``:
    one cell per column, shown under the rows (a total). ``wider``: how to see the dropped columns.
    """
    cells = [[c if isinstance(c, Text) else literal(c) for c in r] for r in rows]
    foot = None if footer is None else [c if isinstance(c, Text) else literal(c) for c in footer]
    every = [*cells, foot] if foot is not None else cells
    head = None if title is None else literal(title, "italic")
    base = None if caption is None else literal(caption)
    empty = {i for i in range(len(specs)) if not any(r[i].plain for r in cells)}
    order = sorted(
        (i for i, s in enumerate(specs) if s.keep is not None),
        key=lambda i: (i not in empty, specs[i].keep, -i),
    )
    least = [_min_width(s, (r[i] for r in every)) for i, s in enumerate(specs)]
    shown = list(range(len(specs)))
    dropped: list[int] = []
    while True:
        note = base
        names = ", ".join(specs[i].title for i in sorted(dropped) if i not in empty)
        if names:
            hidden = literal(f"not shown at this width: {names} ({wider})")
            note = Text("\n").join([base, hidden]) if base is not None else hidden
        if not order or table_width([least[i] for i in shown]) <= out.width:
            return _build(head, specs, cells, shown, note, foot)
        drop = order.pop(0)
        shown.remove(drop)
        dropped.append(drop)
