"""The report as data: sections made of text, formulas, tables and figures, independent of any output format.

Section builders (:mod:`nnft.report.sections`) return :class:`Section` objects; the writers
(:mod:`nnft.report.writers`) turn the same objects into HTML, Markdown, LaTeX and JSON, so a new
section is one new builder and every format shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Text:
    """A paragraph of plain text (inline code in `backticks`)."""

    text: str


@dataclass(frozen=True)
class Math:
    """A displayed formula in LaTeX (an ``aligned`` block is allowed), with a caption."""

    latex: str
    caption: str = ""


@dataclass(frozen=True)
class Table:
    """A small table of strings (header row plus rows)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    """A figure saved as ``figures/<name>.png`` and ``.svg`` in the report directory."""

    name: str
    caption: str


Block = Text | Math | Table | Figure


@dataclass
class Section:
    """One section of the report; ``results`` holds its numbers (JSON-ready), ``status`` "done" or "planned"."""

    key: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    status: str = "done"
    seconds: float = 0.0


__all__ = ["Block", "Figure", "Math", "Section", "Table", "Text"]
