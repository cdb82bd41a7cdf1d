"""Perturbation theory from an action: correlators as sums over diagrams, symbolic (one sample) or numeric.

``Action(order=…)`` is the theory ``S = ½γ2 z·z − ⅛γ4 (z·z)² − (1/48)γ6 (z·z)³`` of :mod:`.diagrams`.
``correlator(points, order=k)`` sums the connected diagrams with ``points`` external legs and up to k vertices
in total (``sextic=`` of them sextic); for one sample the result is a sympy polynomial in m, g = 1/γ2, γ4, γ6,
and for several samples :meth:`Correlator.evaluate` contracts every diagram with ``numpy.einsum`` (optimised
contraction path) for given ``G`` and ``γ`` tensors, by neuron pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from nnft.eft.diagrams import Diagram, diagrams, g0
from nnft.errors import InputError


@dataclass(frozen=True)
class Correlator:
    """The diagrams of one connected correlator, with symbolic and numeric evaluation."""

    points: int
    diagrams: tuple[Diagram, ...]

    def scalar(self) -> sp.Expr:
        """One sample: ``Σ_d weight_d g^{#propagators}`` — the correlator for equal neurons of each δ pair."""
        return sp.expand(sum((d.scalar() for d in self.diagrams), sp.S.Zero))

    def by_pattern(self) -> dict[tuple, sp.Expr]:
        """One sample, split by neuron pattern (the coefficient of each product of Kronecker δ's)."""
        out: dict[tuple, sp.Expr] = {}
        for d in self.diagrams:
            out[d.neuron_pattern] = sp.expand(out.get(d.neuron_pattern, sp.S.Zero) + d.scalar())
        return out

    def evaluate(self, G: np.ndarray, couplings: dict[int, np.ndarray], m: float) -> dict[tuple, np.ndarray]:
        """Several samples: ``{neuron pattern: tensor over the external sample indices}`` for propagator G (P, P)
        and couplings ``{2: γ4 (P,)*4, 3: γ6 (P,)*6}`` at m neurons."""
        out: dict[tuple, np.ndarray] = {}
        for d in self.diagrams:
            spec, ops = d.einsum()
            arrays = [G if kind == "G" else couplings[k] for kind, k in ops]
            val = float(d.weight.subs({sp.Symbol("m", positive=True, integer=True): m}).subs(
                {c: 1 for c in d.weight.free_symbols if c.name.startswith(r"\gamma")}))
            term = val * np.einsum(spec, *arrays, optimize=True)
            out[d.neuron_pattern] = out.get(d.neuron_pattern, 0.0) + term
        return out


class Action:
    """The O(m) action with quartic (and optionally sextic) couplings; correlators to a given order."""

    def correlator(self, points: int, order: int = 1, *, sextic: int = 0) -> Correlator:
        """Connected ``points``-point function with exactly ``order`` quartic and ``sextic`` sextic vertices summed
        over 0..order (quartic) at fixed sextic count: all connected diagrams of those vertex sets."""
        if points < 0 or points % 2:
            raise InputError(f"an O(m) theory has only even correlators: points must be even ≥ 0, got {points}")
        ds: list[Diagram] = []
        for q in range(0, order + 1):
            verts = tuple([2] * q + [3] * sextic)
            if not verts and points == 0:
                continue
            if not verts:
                if points == 2:
                    ds += list(diagrams(2, ()))
                continue
            ds += list(diagrams(points, verts, "connected"))
        return Correlator(points, tuple(ds))


def free_propagator() -> sp.Symbol:
    """The one-sample propagator g = 1/γ2."""
    return g0


__all__ = ["Action", "Correlator", "free_propagator"]
