"""The NTK at order 1/n: recursions of its mean correction, its fluctuations (A, B) and its correlation with the
preactivations (D, F), derived from the one-layer maps and Price's theorem.

Conventions (CONVENTIONS.md, PDLT ch. 8; n = n_{ℓ-1} at layer ℓ, i, j neurons):
``E[Θ̂_{ii;ab}] = Θ_ab + Θ1_ab/n``;
``E[ΔΘ̂_{i1i2;a1a2} ΔΘ̂_{i3i4;a3a4}] = (1/n)[δ_{i1i2}δ_{i3i4} A_{a1a2a3a4} + δ_{i1i3}δ_{i2i4} B_{a1a3a2a4}
+ δ_{i1i4}δ_{i2i3} B_{a1a4a2a3}]``; the same with ``z_{i3;a3} z_{i4;a4}`` in place of the second ΔΘ̂ and D, F.

Derivation (written out in ``docs/ntk_finite_width.md``). Given layer ℓ, the next layer's weights are Gaussian,
so with ``M_{jk;ab} = σ'_{j;a}σ'_{k;b}Θ̂_{jk;ab}`` the exact conditional moments are
``E[Θ̂'_{i1i2;ab}|ℓ] = δ_{i1i2} Ĥ_ab``, ``Ĥ_ab = λ_b + (1/n)Σ_j [λ_W σ_{j;a}σ_{j;b} + C_W M_{jj;ab}]`` (the random NTK
map), ``Cov(Θ̂'_{i1i2;12}, Θ̂'_{i3i4;34}|ℓ) = (C_W/n)²[δ_{i1i3}δ_{i2i4} Σ_{jk} M_{jk;12}M_{jk;34} + (3 ↔ 4)]`` and
``E[Θ̂'_{i1i2;12} z'_{i3;3} z'_{i4;4}|ℓ] = δδ Ĥ_12 Ĝ_34``
``+ (C_W/n)²[δ_{i1i3}δ_{i2i4} Σ_{jk} M_{jk;12}σ_{j;3}σ_{k;4} + (3 ↔ 4)]``.
Stein's lemma on the weights of layer ℓ gives, for one neuron and for two distinct neurons j ≠ k,
``E[Θ̂_{jj;ab} f(z_j)] = Ĥ_ab⟨f⟩ + (1/n) Σ_{ββ'} R̂_{ab;ββ'} ⟨∂_β∂_β' f⟩`` and
``E[Θ̂_{jk;ab} f(z_j) g(z_k)] = (1/n) Σ_{ββ'} R̂_{ab;ββ'}⟨∂_β f⟩⟨∂_β' g⟩`` with E[R̂_{ac;bd}] = F_abcd. With the
random metric ``Ĝ`` (mean K + K1/n, covariance V/n) and ``Ĥ`` (mean Θ + Θ1/n, Cov(Ĥ, Ĥ) = A/n, Cov(Ĥ, Ĝ) = D/n),
the 1/n mechanism of :mod:`.fluctuation` applied to the joint map ``(K', Θ')`` of ``(K, Θ)`` gives (r = n_ℓ/n_{ℓ-1},
all averages under K = K^{(ℓ)}, couplings of layer ℓ + 1):

* ``A'_{(ab)(cd)} = Cov₁(h_ab, h_cd) + r[Σ_pq ∂_pΘ'_ab ∂_qΘ'_cd V_pq + ∂_ΘΘ'_ab Σ_q ∂_qΘ'_cd D_{ab,q}
  + ∂_ΘΘ'_cd Σ_p ∂_pΘ'_ab D_{cd,p} + ∂_ΘΘ'_ab ∂_ΘΘ'_cd A_{(ab)(cd)}]``, ``h_ab = λ_W σ_aσ_b + C_W Θ_ab σ'_aσ'_b``;
* ``B'_abcd = C_W² Θ_ac Θ_bd ⟨σ'_aσ'_bσ'_cσ'_d⟩ + r C_W² ⟨σ'_aσ'_b⟩⟨σ'_cσ'_d⟩ B_abcd``;
* ``D'_{(ab)(cd)} = Cov₁(h_ab, C_W σ_cσ_d) + r[Σ_pq ∂_pΘ'_ab ∂_qK'_cd V_pq + ∂_ΘΘ'_ab Σ_q ∂_qK'_cd D_{ab,q}]``;
* ``F'_abcd = C_W² Θ_ac ⟨σ'_aσ_bσ'_cσ_d⟩ + r C_W² Σ_{β∈{a,b}, β'∈{c,d}} F_{aβcβ'} ⟨∂_β(σ'_aσ_b)⟩⟨∂_β'(σ'_cσ_d)⟩``;
* ``Θ1'_ab = r[Σ_p ∂_pΘ'_ab K1_p + ½Σ_pq ∂_p∂_qΘ'_ab V_pq + ∂_ΘΘ'_ab Θ1_ab + Σ_p ∂_p∂_ΘΘ'_ab D_{ab,p}
  + C_W Σ_{β,β'∈{a,b}} F_{aβbβ'} ⟨∂_β∂_β'(σ'_aσ'_b)⟩]``;

``∂_p = ∂/∂K_p`` over the entries ``p ∈ {aa, ab, bb}`` the map depends on, ``∂_Θ = ∂/∂Θ_ab``,
``Θ'_ab = λ_b + λ_W⟨σ_aσ_b⟩ + C_W⟨σ'_aσ'_b⟩Θ_ab`` and ``K'_ab = C_b + C_W⟨σ_aσ_b⟩``; every derivative of an average
is sympy's, through Price's theorem (``⟨σ''_aσ_b⟩ = 2∂⟨σ_aσ_b⟩/∂K_aa``). At layer 1 all five vanish (Θ̂^{(1)} is
deterministic). This module builds the recursions symbolically, one equation per coincidence pattern of the
sample indices; :mod:`nnft.numeric.ntk_finite_width` evaluates the same equations as array stencils.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from nnft.activations import Activation, activation, z
from nnft.codegen.printers import greek
from nnft.errors import NTKUndefinedError
from nnft.gaussian import Kaa, Kab, Kbb, covariance_matrix, expect, expect_pair, expect_single
from nnft.recursions.base import C_W, lambda_b, lambda_W
from nnft.recursions.fluctuation import (
    K1,
    V_SYMMETRIES,
    K,
    V,
    coincidence_classes,
    inputs,
    n_ratio,
    pair,
    two_point,
    zsym,
)
from nnft.recursions.pattern import PatternRecursion

#: Symmetries of D_{(ab)(cd)} (swaps within each pair; Θ-pair and metric-pair are distinct).
D_SYMMETRIES = ((0, 1, 2, 3), (1, 0, 2, 3), (0, 1, 3, 2), (1, 0, 3, 2))
#: Symmetries of B_abcd (= E[Ŝ_{(ac)(bd)}]): exchange of the two NTK pairs and of the two neurons.
B_SYMMETRIES = ((0, 1, 2, 3), (1, 0, 3, 2), (2, 3, 0, 1), (3, 2, 1, 0))
#: Symmetries of F_abcd (= E[R̂_{ac;bd}]): exchange of the two neurons.
F_SYMMETRIES = ((0, 1, 2, 3), (2, 3, 0, 1))


def _canon(labels: tuple[str, ...], group) -> str:
    return min("".join(labels[i] for i in perm) for perm in group)


def _sym(name: str, labels: tuple[str, ...], group) -> sp.Symbol:
    lab = _canon(labels, group)
    if name in ("A", "D"):
        return sp.Symbol(rf"{name}_{{({greek(lab[:2])})({greek(lab[2:])})}}", real=True)
    return sp.Symbol(rf"{name}_{{{greek(lab)}}}", real=True)


def A(p, q) -> sp.Symbol:
    """The NTK variance coefficient ``A_{(p)(q)}`` of the layer below (symmetric like V)."""
    return _sym("A", (*pair(*p), *pair(*q)), V_SYMMETRIES)


def D(p, q) -> sp.Symbol:
    """The NTK–preactivation coefficient ``D_{(p)(q)}`` (NTK pair p, metric pair q) of the layer below."""
    return _sym("D", (*pair(*p), *pair(*q)), D_SYMMETRIES)


def B(a, b, c, d) -> sp.Symbol:
    """The off-diagonal NTK variance coefficient ``B_abcd`` of the layer below."""
    return _sym("B", (a, b, c, d), B_SYMMETRIES)


def F(a, b, c, d) -> sp.Symbol:
    """The off-diagonal NTK–preactivation coefficient ``F_abcd`` of the layer below."""
    return _sym("F", (a, b, c, d), F_SYMMETRIES)


def Theta(p) -> sp.Symbol:
    """The infinite-width NTK entry ``Θ_p`` of the layer below."""
    return sp.Symbol(rf"\Theta_{{{greek(''.join(pair(*p)))}}}", real=True)


def Theta1(p) -> sp.Symbol:
    """The NTK mean correction ``Θ^{\\{1\\}}_p`` of the layer below."""
    return sp.Symbol(rf"\Theta^{{\{{1\}}}}_{{{greek(''.join(pair(*p)))}}}", real=True)


def _check(act: Activation) -> None:
    if act.has_distributional_derivative:
        raise NTKUndefinedError(
            f"the NTK of {act.name!r} is undefined (σ jumps, σ' contains a Dirac delta), so are its 1/n statistics; "
            "use a continuous activation"
        )


@lru_cache(maxsize=256)
def dd_average(act: Activation, p: tuple[str, str]) -> sp.Expr:
    """``⟨σ'(z_a)σ'(z_b)⟩_K`` in the label's metric symbols (closed form where a rule has one)."""
    a, b = pair(*p)
    d = act.derivative
    if a == b:
        return expect_single(d, d).xreplace({Kaa: K((a, a))})
    return expect_pair(d, d).xreplace({Kaa: K((a, a)), Kab: K((a, b)), Kbb: K((b, b))})


def ss_average(act: Activation, p: tuple[str, str]) -> sp.Expr:
    """``⟨σ(z_a)σ(z_b)⟩_K`` (the NNGP map without C_b, C_W)."""
    from nnft.recursions.base import C_b

    return sp.expand((two_point(act, pair(*p)) - C_b) / C_W)


def ntk_map(act: Activation, p: tuple[str, str]) -> sp.Expr:
    """``Θ'_p = λ_b + λ_W⟨σ_aσ_b⟩ + C_W⟨σ'_aσ'_b⟩Θ_p`` in the label's symbols (CONVENTIONS.md)."""
    return lambda_b + lambda_W * ss_average(act, p) + C_W * dd_average(act, p) * Theta(p)


def mixed_average(act: Activation, slots: tuple[tuple[str, int], ...]) -> sp.Expr:
    """``⟨Π_s σ^{(k_s)}(z_{l_s})⟩_K`` for slots (label, k) with k = 0 (σ) or 1 (σ')."""
    funcs = {0: act.expr, 1: act.derivative}
    distinct = tuple(sorted({lab for lab, _ in slots}))
    if len(distinct) == 1:
        f = [funcs[k] for _, k in slots]
        half = len(f) // 2
        return expect_single(sp.Mul(*f[:half]), sp.Mul(*f[half:])).xreplace({Kaa: K((distinct[0],) * 2)})
    variables = tuple(zsym(x) for x in distinct)
    f = sp.Mul(*[funcs[k].subs(z, zsym(lab)) for lab, k in slots])
    return expect(f, variables, covariance_matrix(variables))


def _d(act: Activation | None, what: str, p, wrt, placeholder: str) -> sp.Expr:
    """A derivative of the map ``what`` (K' or Θ') of pair p in the metric entries ``wrt`` (or a placeholder)."""
    if act is None:
        den = "".join(rf"\partial K_{{{greek(''.join(pair(*q)))}}}" for q in wrt)
        num = r"\partial" + (f"^{len(wrt)}" if len(wrt) > 1 else "")
        return sp.Symbol(rf"\frac{{{num} {placeholder}_{{{greek(''.join(pair(*p)))}}}}}{{{den}}}", real=True)
    expr = two_point(act, pair(*p)) if what == "K" else ntk_map(act, pair(*p))
    for q in wrt:
        expr = sp.diff(expr, K(q))
    return expr


def _dtheta(act: Activation | None, p) -> sp.Expr:
    """``∂Θ'_p/∂Θ_p = C_W⟨σ'_aσ'_b⟩``."""
    if act is None:
        return C_W * sp.Symbol(rf"\langle\sigma'_{{{greek(pair(*p)[0])}}}\sigma'_{{{greek(pair(*p)[1])}}}\rangle",
                               real=True)
    return C_W * dd_average(act, p)


def _mixing(act, what1, p, what2, q) -> sp.Expr:
    return sum((_d(act, what1, p, (r,), r"\Theta'" if what1 == "T" else "K'")
                * _d(act, what2, q, (s,), r"\Theta'" if what2 == "T" else "K'") * V(r, s)
                for r in inputs(p) for s in inputs(q)), sp.S.Zero)


def _cov1(act: Activation, p, q, second: str) -> sp.Expr:
    """One neuron's covariance ``Cov(h_p, h_q)`` (``second="T"``) or ``Cov(h_p, C_W σσ)`` (``"K"``), Θ fixed."""
    (a, b), (c, d) = pair(*p), pair(*q)

    def h(x, y):  # h_xy as {(kind_x, kind_y): coefficient}
        return {(0, 0): lambda_W, (1, 1): C_W * Theta((x, y))}

    left = h(a, b)
    right = h(c, d) if second == "T" else {(0, 0): C_W}
    out = sp.S.Zero
    for (k1, k2), c1 in left.items():
        for (k3, k4), c2 in right.items():
            m4 = mixed_average(act, ((a, k1), (b, k2), (c, k3), (d, k4)))
            m2 = mixed_average(act, ((a, k1), (b, k2))) * mixed_average(act, ((c, k3), (d, k4)))
            out += c1 * c2 * (m4 - m2)
    return out


def _e_sigma(act: Activation | None, a, b, beta) -> sp.Expr:
    """``⟨∂_β(σ'_aσ_b)⟩`` by Price's theorem from ⟨σ_aσ_b⟩ (a = b: ``d⟨σ²⟩/dK``)."""
    if act is None:
        return sp.Symbol(rf"\langle\partial_{{{greek(beta)}}}(\sigma'_{{{greek(a)}}}\sigma_{{{greek(b)}}})\rangle",
                         real=True)
    S = ss_average(act, (a, b))
    if a == b:
        return sp.diff(S, K((a, a)))
    return 2 * sp.diff(S, K((a, a))) if beta == a else sp.diff(S, K((a, b)))


def _e_dd(act: Activation | None, a, b, beta, gamma) -> sp.Expr:
    """``⟨∂_β∂_γ(σ'_aσ'_b)⟩`` by Price's theorem from ⟨σ'_aσ'_b⟩."""
    if act is None:
        return sp.Symbol(rf"\langle\partial_{{{greek(beta)}}}\partial_{{{greek(gamma)}}}(\sigma'_{{{greek(a)}}}"
                         rf"\sigma'_{{{greek(b)}}})\rangle", real=True)
    T = dd_average(act, (a, b))
    if beta == gamma:
        return 2 * sp.diff(T, K((beta, beta)))
    return sp.diff(T, K((a, b)))


def _labels_of(labels: str) -> tuple[str, ...]:
    return tuple(labels)


def _avg_symbol(tex: str, labels: str) -> sp.Symbol:
    """A named placeholder for a fresh single-neuron average (the structural form, any σ)."""
    return sp.Symbol(tex % tuple(greek(ch) for ch in labels), real=True)


def _A_rhs(act, labels) -> sp.Expr:
    a, b, c, d = labels
    p, q = (a, b), (c, d)
    src = None if isinstance(act, tuple) else act
    fresh = (_cov1(src, p, q, "T") if src is not None
             else _avg_symbol(r"\mathrm{Cov}(h_{%s%s}, h_{%s%s})", "".join(labels)))
    rest = (_mixing(src, "T", p, "T", q)
            + _dtheta(src, p) * sum((_d(src, "T", q, (s,), r"\Theta'") * D(p, s) for s in inputs(q)), sp.S.Zero)
            + _dtheta(src, q) * sum((_d(src, "T", p, (s,), r"\Theta'") * D(q, s) for s in inputs(p)), sp.S.Zero)
            + _dtheta(src, p) * _dtheta(src, q) * A(p, q))
    return fresh + n_ratio * rest


def _D_rhs(act, labels) -> sp.Expr:
    a, b, c, d = labels
    p, q = (a, b), (c, d)
    src = None if isinstance(act, tuple) else act
    fresh = (_cov1(src, p, q, "K") if src is not None
             else _avg_symbol(r"\mathrm{Cov}(h_{%s%s}, C_W\sigma_{%s}\sigma_{%s})", "".join(labels)))
    rest = (_mixing(src, "T", p, "K", q)
            + _dtheta(src, p) * sum((_d(src, "K", q, (s,), "K'") * D(p, s) for s in inputs(q)), sp.S.Zero))
    return fresh + n_ratio * rest


def _B_rhs(act, labels) -> sp.Expr:
    a, b, c, d = labels
    src = None if isinstance(act, tuple) else act
    m4 = (mixed_average(src, ((a, 1), (b, 1), (c, 1), (d, 1))) if src is not None
          else _avg_symbol(r"\langle\sigma'_{%s}\sigma'_{%s}\sigma'_{%s}\sigma'_{%s}\rangle", "".join(labels)))
    fresh = C_W**2 * Theta((a, c)) * Theta((b, d)) * m4
    return fresh + n_ratio * _dtheta(src, (a, b)) * _dtheta(src, (c, d)) * B(a, b, c, d)


def _F_rhs(act, labels) -> sp.Expr:
    a, b, c, d = labels
    src = None if isinstance(act, tuple) else act
    m4 = (mixed_average(src, ((a, 1), (b, 0), (c, 1), (d, 0))) if src is not None
          else _avg_symbol(r"\langle\sigma'_{%s}\sigma_{%s}\sigma'_{%s}\sigma_{%s}\rangle", "".join(labels)))
    fresh = C_W**2 * Theta((a, c)) * m4
    rest = sp.S.Zero
    for beta in dict.fromkeys((a, b)):
        for gamma in dict.fromkeys((c, d)):
            rest += F(a, beta, c, gamma) * _e_sigma(src, a, b, beta) * _e_sigma(src, c, d, gamma)
    return fresh + n_ratio * C_W**2 * rest


def _Theta1_rhs(act, labels) -> sp.Expr:
    a, b = labels
    p = (a, b)
    src = None if isinstance(act, tuple) else act
    ins = inputs(p)
    out = sum((_d(src, "T", p, (q,), r"\Theta'") * K1(q) for q in ins), sp.S.Zero)
    for i, q in enumerate(ins):
        for r in ins[i:]:
            weight = sp.Rational(1, 2) if q == r else sp.S.One
            out += weight * _d(src, "T", p, (q, r), r"\Theta'") * V(q, r)
    out += _dtheta(src, p) * Theta1(p)
    if src is None:
        out += sum((C_W * sp.Symbol(rf"\frac{{\partial\langle\sigma'_{{{greek(a)}}}\sigma'_{{{greek(b)}}}\rangle}}"
                                    rf"{{\partial K_{{{greek(''.join(pair(*q)))}}}}}", real=True) * D(p, q)
                    for q in ins), sp.S.Zero)
    else:
        out += sum((C_W * sp.diff(dd_average(src, p), K(q)) * D(p, q) for q in ins), sp.S.Zero)
    for beta in dict.fromkeys((a, b)):
        for gamma in dict.fromkeys((a, b)):
            out += C_W * F(a, beta, b, gamma) * _e_dd(src, a, b, beta, gamma)
    return n_ratio * out


_WHERE = (r"\text{with } K \equiv K^{(\ell)},\ \Theta \equiv \Theta^{(\ell)},\ V, A, B, D, F, K^{\{1\}}, "
          r"\Theta^{\{1\}} \text{ of layer } \ell,\ C, \lambda \text{ of layer } \ell+1,\ "
          r"\Theta'_{ab} = \lambda_b + \lambda_W\langle\sigma_a\sigma_b\rangle_K "
          r"+ C_W\langle\sigma'_a\sigma'_b\rangle_K"
          r"\Theta_{ab},\ K'_{ab} = C_b + C_W\langle\sigma_a\sigma_b\rangle_K,\ "
          r"h_{ab} = \lambda_W\sigma_a\sigma_b + C_W\Theta_{ab}\sigma'_a\sigma'_b \text{ (one neuron)},\ "
          r"\text{all zero at } \ell = 1")

_OBJECTS = {
    "A": (_A_rhs, V_SYMMETRIES, r"A^{(\ell+1)}_{(%s)(%s)}"),
    "B": (_B_rhs, B_SYMMETRIES, r"B^{(\ell+1)}_{%s%s}"),
    "D": (_D_rhs, D_SYMMETRIES, r"D^{(\ell+1)}_{(%s)(%s)}"),
    "F": (_F_rhs, F_SYMMETRIES, r"F^{(\ell+1)}_{%s%s}"),
}

#: The recursion names of ``net.recursion(...)`` and the objects each holds.
RECURSIONS = {"ntk_var": ("A", "B"), "ntk_preact": ("D", "F"), "ntk_mean_correction": ("Theta1",)}


@lru_cache(maxsize=64)
def ntk_recursion(act: Activation | str, name: str) -> PatternRecursion:
    """The symbolic recursion ``name`` (``ntk_var``: A, B; ``ntk_preact``: D, F; ``ntk_mean_correction``: Θ1).

    One equation per object and coincidence pattern (patterns are named ``"A:(aa)(bc)"``, ``"B:abcd"``,
    ``"Theta1:ab"``); ``structure`` keeps the derivatives of the maps as named symbols, ``explicit`` has
    sympy's derivatives for the activation.
    """
    act = activation(act)
    _check(act)
    if name not in RECURSIONS:
        raise KeyError(f"unknown NTK recursion {name!r}; choose from {sorted(RECURSIONS)}")
    patterns, lhs, structure, explicit = [], {}, {}, {}
    for obj in RECURSIONS[name]:
        if obj == "Theta1":
            for labels in coincidence_classes(2, ((0, 1), (1, 0))):
                key = f"Theta1:{labels}"
                patterns.append(key)
                lhs[key] = rf"\Theta^{{\{{1\}}(\ell+1)}}_{{{greek(labels)}}}"
                structure[key] = _Theta1_rhs((act,), tuple(labels))
                explicit[key] = _Theta1_rhs(act, tuple(labels))
            continue
        rhs, group, fmt = _OBJECTS[obj]
        for labels in coincidence_classes(4, group):
            key = f"{obj}:{labels}"
            patterns.append(key)
            lhs[key] = fmt % (greek(labels[:2]), greek(labels[2:]))
            structure[key] = rhs((act,), tuple(labels))
            explicit[key] = rhs(act, tuple(labels))
    return PatternRecursion(name, act, tuple(patterns), lhs, structure, explicit, _WHERE)


__all__ = ["B_SYMMETRIES", "D_SYMMETRIES", "F_SYMMETRIES", "RECURSIONS", "A", "B", "D", "F", "Theta", "Theta1",
           "dd_average", "mixed_average", "ntk_map", "ntk_recursion", "ss_average"]
