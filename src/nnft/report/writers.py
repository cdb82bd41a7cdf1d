"""Writers: the same :class:`~nnft.report.document.Section` list as HTML, Markdown, LaTeX and JSON.

``report.html`` is self-contained and readable offline: formulas are MathML (rendered natively by
browsers, :mod:`nnft.report.mathml`), figures are embedded SVG. ``formulas.tex`` is a standalone
amsmath document with every formula. ``results.json`` carries every number with its provenance.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from pathlib import Path

from nnft.report.document import Figure, Math, Section, Table, Text
from nnft.report.mathml import to_mathml

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#1b1b1b;line-height:1.5}
h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.6rem 0}td,th{border:1px solid #ccc;padding:.15rem .5rem;text-align:right;
font-variant-numeric:tabular-nums}th{background:#f3f3f3}.caption{color:#555;font-size:.9rem}
.planned{color:#777;font-style:italic}math[display=block]{margin:.6rem 0}
figure{margin:.8rem 0}figure svg{max-width:100%;height:auto}code{background:#f3f3f3;padding:0 .2rem}
"""


def _code(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))


def _svg(figdir: Path, name: str) -> str:
    svg = (figdir / f"{name}.svg").read_text(encoding="utf-8")
    return svg[svg.index("<svg"):]  # drop the XML prolog and doctype


def html_document(title: str, sections: list[Section], figdir: Path, footer: str) -> str:
    """The self-contained HTML report."""
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for s in sections:
        out.append(f"<section id='{s.key}'><h2>{html.escape(s.title)}</h2>")
        for b in s.blocks:
            if isinstance(b, Text):
                cls = " class='planned'" if s.status == "planned" else ""
                out.append(f"<p{cls}>{_code(b.text)}</p>")
            elif isinstance(b, Math):
                out.append(to_mathml(b.latex))
                if b.caption:
                    out.append(f"<div class='caption'>{html.escape(b.caption)}</div>")
            elif isinstance(b, Table):
                head = "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
                rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in b.rows)
                cap = f"<caption class='caption'>{html.escape(b.caption)}</caption>" if b.caption else ""
                out.append(f"<table>{cap}<tr>{head}</tr>{rows}</table>")
            elif isinstance(b, Figure):
                out.append(f"<figure>{_svg(figdir, b.name)}<figcaption class='caption'>{html.escape(b.caption)}"
                           "</figcaption></figure>")
        out.append("</section>")
    out.append(f"<footer class='caption'><hr>{html.escape(footer)}</footer></body></html>")
    return "".join(out)


def markdown_document(title: str, sections: list[Section], footer: str) -> str:
    """The Markdown report (formulas as $$…$$, figures linked to figures/*.png)."""
    out = [f"# {title}", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Text):
                out += [f"*{b.text}*" if s.status == "planned" else b.text, ""]
            elif isinstance(b, Math):
                out += ["$$", b.latex, "$$", ""] + ([f"<sub>{b.caption}</sub>", ""] if b.caption else [])
            elif isinstance(b, Table):
                out += ([f"**{b.caption}**", ""] if b.caption else []) + [
                    "| " + " | ".join(b.header) + " |", "|" + "---|" * len(b.header)]
                out += ["| " + " | ".join(r) + " |" for r in b.rows] + [""]
            elif isinstance(b, Figure):
                out += [f"![{b.caption}](figures/{b.name}.png)", "", f"<sub>{b.caption}</sub>", ""]
    out += ["---", footer, ""]
    return "\n".join(out)


def latex_document(title: str, sections: list[Section]) -> str:
    """A standalone amsmath document with every formula of the report, by section."""
    out = [r"\documentclass[11pt]{article}", r"\usepackage[margin=2cm]{geometry}",
           r"\usepackage{amsmath,amssymb}", r"\allowdisplaybreaks", r"\begin{document}",
           rf"\section*{{{_tex_text(title)}}}"]
    for s in sections:
        formulas = [b for b in s.blocks if isinstance(b, Math)]
        if not formulas:
            continue
        out.append(rf"\subsection*{{{_tex_text(s.title)}}}")
        for b in formulas:
            if b.caption:
                out.append(rf"\noindent {_tex_text(b.caption)}:")
            out += [r"\[", b.latex, r"\]"]
    out.append(r"\end{document}")
    return "\n".join(out) + "\n"


_TEX_ESC = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\~{}",
            "^": r"\^{}", "\\": r"\textbackslash{}"}
_TEX_UNI = {"Θ": r"$\Theta$", "σ": r"$\sigma$", "ℓ": r"$\ell$", "χ": r"$\chi$", "∥": r"$\parallel$",
            "⊥": r"$\perp$", "γ": r"$\gamma$", "ν": r"$\nu$", "§": r"\S{}", "⟨": r"$\langle$", "⟩": r"$\rangle$",
            "′": "'", "—": "---", "–": "--", "→": r"$\to$", "∞": r"$\infty$"}


_TEX_SUB = str.maketrans("₀₁₂₃₄₅₆₇₈₉₍₎", "0123456789()")


def _tex_char(c: str) -> str:
    """One character of running text as pdflatex-safe ASCII (the table, then Unicode names, then a visible marker)."""
    if c.isascii():
        return c
    if c in _TEX_UNI:
        return _TEX_UNI[c]
    if c in "₀₁₂₃₄₅₆₇₈₉₍₎":
        return rf"$_{{{c.translate(_TEX_SUB)}}}$"
    name = unicodedata.name(c, "")
    if name.startswith(("GREEK SMALL LETTER ", "GREEK CAPITAL LETTER ")):
        letter = name.rsplit(" ", 1)[1].lower()
        letter = letter.capitalize() if "CAPITAL" in name else letter
        return rf"$\{letter}$"
    base = unicodedata.normalize("NFKD", c).encode("ascii", "ignore").decode()
    return _TEX_NAMED.get(name, base or rf"[U+{ord(c):04X}]")


_TEX_NAMED = {"MINUS SIGN": "$-$", "MULTIPLICATION SIGN": r"$\times$", "LESS-THAN OR EQUAL TO": r"$\le$",
              "GREATER-THAN OR EQUAL TO": r"$\ge$", "ALMOST EQUAL TO": r"$\approx$", "PLUS-MINUS SIGN": r"$\pm$",
              "PARTIAL DIFFERENTIAL": r"$\partial$", "SUPERSCRIPT TWO": "$^2$", "SUPERSCRIPT THREE": "$^3$",
              "DOT OPERATOR": r"$\cdot$", "MIDDLE DOT": r"$\cdot$", "HORIZONTAL ELLIPSIS": r"\ldots{}",
              "NOT EQUAL TO": r"$\neq$", "ELEMENT OF": r"$\in$", "SQUARE ROOT": r"$\surd$",
              "LEFT SINGLE QUOTATION MARK": "`", "RIGHT SINGLE QUOTATION MARK": "'",
              "LEFT DOUBLE QUOTATION MARK": "``", "RIGHT DOUBLE QUOTATION MARK": "''", "NO-BREAK SPACE": "~"}


def _tex_text(text: str) -> str:
    """Running text (captions, table cells) escaped for LaTeX; the result is ASCII, so pdflatex needs no inputenc."""
    return "".join(_TEX_ESC.get(c) or _tex_char(c) for c in text)


def json_document(meta: dict, sections: list[Section]) -> str:
    """``results.json``: provenance and every section's numbers."""
    doc = {**meta, "sections": {s.key: {"title": s.title, "status": s.status, "seconds": round(s.seconds, 4),
                                        **s.results} for s in sections}}
    return json.dumps(doc, indent=1, allow_nan=False)


__all__ = ["html_document", "json_document", "latex_document", "markdown_document"]
