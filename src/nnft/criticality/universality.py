"""Universality classes at criticality and their large-depth behaviour, derived with sympy.

At a critical point the one-input map ``f(K) = C_b + C_W g(K)`` has ``f(K*) = K*``, ``f'(K*) = χ_∥ = 1``
(CONVENTIONS.md). Write ``K = K* + δ``, ``f(K* + δ) = K* + δ + f₂δ² + O(δ³)``. The classes (PDLT ch. 5):

* **scale-invariant** (σ positively homogeneous of degree 1: relu, leaky relu, linear, abs):
  ``g(K) = A₂K`` exactly with ``A₂ = (a₊² + a₋²)/2``, ``⟨σ⁴⟩_K = 3A₄K²``, ``A₄ = (a₊⁴ + a₋⁴)/2``;
  ``C_b = 0``, ``C_W = 1/A₂`` and every K is a fixed point (``f₂ = 0``);
* **K* = 0** (σ(0) = 0, σ'(0) ≠ 0, σ smooth at 0): ``C_b = 0``, ``C_W = 1/σ'(0)²``, ``f(K) = K + a₁K² + …``,
  ``χ_⊥ = 1 + b₁K + …``, a fixed point approached from above when ``a₁ < 0`` (tanh: a₁ = b₁ = −2);
* **half-stable** (any other root ``K* > 0`` of ``χ_∥ = χ_⊥``): ``f₂ ≠ 0``, K approaches K* from the side
  ``sign(−1/f₂)`` only (gelu, swish).

:func:`derive_depth_behaviour` finds the large-depth solution of the one-input K and V recursions
``K_{ℓ+1} = f(K_ℓ)``, ``V_{ℓ+1} = C_W² F(K_ℓ) + χ_∥(K_ℓ)² V_ℓ`` (:mod:`nnft.recursions.vertex`, equal widths)
by the ansatz ``K_ℓ = K* + c/ℓ``, ``V_ℓ = A ℓ^{1−m}`` (m the order at which ``C_W²F`` vanishes in 1/ℓ),
matching the leading order in 1/ℓ; ``ν = lim V/(K²ℓ)``, so that ``V/(nK²) ≈ ν ℓ/n``. It gives
``ν = 2/3`` for the K* = 0 class, ``3A₄/A₂² − 1`` for the scale-invariant class (5 for relu, 2 for linear),
``C_W²F(K*)/(5K*²)`` for half-stable points; the tests check them against the numerically iterated
recursion at depth 100 and beyond.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from nnft.activations import Activation, z
from nnft.functions import unsafe
from nnft.gaussian import Kaa, expect_single

#: Inverse depth 1/ℓ (expansion variable) and the unknowns of the ansatz.
eps = sp.Symbol("epsilon", positive=True)
_c, _A = sp.symbols("c A")


@dataclass(frozen=True)
class DepthBehaviour:
    """Leading large-depth solution at a critical point: ``K ≈ K* + c/ℓ``, ``V ≈ A ℓ^{1−m}``, ``V/(K²ℓ) → ν``."""

    c: sp.Expr
    A: sp.Expr
    m: int
    nu: sp.Expr


@lru_cache(maxsize=256)
def derive_depth_behaviour(f2, F_coeffs, K_star) -> DepthBehaviour:
    """Solve the one-input K and V recursions at large depth by matching the ansatz order by order in 1/ℓ.

    ``f2``: the coefficient of δ² in ``f(K* + δ) − K*``; ``F_coeffs``: ``(F₀, F₁, F₂)`` of
    ``C_W² F(K* + δ) = F₀ + F₁δ + F₂δ² + …``; ``K_star``: K* (a number or a symbol).
    """
    f2 = sp.sympify(f2)
    K_star = sp.sympify(K_star)
    e = eps
    # K recursion: δ_{ℓ+1} = δ_ℓ + f₂δ_ℓ², with δ_ℓ = cε and ε_{ℓ+1} = ε/(1 + ε)
    if f2 == 0:
        c = sp.S.Zero
    else:
        k_eq = sp.series(_c * e / (1 + e) - (_c * e + f2 * (_c * e) ** 2), e, 0, 3).removeO()
        sols = [s for s in sp.solve(sp.expand(k_eq).coeff(e, 2), _c) if not s.is_zero]
        if len(sols) != 1:
            raise ArithmeticError(f"no unique depth solution of the K recursion for f2 = {f2}")
        c = sols[0]
    F = sum((sp.sympify(Fi) * (c * e) ** i for i, Fi in enumerate(F_coeffs)), sp.S.Zero)
    F = sp.expand(F)
    m = min((i for i in range(len(F_coeffs) + 1) if sp.simplify(F.coeff(e, i)) != 0), default=None)
    if m is None:
        raise ArithmeticError("the fresh term of the V recursion vanishes to the order given: ν needs higher orders")
    q = 1 - m
    chi = 1 + 2 * f2 * c * e  # χ_∥ = f'(K* + δ) to first order
    # V_{ℓ+1} − F − χ² V_ℓ with V_ℓ = A ε^{−q}, multiplied by ε^q
    v_eq = sp.series(_A * (1 + e) ** q - e ** q * F - chi ** 2 * _A, e, 0, 2).removeO()
    lead = sp.expand(v_eq).coeff(e, 1)
    sols = sp.solve(lead, _A)
    if len(sols) != 1:
        raise ArithmeticError(f"no unique depth solution of the V recursion (leading equation {lead} = 0)")
    A = sp.simplify(sols[0])
    nu = sp.limit(A * e ** m / (K_star + c * e) ** 2, e, 0)
    return DepthBehaviour(sp.simplify(c), A, m, sp.simplify(nu))


def gaussian_series(f: sp.Expr, order: int) -> sp.Expr:
    """The small-K asymptotic series of ``⟨f(z)⟩_K`` to ``K^order``: Taylor series of f, ``⟨z^{2j}⟩ = (2j−1)!!K^j``."""
    ser = sp.series(f, z, 0, 2 * order + 1).removeO()
    poly = sp.Poly(sp.expand(ser), z)
    out = sp.S.Zero
    for (k,), coef in poly.terms():
        if k % 2 == 0:
            out += coef * sp.factorial2(k - 1) * Kaa ** (k // 2)
    return sp.expand(out)


@dataclass(frozen=True)
class KStarZeroData:
    """Expansion data of the K* = 0 class: σ'(0), ``a₁``, ``b₁`` and ``F₂`` (``C_W²F = F₂K² + …``)."""

    sigma1: sp.Expr
    C_W: sp.Expr
    a1: sp.Expr
    b1: sp.Expr
    F2: sp.Expr


@lru_cache(maxsize=256)
def k_star_zero_data(act: Activation) -> KStarZeroData | None:
    """``a₁, b₁`` of ``f(K) = K + a₁K² + …``, ``χ_⊥ = 1 + b₁K + …`` at ``C_b = 0, C_W = 1/σ'(0)²``; None if σ(0) ≠ 0."""
    s = unsafe(act.expr)
    if any(abs(k) < 1e-12 for k in act.kinks):
        return None
    s0 = sp.simplify(s.subs(z, 0))
    s1 = sp.simplify(sp.diff(s, z).subs(z, 0))
    if s0 != 0 or s1 == 0:
        return None
    C_W = 1 / s1 ** 2
    g = gaussian_series(s ** 2, 2)
    perp = gaussian_series(sp.diff(s, z) ** 2, 1)
    F = sp.expand(gaussian_series(s ** 4, 2) - g ** 2)
    a1 = sp.simplify(C_W * g.coeff(Kaa, 2))
    b1 = sp.simplify(C_W * perp.coeff(Kaa, 1))
    F2 = sp.simplify(C_W ** 2 * F.coeff(Kaa, 2))
    return KStarZeroData(s1, C_W, a1, b1, F2)


@dataclass(frozen=True)
class ScaleInvariantData:
    """``A₂ = ⟨σ²⟩_1`` and ``A₄ = ⟨σ⁴⟩_1/3`` of a degree-1 homogeneous σ (``g = A₂K``, ``⟨σ⁴⟩ = 3A₄K²``)."""

    A2: sp.Expr
    A4: sp.Expr
    F: sp.Expr  # C_W²(⟨σ⁴⟩ − g²) at C_W = 1/A₂, in K_aa


@lru_cache(maxsize=256)
def scale_invariant_data(act: Activation) -> ScaleInvariantData | None:
    """The scale-invariant constants of ``act`` (engine closed forms); None unless σ is degree-1 homogeneous."""
    if act.homogeneity != 1:
        return None
    g = expect_single(act.expr, act.expr)
    four = expect_single(act.expr ** 2, act.expr ** 2)
    A2 = sp.simplify(g / Kaa)
    A4 = sp.simplify(four / (3 * Kaa ** 2))
    if A2.has(Kaa) or A4.has(Kaa) or A2 == 0:
        return None
    return ScaleInvariantData(A2, A4, sp.expand((four - g ** 2) / A2 ** 2))


__all__ = ["DepthBehaviour", "KStarZeroData", "ScaleInvariantData", "derive_depth_behaviour", "gaussian_series",
           "k_star_zero_data", "scale_invariant_data"]
