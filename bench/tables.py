"""Plain-text tables for the bench report."""

from __future__ import annotations

from collections.abc import Sequence


def render(
    headers: Sequence[str], rows: Sequence[Sequence[str]], align: str, indent: int = 2
) -> list[str]:
    """Lines of a table; `align` holds one `l` or `r` per column."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if how == "r" else cell.ljust(width)
            for cell, width, how in zip(cells, widths, align, strict=True)
        ]
        return (" " * indent + "  ".join(parts)).rstrip()

    rule = " " * indent + "  ".join("-" * width for width in widths)
    return [line(headers), rule, *(line(row) for row in rows)]


def ratio(value: float, floor: float) -> str:
    """`value / floor` as `1.8x` (`-` without a floor)."""
    return f"{value / floor:.2f}x" if floor > 0 else "-"
