"""Canonical result: the NNGP and NTK one-layer maps of every built-in activation.

Writes generated/one_layer_maps/<activation>.md (LaTeX) and <activation>_<map>_map.py (numpy module).
Run from the repository root: ``python derivations/one_layer_maps.py``.
"""

from __future__ import annotations

from pathlib import Path

from nnft.activations import builtin_names
from nnft.codegen.book import one_layer_maps

SCRIPT = "derivations/one_layer_maps.py"
OUT = Path(__file__).resolve().parents[1] / "generated" / "one_layer_maps"
NAMES = [n for n in builtin_names() if n not in ("leaky_relu", "monomial")] + ["leaky_relu(0.1)", "monomial(3)"]

if __name__ == "__main__":
    for path in one_layer_maps(NAMES, OUT, SCRIPT):
        print(path.relative_to(OUT.parents[1]))
