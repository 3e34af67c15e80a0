"""Table plumbing shared by the renderings: the compact rich style, printing a titled table, markdown tables."""

from __future__ import annotations

from rich import box
from rich.text import Text

#: Compact rich table style: 8 columns of costs fit in 80 terminal columns.
TABLE_STYLE = dict(box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True, pad_edge=False)


def md_table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    """A GitHub-flavoured markdown table; align items "l" or "r"."""
    align = align or ["l"] * len(header)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def print_table(console, table) -> None:
    """Print a table with its title on a line of its own: rich wraps a title to the table's width, which cuts
    a long title (or a path in it) into pieces however wide the terminal is."""
    title, table.title = table.title, None
    if title:
        text = Text.from_markup(title) if isinstance(title, str) else title
        text.stylize("table.title")
        console.print(text, overflow="fold")
    console.print(table)
