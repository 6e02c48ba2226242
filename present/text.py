"""Text building blocks: numbers for people, markdown, terminal and CSV tables."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def human(x: float | int | None, unit: str = "") -> str:
    """1.23e21 -> '1.23e+21'; 286103 -> '286,103'; None -> '-'."""
    if x is None:
        return "-"
    if isinstance(x, int) or float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}{unit}"
    if abs(x) >= 1e6:
        return f"{x:.3e}{unit}"
    return f"{x:,.2f}{unit}"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2%}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def rich_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    table = Table()
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*[str(c) for c in row])
    console = Console(file=io.StringIO(), width=110, force_terminal=False, color_system=None)
    console.print(title, highlight=False, markup=False)
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def csv_text(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buf.getvalue()
