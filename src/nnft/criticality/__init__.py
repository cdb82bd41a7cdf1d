"""Criticality and universality: fixed points, susceptibilities, critical initialisations, ν, depth scales, phases.

``criticality(σ)`` lists the critical initialisations ``(C_b, C_W, K*)`` of any activation with their
universality class and the coefficient ν of ``V/(nK²) ≈ νℓ/n``; ``fixed_points``, ``depth_scales``,
``phase_diagram`` and ``phase_grid`` describe the network off criticality. Everything is derived from
the engine's symbolic ``g(K) = ⟨σ²⟩_K`` (:mod:`.single_input`), never from a table. Conventions:
CONVENTIONS.md (PDLT ch. 5); the guide is ``docs/criticality.md``.
"""

from __future__ import annotations

import sys
import types

from nnft.criticality.depth import CHAOTIC, CRITICAL, ORDERED, DepthScales, correlation_map, depth_scales
from nnft.criticality.guidance import DepthToWidth, depth_to_width_guidance
from nnft.criticality.phase import Line, PhaseDiagram, phase_diagram, phase_grid
from nnft.criticality.points import (
    HALF_STABLE,
    K_STAR_ZERO,
    SCALE_INVARIANT,
    CriticalPoint,
    FixedPoint,
    Results,
    criticality,
    fixed_points,
)

__all__ = ["CHAOTIC", "CRITICAL", "HALF_STABLE", "K_STAR_ZERO", "ORDERED", "SCALE_INVARIANT", "CriticalPoint",
           "DepthScales", "DepthToWidth", "FixedPoint", "Line", "PhaseDiagram", "Results", "correlation_map",
           "criticality", "depth_scales", "depth_to_width_guidance", "fixed_points", "phase_diagram", "phase_grid"]


class _CallableModule(types.ModuleType):
    """The package is also the function: ``nnft.criticality("tanh")`` is ``nnft.criticality.criticality("tanh")``."""

    def __call__(self, *args, **kwargs):
        return criticality(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
