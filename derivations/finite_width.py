"""Canonical result: the 1/n recursions of the four-point vertex V and the NLO metric K1 for every continuous built-in.

Writes generated/finite_width/<activation>.md (LaTeX of the recursions by coincidence pattern and the derived
one-input equations) and <activation>_finite_width.py (numpy module of the layer terms the evaluator uses).
Run from the repository root: ``python derivations/finite_width.py``.
"""

from __future__ import annotations

from pathlib import Path

from nnft.activations import builtin_names
from nnft.codegen.book import finite_width

SCRIPT = "derivations/finite_width.py"
OUT = Path(__file__).resolve().parents[1] / "generated" / "finite_width"
#: step and sign jump (σ' is a delta: no 1/n recursion); leaky_relu and monomial get one parameter value each.
NAMES = [n for n in builtin_names() if n not in ("leaky_relu", "monomial", "step", "sign")] + [
    "leaky_relu(0.1)", "monomial(3)"]

if __name__ == "__main__":
    for path in finite_width(NAMES, OUT, SCRIPT):
        print(path.relative_to(OUT.parents[1]))
