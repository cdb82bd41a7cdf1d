"""Regenerate docs/figures/criticality_phase_tanh.png, criticality_phase_gelu.png and criticality_depth_profile.png.

Phase diagrams (``nnft.plot.phase_diagram``): ln χ_⊥ at the fixed point over (C_W, C_b), the χ_⊥ = 1 and
χ_∥ = 1 lines and the critical points, for tanh (K* = 0 class at (C_b, C_W) = (0, 1)) and gelu (a
half-stable point at (0.1729…, 1.9831…)). Depth profile (``nnft.plot.depth_profile``): a critical tanh
network, L = 60, n = 100: K → 1/(2ℓ), χ → 1, V/(nK²) ≈ (2/3)ℓ/n.
Run from the repository root: ``python docs/figures/criticality.py`` (about 20 s).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import nnft  # noqa: E402
from nnft import plot  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    plot.phase_diagram("tanh", C_W=(0.25, 3.0), C_b=(0.0, 0.6)).savefig(HERE / "criticality_phase_tanh.png", dpi=110)
    plot.phase_diagram("gelu", C_W=(0.5, 3.0), C_b=(0.0, 0.5)).savefig(HERE / "criticality_phase_gelu.png", dpi=110)
    net = nnft.MLP("tanh", depth=60, width=100, C_b=0.0, C_W=1.0)
    plot.depth_profile(net).savefig(HERE / "criticality_depth_profile.png", dpi=110)


if __name__ == "__main__":
    main()
