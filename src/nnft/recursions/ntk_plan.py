"""Compile what the NTK 1/n evaluator needs for one activation: ⟨σ'σ'⟩ with its derivatives, and mixed moments.

:mod:`nnft.numeric.ntk_finite_width` runs the recursions of :mod:`.ntk_fluctuation` as array stencils. Beyond
the V/K1 plan (:mod:`.finite_width_plan`: ⟨σσ⟩, its derivatives, ⟨σσσσ⟩) the activation enters through

* ``T_ab = ⟨σ'_aσ'_b⟩_K`` and its first and second derivatives in ``K_aa, K_ab, K_bb`` — sympy's derivatives of
  the average (Price's theorem), generated as one module, the same the symbolic recursions display;
* the mixed four-variable moments ``⟨σ'_aσ'_bσ_cσ_d⟩`` and ``⟨σ'_aσ'_bσ'_cσ'_d⟩``: exact orthant moments for
  piecewise-linear σ (relu, leaky relu; :func:`nnft.numeric.orthant_moments.piecewise_linear_mixed_moments`),
  the sequential-conditioning product rule of :mod:`nnft.numeric.moments4` for smooth σ, and the adaptive
  tensor rule of :mod:`nnft.numeric.quadrature_nd` per entry for other kinked σ.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from nnft.activations import Activation
from nnft.codegen.module import FunctionSpec, compile_module
from nnft.numeric.finite_width import FiniteWidthPlan
from nnft.numeric.moments4 import gaussian_moments
from nnft.numeric.ntk_finite_width import NTKPlan
from nnft.numeric.orthant_moments import piecewise_linear_mixed_moments
from nnft.numeric.quadrature_nd import gauss_nd
from nnft.recursions.finite_width_plan import (
    _piecewise_linear_slopes,
    finite_width_plan,
    pair_callable,
    pair_specs,
)
from nnft.recursions.ntk_fluctuation import _check

_KINDS = {"K_aa": "row", "K_ab": "entry", "K_bb": "col"}


def dd_specs(act: Activation) -> list[FunctionSpec]:
    """FunctionSpecs ``dpair`` (T = ⟨σ'_aσ'_b⟩ and its 9 derivatives) and ``dsingle`` (⟨σ'²⟩, 2 derivatives, ⟨σ'⁴⟩)."""
    return pair_specs(act.derivative, "dpair", "dsingle")


def _callables(act: Activation):
    from nnft.numeric.mc_activations import _functions

    sigma, dsigma, _ = _functions(act)
    return sigma, dsigma


def mixed_evaluator(act: Activation):
    """``f(S, p, q)`` → ``⟨Π_i σ(z_i)^{p_i} σ'(z_i)^{q_i}⟩`` for a batch of covariances S (B, k, k)."""
    slopes = _piecewise_linear_slopes(act)
    if slopes is not None:
        left, right = slopes
        return lambda S, p, q: piecewise_linear_mixed_moments(S, left, right, p, q)
    sigma, dsigma = _callables(act)

    def factor(pi: int, qi: int):
        return lambda t: sigma(t) ** pi * dsigma(t) ** qi

    if not act.kinks:
        return lambda S, p, q: gaussian_moments(tuple(factor(a, b) for a, b in zip(p, q, strict=True)), S,
                                                (1,) * len(p))

    def per_entry(S, p, q):
        fs = [factor(a, b) for a, b in zip(p, q, strict=True)]

        def f(*zs):
            return np.prod([g(t) for g, t in zip(fs, zs, strict=True)], axis=0)

        return np.array([float(gauss_nd(f, s, tol=1e-10)) for s in S])

    return per_entry


@lru_cache(maxsize=32)
def ntk_finite_width_plan(act: Activation, backend: str = "numpy") -> NTKPlan:
    """The compiled :class:`nnft.numeric.ntk_finite_width.NTKPlan` of activation ``act`` (cached)."""
    _check(act)
    base = finite_width_plan(act, backend)
    specs = dd_specs(act)
    mod = compile_module("ntk_two_point_derivatives", specs, backend, key=f"ntk_two_point_derivatives|{act.key()}")
    two_point = pair_callable(act, specs, mod, backend, prefix="ntk_")
    dd = FiniteWidthPlan(two_point=two_point, single=mod.dsingle, moments4=lambda K: None)
    return NTKPlan(base=base, dd=dd, mixed=mixed_evaluator(act))


__all__ = ["dd_specs", "mixed_evaluator", "ntk_finite_width_plan"]
