"""Phase diagrams in the ``(C_W, C_b)`` plane: the ``χ_⊥ = 1`` and ``χ_∥ = 1`` lines, and χ over a grid.

Along a line where a susceptibility equals 1 at the fixed point, the fixed point itself parametrises
the line exactly, with no root finding: for each ``K* > 0``,

* ``χ_⊥ = 1``: ``C_W = 1/⟨σ'²⟩_{K*}``, ``C_b = K* − C_W⟨σ²⟩_{K*}`` (the order–chaos transition where the
  fixed point is stable, ``χ_∥(K*) < 1``; Poole et al. 2016, Schoenholz et al. 2017);
* ``χ_∥ = 1``: ``C_W = 1/g'(K*)``, ``C_b = K* − C_W g(K*)`` (where the fixed point stops being stable).

The two lines meet at the critical points (:func:`nnft.criticality.criticality`). :func:`phase_grid`
iterates the one-input recursion over a grid of ``(C_W, C_b)`` (vectorised) and returns ``K*``, ``χ_∥``,
``χ_⊥`` there, for heat maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnft.activations import Activation, activation
from nnft.criticality.points import Results, _K_range, criticality
from nnft.criticality.single_input import single_input
from nnft.errors import InputError


@dataclass(frozen=True)
class Line:
    """A curve ``(C_W, C_b)`` parametrised by ``K_star``; ``valid`` marks ``C_b ≥ 0`` and a stable fixed point."""

    K_star: np.ndarray
    C_W: np.ndarray
    C_b: np.ndarray
    chi_par: np.ndarray
    chi_perp: np.ndarray
    valid: np.ndarray


@dataclass(frozen=True)
class PhaseDiagram:
    """The ``χ_⊥ = 1`` line (order–chaos), the ``χ_∥ = 1`` line and the critical points of one activation."""

    activation: Activation
    chi_perp_line: Line
    chi_par_line: Line
    critical_points: Results

    def as_dict(self) -> dict:
        """Plain lists (JSON-ready)."""
        def line(L: Line) -> dict:
            return {k: getattr(L, k).tolist() for k in ("K_star", "C_W", "C_b", "chi_par", "chi_perp", "valid")}
        return {"activation": self.activation.name, "chi_perp_line": line(self.chi_perp_line),
                "chi_par_line": line(self.chi_par_line),
                "critical_points": [{"C_b": c.C_b, "C_W": c.C_W, "K_star": c.K_star,
                                     "class": c.universality_class, "nu": c.nu} for c in self.critical_points]}


def phase_diagram(act: Activation | str, *, K_range=(1e-4, 1e2), n: int = 400) -> PhaseDiagram:
    """The χ = 1 lines of ``act`` for ``K*`` in ``K_range`` (``n`` log-spaced points) and its critical points."""
    act = activation(act)
    lo, hi = _K_range(K_range)
    if not isinstance(n, int) or n < 2:
        raise InputError(f"n must be an integer >= 2, got {n!r}")
    if act.has_distributional_derivative:
        raise InputError(f"σ = {act.name} jumps: χ_⊥ = C_W⟨σ'²⟩ is infinite and there is no phase boundary")
    si = single_input(act)
    K = np.geomspace(lo, hi, n)
    with np.errstate(all="ignore"):
        g, dg, perp = si.at("g", K), si.at("dg", K), si.at("perp", K)

    def line(cw: np.ndarray) -> Line:
        with np.errstate(all="ignore"):
            cb = K - cw * g
            cpar, cperp = cw * dg, cw * perp
        ok = np.isfinite(cw) & np.isfinite(cb) & (cw > 0) & (cb >= -1e-12 * K) & (cpar <= 1 + 1e-9)
        return Line(K, cw, np.maximum(cb, 0.0, where=ok, out=cb.copy()), cpar, cperp, ok)

    with np.errstate(divide="ignore"):
        return PhaseDiagram(act, line(1.0 / perp), line(1.0 / dg), criticality(act, K_range=(lo, hi)))


def phase_grid(act: Activation | str, C_W, C_b, *, K0: float = 1.0, steps: int = 2000, tol: float = 1e-12) -> dict:
    """``K*``, ``χ_∥``, ``χ_⊥`` over the grid ``C_W × C_b`` by iterating ``K ↦ C_b + C_W g(K)`` from ``K0``.

    Returns arrays of shape ``(len(C_b), len(C_W))``; ``K*`` is ``inf`` where K grows past 1e8 (no fixed
    point) and ``converged`` marks where the iteration settled to ``tol``.
    """
    act = activation(act)
    cw = np.asarray(C_W, dtype=np.float64)
    cb = np.asarray(C_b, dtype=np.float64)
    if cw.ndim != 1 or cb.ndim != 1 or np.any(cw <= 0) or np.any(cb < 0) or not (np.all(np.isfinite(cw))
                                                                              and np.all(np.isfinite(cb))):
        raise InputError("C_W and C_b must be 1-D arrays of finite values, C_W > 0 and C_b >= 0")
    si = single_input(act)
    CW, CB = np.meshgrid(cw, cb)
    K = np.full(CW.shape, float(K0))
    live = np.ones(K.shape, bool)
    for _ in range(steps):
        if not live.any():
            break
        Kn = CB[live] + CW[live] * si.at("g", np.maximum(K[live], 1e-300))
        done = np.abs(Kn - K[live]) <= tol * np.maximum(1.0, Kn)
        K[live] = Kn
        idx = np.flatnonzero(live)
        live.flat[idx[done | (Kn > 1e8) | ~np.isfinite(Kn)]] = False
    diverged = (K > 1e8) | ~np.isfinite(K)
    K[diverged] = np.inf
    chi_par = np.full(K.shape, np.inf)
    chi_perp = np.full(K.shape, np.inf)
    ok = ~diverged
    Kc = np.maximum(K[ok], 1e-300)
    chi_par[ok] = CW[ok] * si.at("dg", Kc)
    chi_perp[ok] = CW[ok] * si.at("perp", Kc)
    return {"C_W": cw, "C_b": cb, "K_star": K, "chi_par": chi_par, "chi_perp": chi_perp, "converged": ~live & ok}


__all__ = ["Line", "PhaseDiagram", "phase_diagram", "phase_grid"]
