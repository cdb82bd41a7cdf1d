"""LaTeX → MathML for the offline HTML report (browsers render MathML Core natively, no network needed).

latex2mathml converts single expressions; ``aligned`` blocks, which it does not lay out, are split
here into rows and cells and assembled into an ``<mtable>`` with right/left column alignment.
"""

from __future__ import annotations

import re

from latex2mathml.converter import convert

_BEGIN, _END = r"\begin{aligned}", r"\end{aligned}"
_MATH = re.compile(r"^<math[^>]*>(.*)</math>$", re.S)


def _inner(latex: str) -> str:
    m = _MATH.match(convert(latex.strip() or r"\,"))
    return m.group(1) if m else ""


def _split_rows(body: str) -> list[str]:
    """Split on top-level ``\\\\`` (not inside braces)."""
    rows, depth, start, i = [], 0, 0, 0
    while i < len(body):
        ch = body[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif body.startswith(r"\\", i) and depth == 0:
            rows.append(body[start:i])
            start = i + 2
            i += 2
            continue
        i += 1
    rows.append(body[start:])
    return [r for r in rows if r.strip()]


def to_mathml(latex: str, display: bool = True) -> str:
    """A ``<math>`` element for ``latex``; ``aligned`` blocks become a two-column ``<mtable>``."""
    mode = "block" if display else "inline"
    s = latex.strip()
    if s.startswith(_BEGIN) and s.endswith(_END):
        cells = []
        for row in _split_rows(s[len(_BEGIN): -len(_END)]):
            lhs, _, rhs = row.partition("&")
            cells.append(f"<mtr><mtd>{_inner(lhs)}</mtd><mtd>{_inner(rhs)}</mtd></mtr>")
        body = f'<mtable columnalign="right left" displaystyle="true">{"".join(cells)}</mtable>'
    else:
        body = _inner(s)
    return f'<math xmlns="http://www.w3.org/1998/Math/MathML" display="{mode}">{body}</math>'


__all__ = ["to_mathml"]
