"""The single-input functions of criticality, derived by the engine for one activation and evaluated two ways.

For one input the kernel recursion is ``K ↦ C_b + C_W g(K)`` with ``g(K) = ⟨σ(z)²⟩_K`` (CONVENTIONS.md).
Criticality reads off it (PDLT ch. 5):

* ``g'(K)``, ``g''(K)``: sympy's derivatives of the engine's ``g`` (closed forms differentiate as
  expressions, unevaluated averages by Price's theorem, ``d⟨f⟩/dK = ½⟨f''⟩``); for a kinked σ without
  a closed form ``g'`` is taken in the integration-by-parts form ``⟨σ²(z² − K)⟩/(2K²)``, which needs no
  derivative of σ (FACTS.md);
* ``χ_∥/C_W = g'(K)``, ``χ_⊥/C_W = ⟨σ'(z)²⟩_K``;
* ``h(K) = g'(K) − ⟨σ'²⟩_K`` (``= ⟨σσ''⟩_K`` for smooth σ): ``χ_∥ = χ_⊥`` exactly where ``h = 0``;
* ``F(K) = ⟨σ⁴⟩_K − g(K)²``: the fresh term of the one-input V recursion, ``V' = C_W² F + χ_∥² V``.

:meth:`SingleInput.numpy` lowers them through the generated-code path (vectorised over K, quadrature for
averages without closed form); :meth:`SingleInput.mp` evaluates them with mpmath at any precision
(mpmath quadrature of each unevaluated average). The two share the symbolic expressions and nothing
numerical, which is what the cross-checks of :mod:`nnft.criticality` compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import mpmath
import sympy as sp

from nnft import admissibility
from nnft.activations import Activation, _find_kinks, activation, z
from nnft.functions import unsafe
from nnft.gaussian import Expectation, Kaa, expect_single, is_closed

#: The functions of K this module derives, in the order of :meth:`SingleInput.expressions`.
NAMES = ("g", "dg", "d2g", "perp", "h", "F")


@dataclass(frozen=True)
class SingleInput:
    """The single-input functions ``g, g', g'', ⟨σ'²⟩, h = g' − ⟨σ'²⟩, F = ⟨σ⁴⟩ − g²`` of one σ, in ``K_aa``."""

    activation: Activation

    @cached_property
    def expressions(self) -> dict[str, sp.Expr]:
        """The derived sympy expressions in the symbol :data:`nnft.gaussian.Kaa` (K)."""
        act = self.activation
        g = expect_single(act.expr, act.expr)
        if is_closed(g) or not act.kinks:
            dg = sp.diff(g, Kaa)
        else:  # kinked σ: Gaussian integration by parts, no derivative of σ
            dg = expect_single(act.expr ** 2 * (z ** 2 - Kaa)) / (2 * Kaa ** 2)
        d2g = sp.diff(dg, Kaa)
        perp = sp.S.Zero if act.expr.is_polynomial(z) and sp.degree(act.expr, z) < 1 else expect_single(
            act.derivative, act.derivative)
        h = sp.simplify(dg - perp) if is_closed(dg) and is_closed(perp) else dg - perp
        F = expect_single(act.expr ** 2, act.expr ** 2) - g ** 2
        return {"g": g, "dg": dg, "d2g": d2g, "perp": perp, "h": h, "F": F}

    @cached_property
    def closed(self) -> bool:
        """True when every function has a closed form (no quadrature in either evaluation)."""
        return all(is_closed(e) for e in self.expressions.values())

    @cached_property
    def numpy(self):
        """The functions compiled to vectorised numpy (``.g(K)``, ``.dg(K)``, …), through :mod:`nnft.codegen`."""
        from nnft.codegen.module import compile_function

        return compile_function(self.expressions, (Kaa,), name=f"criticality_{self.activation.name}")

    def at(self, name: str, K):
        """``name`` (one of :data:`NAMES`) at K > 0 in float64 (array in, array out)."""
        return getattr(self.numpy, name)(K)

    def mp(self, name: str, K, dps: int = 30) -> mpmath.mpf:
        """``name`` at K > 0 with mpmath at ``dps`` digits (mpmath quadrature for unevaluated averages)."""
        return mp_value(self.expressions[name], K, dps)


@lru_cache(maxsize=64)
def single_input(act: Activation | str) -> SingleInput:
    """The :class:`SingleInput` functions of ``act`` (cached per activation)."""
    return SingleInput(activation(act))


def mp_gauss1(integrand: sp.Expr, var: sp.Symbol, K, dps: int) -> mpmath.mpf:
    """``⟨f(z)⟩`` over ``z ~ N(0, K)`` by mpmath quadrature at ``dps`` digits, split at the kinks of ``f``.

    ``⟨f⟩ = ∫ f(√K t) e^{−t²/2} dt / √(2π)``, with ``f`` evaluated by the guarded mpmath evaluator of
    :mod:`nnft.admissibility`.
    """
    f = integrand.subs(var, z)
    fn = _mp_function(f)
    with mpmath.workdps(dps + 10):
        K = mpmath.mpf(K)
        s = mpmath.sqrt(K)
        cuts = sorted({mpmath.mpf(k) / s for k in _find_kinks(f)} | {mpmath.mpf(0)})
        norm = 1 / mpmath.sqrt(2 * mpmath.pi)

        def w(t):
            return fn(s * t) * mpmath.exp(-t * t / 2) * norm

        return mpmath.quad(w, [-mpmath.inf, *cuts, mpmath.inf])


@lru_cache(maxsize=256)
def _mp_function(f: sp.Expr):
    """``f(z)`` as an mpmath callable: sympy's mpmath printer on the elementary form, else the guarded evaluator."""
    try:
        fn = sp.lambdify(z, unsafe(f), modules="mpmath")
        fn(mpmath.mpf("0.37"))
        return fn
    except Exception:  # a function without an mpmath form: the tree-walking evaluator of admissibility
        return lambda x: admissibility.evaluate(f, x, mpmath.mp.dps)


def mp_value(expr: sp.Expr, K, dps: int = 30) -> mpmath.mpf:
    """A derived expression in ``K_aa`` at ``K`` with mpmath: averages by :func:`mp_gauss1`, the rest by evalf."""
    with mpmath.workdps(dps + 10):
        Kf = sp.Float(mpmath.mpf(K), dps + 10)
        nodes = {}
        for node in sp.preorder_traversal(expr):
            if isinstance(node, Expectation) and node not in nodes:
                if len(node.variables) != 1:
                    raise NotImplementedError("mp_value evaluates single-input averages only")
                Kn = sp.sympify(node.cov[0]).xreplace({Kaa: Kf})
                nodes[node] = sp.Float(mp_gauss1(node.integrand.xreplace({Kaa: Kf}), node.variables[0],
                                                 mpmath.mpf(sp.Float(Kn, dps + 10)), dps), dps + 10)
        out = sp.sympify(expr).xreplace(nodes).xreplace({Kaa: Kf}).evalf(dps + 10)
        if not out.is_number or not out.is_real:
            raise ArithmeticError(f"{expr} did not evaluate to a real number at K = {K}: {out}")
        return mpmath.mpf(sp.Float(out, dps + 10))


__all__ = ["NAMES", "SingleInput", "mp_gauss1", "mp_value", "single_input"]
