"""Charts built on tables, as W&B's ``wandb.plot``: ``line``, ``scatter``,
``bar`` and ``histogram`` take a ``runcore.Table`` and the columns to draw, and
are logged like any value (``run.log({"roc": runcore.plot.line(t, "x", "y")})``).
A chart is its table's file plus what to draw: the history value is the table's
``table-file`` reference with a ``chart`` field
(``{"type": "line", "x": "x", "y": "y", "title": ...}``), which a UI renders.
"""

from __future__ import annotations

from typing import Any, Optional

from ._media import Table

__all__ = ["Chart", "bar", "histogram", "line", "scatter"]


class Chart(Table):
    """A table and the chart to draw of it."""

    def __init__(self, table: Table, chart: dict[str, Any]) -> None:
        if not isinstance(table, Table):
            raise ValueError(f"a chart is drawn from a runcore.Table, not {type(table).__name__}")
        for key in ("x", "y", "value", "label", "stroke"):
            col = chart.get(key)
            if col is not None and col not in table.columns:
                raise ValueError(f"chart {chart['type']}: the table has no column {col!r} (columns: {table.columns})")
        super().__init__(columns=list(table.columns), data=[list(r) for r in table.data])
        self.chart = {k: v for k, v in chart.items() if v is not None}

    def _to_native(self) -> tuple[Any, ...]:
        kind, path, media, caption, extra = super()._to_native()
        return (kind, path, media, caption, {**extra, "chart": self.chart})

    def __repr__(self) -> str:
        return f"Chart({self.chart['type']}, rows={len(self.data)})"


def line(table: Table, x: str, y: str, stroke: Optional[str] = None, title: Optional[str] = None, split_table: bool = False) -> Chart:
    """A line of ``y`` over ``x`` (one line per value of ``stroke``)."""
    return Chart(table, {"type": "line", "x": x, "y": y, "stroke": stroke, "title": title})


def scatter(table: Table, x: str, y: str, title: Optional[str] = None, split_table: bool = False) -> Chart:
    """Points of ``y`` against ``x``."""
    return Chart(table, {"type": "scatter", "x": x, "y": y, "title": title})


def bar(table: Table, label: str, value: str, title: Optional[str] = None, split_table: bool = False) -> Chart:
    """A bar per ``label`` of height ``value``."""
    return Chart(table, {"type": "bar", "label": label, "value": value, "title": title})


def histogram(table: Table, value: str, title: Optional[str] = None, split_table: bool = False) -> Chart:
    """The distribution of column ``value`` (binned when drawn)."""
    return Chart(table, {"type": "histogram", "value": value, "title": title})
