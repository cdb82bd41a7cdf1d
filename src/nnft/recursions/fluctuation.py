"""The 1/n mechanism: a one-layer map expanded to second order in the fluctuation of its input kernel.

At finite width the preactivations of layer ℓ are, given the layer below, exactly Gaussian with a
*random* covariance ``Ĝ^{(ℓ)} = C_b + (C_W/n_{ℓ-1}) Σ_j σ(z_j)σ(z_j)`` (CONVENTIONS.md). Write
``Ĝ = K + δ`` with ``E[δ_p] = K1_p/n_{ℓ-1}`` and ``E[δ_p δ_q] = V_{pq}/n_{ℓ-1} + O(1/n²)`` for index pairs
``p, q``. Then for any map ``F`` of the covariance (PDLT §4.3–4.4, in CONVENTIONS.md form):

* mean: ``E[F(Ĝ)] = F(K) + (1/n_{ℓ-1}) [Σ_p ∂_p F K1_p + ½ Σ_{p,q} ∂_p ∂_q F V_{pq}] + O(1/n²)``;
* covariance: ``Cov(F_1(Ĝ), F_2(Ĝ)) = (1/n_{ℓ-1}) Σ_{p,q} ∂_p F_1 ∂_q F_2 V_{pq} + O(1/n²)``;

with ``∂_p = ∂/∂K_p`` the derivative in the *symmetric* entry ``K_p`` (``K_ab = K_ba`` one variable; the
sums run over unordered pairs, which is the same as ordered pairs with half-derivatives). The next
layer's metric is ``Ĝ' = C_b + (C_W/n_ℓ) Σ_i σ(z_i)σ(z_i)``: its mean is ``E[F(Ĝ)]`` with the two-point
map ``F = C_b + C_W⟨σσ⟩``, and its covariance adds, by the law of total covariance, the fresh
term of ``n_ℓ`` conditionally independent neurons, ``(C_W²/n_ℓ)(⟨σσσσ⟩ − ⟨σσ⟩⟨σσ⟩)``. This module builds
those pieces symbolically for sample labels ``a, b, c, d``; :mod:`nnft.recursions.vertex` and
:mod:`nnft.recursions.nlo` assemble them into the recursions of V and K1. The derivatives are sympy's,
through Price's theorem on :class:`nnft.gaussian.Expectation` nodes (``∂⟨f⟩/∂K_ab = ⟨∂_a∂_b f⟩``,
``∂⟨f⟩/∂K_aa = ½⟨∂_a² f⟩``), so one mechanism serves every activation.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from nnft.activations import Activation, z
from nnft.codegen.printers import greek
from nnft.cumulants import set_partitions
from nnft.gaussian import Kaa, Kab, Kbb, covariance_matrix, expect, expect_pair, expect_single
from nnft.recursions.base import C_W, C_b

#: Sample labels used for the symbolic patterns.
LABELS = ("a", "b", "c", "d")
#: The width ratio n_ℓ / n_{ℓ-1} through which V and K1 of layer ℓ enter layer ℓ + 1.
n_ratio = sp.Symbol(r"\frac{n_{\ell}}{n_{\ell-1}}", positive=True)


def zsym(label: str) -> sp.Symbol:
    """The preactivation ``z_<label>`` (the integration variable of Gaussian averages)."""
    return sp.Symbol(f"z_{label}", real=True)


def pair(a: str, b: str) -> tuple[str, str]:
    """An unordered index pair in canonical (sorted) order."""
    return (a, b) if a <= b else (b, a)


def K(p: tuple[str, str]) -> sp.Symbol:
    """The metric entry ``K_p`` (the symbols of :func:`nnft.gaussian.covariance_matrix`)."""
    a, b = pair(*p)
    M = covariance_matrix((zsym(a), zsym(b))) if a != b else covariance_matrix((zsym(a),))
    return M[0, 1] if a != b else M[0, 0]


def K1(p: tuple[str, str]) -> sp.Symbol:
    """The NLO metric entry ``K^{\\{1\\}}_p`` of the layer below."""
    return sp.Symbol(rf"K^{{\{{1\}}}}_{{{greek(''.join(pair(*p)))}}}", real=True)


def V(p: tuple[str, str], q: tuple[str, str]) -> sp.Symbol:
    """The four-point vertex entry ``V_{(p)(q)}`` of the layer below, symmetric within and between pairs."""
    p, q = pair(*p), pair(*q)
    p, q = min(p, q), max(p, q)
    return sp.Symbol(f"V_{{({greek(''.join(p))})({greek(''.join(q))})}}", real=True)


def inputs(p: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    """The metric entries the two-point map of pair ``p`` depends on: (aa, ab, bb), or (aa,) on the diagonal."""
    a, b = pair(*p)
    return ((a, a),) if a == b else ((a, a), (a, b), (b, b))


@lru_cache(maxsize=256)
def two_point(act: Activation, p: tuple[str, str]) -> sp.Expr:
    """The NNGP map ``K'_p = C_b + C_W ⟨σ(z_a)σ(z_b)⟩_K`` of the pair p in the label's metric symbols."""
    a, b = pair(*p)
    if a == b:
        return (C_b + C_W * expect_single(act.expr, act.expr)).xreplace({Kaa: K((a, a))})
    expr = C_b + C_W * expect_pair(act.expr, act.expr)
    return expr.xreplace({Kaa: K((a, a)), Kab: K((a, b)), Kbb: K((b, b))})


@lru_cache(maxsize=512)
def derivative(act: Activation, p: tuple[str, str], wrt: tuple[tuple[str, str], ...]) -> sp.Expr:
    """``∂^k K'_p / ∂K_{q1} … ∂K_{qk}`` in the symmetric entries (Price's theorem inside ⟨…⟩)."""
    expr = two_point(act, pair(*p))
    for q in wrt:
        expr = sp.diff(expr, K(q))
    return expr


def derivative_symbol(p: tuple[str, str], wrt: tuple[tuple[str, str], ...]) -> sp.Symbol:
    """A named placeholder for ``∂^k K'_p/∂K_{q1}…∂K_{qk}`` (the structural form of the recursions)."""
    a, b = pair(*p)
    if len(wrt) == 2 and pair(*wrt[0]) == pair(*wrt[1]):
        den = rf"\partial K_{{{greek(''.join(pair(*wrt[0])))}}}^2"
    else:
        den = "".join(rf"\partial K_{{{greek(''.join(pair(*q)))}}}" for q in wrt)
    num = r"\partial" + (f"^{len(wrt)}" if len(wrt) > 1 else "")
    return sp.Symbol(rf"\frac{{{num} K'_{{{greek(a + b)}}}}}{{{den}}}", real=True)


def _deriv(act: Activation | None, p, wrt) -> sp.Expr:
    return derivative_symbol(p, wrt) if act is None else derivative(act, p, wrt)


def mean_shift(act: Activation | None, p: tuple[str, str]) -> sp.Expr:
    """``Σ_q ∂_q K'_p K1_q + ½ Σ_{q,r} ∂_q∂_r K'_p V_{qr}``: the O(1/n) shift of ``E[K'_p(Ĝ)]`` times n_{ℓ-1}.

    With ``act=None`` the derivatives stay named placeholders (:func:`derivative_symbol`).
    """
    ins = inputs(p)
    out = sum((_deriv(act, p, (q,)) * K1(q) for q in ins), sp.S.Zero)
    for i, q in enumerate(ins):
        for r in ins[i:]:
            weight = sp.Rational(1, 2) if q == r else sp.S.One  # ½ Σ over ordered (q, r), ∂_q∂_r = ∂_r∂_q
            out += weight * _deriv(act, p, (q, r)) * V(q, r)
    return out


def induced_covariance(act: Activation | None, p: tuple[str, str], q: tuple[str, str]) -> sp.Expr:
    """``Σ_{r,s} ∂_r K'_p ∂_s K'_q V_{rs}``: the covariance of ``K'_p(Ĝ)`` and ``K'_q(Ĝ)`` times n_{ℓ-1}."""
    return sum((_deriv(act, p, (r,)) * _deriv(act, q, (s,)) * V(r, s)
                for r in inputs(p) for s in inputs(q)), sp.S.Zero)


def four_point_average(act: Activation, labels: tuple[str, str, str, str]) -> sp.Expr:
    """``⟨σ(z_{l1})σ(z_{l2})σ(z_{l3})σ(z_{l4})⟩_K`` over the distinct labels (closed form where a rule has one)."""
    distinct = tuple(sorted(set(labels)))
    variables = tuple(zsym(x) for x in distinct)
    if len(distinct) == 1:  # ⟨σ²·σ²⟩: a product of two factors, so the single-variable rules apply
        return expect_single(act.expr**2, act.expr**2).xreplace({Kaa: K((distinct[0],) * 2)})
    f = sp.Mul(*[act.expr.subs(z, zsym(x)) for x in labels])
    return expect(f, variables, covariance_matrix(variables))


def fresh_four_point(act: Activation, labels: tuple[str, str, str, str]) -> sp.Expr:
    """``C_W² (⟨σσσσ⟩ − ⟨σσ⟩⟨σσ⟩)``: the covariance of the next metric from its n_ℓ neurons, times n_ℓ."""
    p, q = pair(*labels[:2]), pair(*labels[2:])
    s_p = (two_point(act, p) - C_b) / C_W
    s_q = (two_point(act, q) - C_b) / C_W
    return C_W**2 * (four_point_average(act, labels) - sp.expand(s_p * s_q))


def coincidence_classes(slots: int, symmetries: tuple[tuple[int, ...], ...]) -> list[str]:
    """Label strings of the coincidence patterns of ``slots`` sample indices up to a symmetry group.

    Enumerates set partitions of the slots (:func:`nnft.cumulants.set_partitions`), names each by
    letters in order of first appearance, and keeps the smallest name over the group's permutations,
    e.g. the 15 partitions of the four indices of V reduce to 7 classes under its 8-fold symmetry.
    """
    seen = []
    for part in set_partitions(slots):
        block = {i: k for k, b in enumerate(part) for i in b}
        names = []
        for perm in symmetries:
            order: dict[int, str] = {}
            s = ""
            for i in perm:
                blk = block[i]
                if blk not in order:
                    order[blk] = LABELS[len(order)]
                s += order[blk]
            names.append(s)
        name = min(names)
        if name not in seen:
            seen.append(name)
    return sorted(seen, key=lambda s: (len(set(s)), s))


#: The 8-fold symmetry of V_{(12)(34)}: swaps within each pair and exchange of the pairs.
V_SYMMETRIES = tuple(
    perm for perm in (
        (0, 1, 2, 3), (1, 0, 2, 3), (0, 1, 3, 2), (1, 0, 3, 2),
        (2, 3, 0, 1), (3, 2, 0, 1), (2, 3, 1, 0), (3, 2, 1, 0),
    )
)
#: The symmetry of a two-index object K_{12} = K_{21}.
PAIR_SYMMETRIES = ((0, 1), (1, 0))


def pattern_name(labels: str, latex: bool = False) -> str:
    """``"aabc"`` → ``"(aa)(bc)"`` (``latex=True``: ``(αα)(βγ)``); two labels stay as they are."""
    g = greek if latex else str
    return f"({g(labels[:2])})({g(labels[2:])})" if len(labels) == 4 else g(labels)


__all__ = [
    "LABELS",
    "PAIR_SYMMETRIES",
    "V_SYMMETRIES",
    "K",
    "K1",
    "V",
    "coincidence_classes",
    "derivative",
    "derivative_symbol",
    "four_point_average",
    "fresh_four_point",
    "induced_covariance",
    "inputs",
    "mean_shift",
    "n_ratio",
    "pair",
    "pattern_name",
    "two_point",
    "zsym",
]
