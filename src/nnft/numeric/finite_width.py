"""Evaluate the 1/n recursions of the four-point vertex V and the NLO metric K1 for P inputs, layer by layer.

The equations are those of :mod:`nnft.recursions.vertex` and :mod:`nnft.recursions.nlo` (CONVENTIONS.md):

``V' = C_W²(M4 − S⊗S) + r C_W² T(V)``, ``K1' = r C_W [D·K1 + ½ D²:V]``, ``r = n_ℓ/n_{ℓ-1}``,

where ``S_ab = ⟨σ_aσ_b⟩_K``, ``M4_abcd = ⟨σ_aσ_bσ_cσ_d⟩_K`` and ``D``, ``D²`` are the first and second
derivatives of ``⟨σ_aσ_b⟩`` in the symmetric entries ``K_aa, K_ab, K_bb`` that it depends on. The sparsity
of the mixing term (``∂K'_ab/∂K_cd = 0`` unless ``{c, d} ⊂ {a, b}``) makes ``T`` a product of two
three-term stencils, one per index pair:

``T(V)_{abcd} = Σ_{p ∈ {aa, ab, bb}} Σ_{q ∈ {cc, cd, dd}} D_{ab,p} D_{cd,q} V_{pq}``,

O(P⁴) per layer. On the diagonal (a = b) the map depends on K_aa only: ``D_{aa,aa} = d⟨σ²⟩/dK``, the other
two stencil weights are 0. This module only evaluates: it is handed a :class:`FiniteWidthPlan` of compiled
functions (generated from the symbolic derivatives by :mod:`nnft.codegen`) and imports nothing symbolic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nnft.errors import DivergenceError

Array = np.ndarray

#: Order of the outputs of :attr:`FiniteWidthPlan.two_point` (derivatives of ⟨σ_aσ_b⟩ in K_aa = A, K_ab = C, K_bb = B).
TWO_POINT_OUTPUTS = ("S", "A", "C", "B", "AA", "AC", "AB", "CC", "CB", "BB")
#: Order of the outputs of :attr:`FiniteWidthPlan.single` (⟨σ²⟩, its derivatives in K_aa, and ⟨σ⁴⟩).
SINGLE_OUTPUTS = ("S", "A", "AA", "M4")


@dataclass(frozen=True)
class FiniteWidthPlan:
    """Compiled functions the evaluator needs, built by the symbolic layer for one activation.

    ``two_point(K_aa[..., :, None], K_ab, K_bb[..., None, :])`` → the arrays of :data:`TWO_POINT_OUTPUTS`
    (broadcasting over leading axes, e.g. layers); ``single(K_aa)`` → those of :data:`SINGLE_OUTPUTS`;
    ``moments4(K)`` → ``⟨σ_aσ_bσ_cσ_d⟩_K`` of shape (P, P, P, P); ``variance(K_aa)`` → ``(⟨σ²⟩,)``.
    """

    two_point: Callable[..., Sequence[Array]]
    single: Callable[..., Sequence[Array]]
    moments4: Callable[[Array], Array]
    variance: Callable[..., Sequence[Array]] | None = None


@dataclass(frozen=True)
class LayerTerms:
    """The pieces of the layer maps at metrics K (leading axis: layers): S, D (3 arrays) and D² (6 arrays)."""

    S: Array
    D: tuple[Array, Array, Array]
    D2: dict[str, Array]
    M4_diag: Array

    def at(self, i: int) -> LayerTerms:
        """The terms of the i-th metric of the batch."""
        return LayerTerms(S=self.S[i], D=tuple(d[i] for d in self.D), D2={k: v[i] for k, v in self.D2.items()},
                          M4_diag=self.M4_diag[i])


def _as(v, shape) -> Array:
    return np.array(np.broadcast_to(np.asarray(v, dtype=np.float64), shape))


def layer_terms(plan: FiniteWidthPlan, K: Array) -> LayerTerms:
    """⟨σσ⟩ and its first and second derivatives at metrics K of shape (..., P, P), in one batched call.

    The diagonal entries come from the single-input map (the pair map may be singular there, relu: 1/sin θ).
    """
    d = np.ascontiguousarray(np.diagonal(K, axis1=-2, axis2=-1))
    P = K.shape[-1]
    if P > 1:
        with np.errstate(all="ignore"):
            out = [_as(v, K.shape) for v in plan.two_point(d[..., :, None], K, d[..., None, :])]
    else:
        out = [np.zeros(K.shape) for _ in TWO_POINT_OUTPUTS]
    vals = dict(zip(TWO_POINT_OUTPUTS, out, strict=True))
    s, a, aa, m4 = (_as(v, d.shape) for v in plan.single(d))
    idx = np.arange(P)
    for key in TWO_POINT_OUTPUTS:
        vals[key][..., idx, idx] = 0.0
    vals["S"][..., idx, idx] = s
    vals["A"][..., idx, idx] = a
    vals["AA"][..., idx, idx] = aa
    for key, v in (*vals.items(), ("M4", m4)):
        if not np.all(np.isfinite(v)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(v))[0])
            raise DivergenceError(
                f"the term {key} of the layer map (⟨σ_aσ_b⟩ or a derivative of it in the metric) is not finite at "
                f"index {bad} of the (layer, a, b) grid: the 1/n corrections need a smooth two-point map; nearly "
                "parallel or antiparallel inputs of a kinked activation make its second derivative diverge — drop or "
                "merge such inputs (or lower the variances if they overflow)"
            )
    return LayerTerms(S=vals["S"], D=(vals["A"], vals["C"], vals["B"]),
                      D2={k: vals[k] for k in ("AA", "AC", "AB", "CC", "CB", "BB")}, M4_diag=m4)


def single_input_metrics(plan: FiniteWidthPlan, K1: float, C_b: Sequence[float], C_W: Sequence[float]) -> Array:
    """``K^{(ℓ)}`` of one input for ℓ = 1..L from ``K^{(1)}``: ``K' = C_b + C_W ⟨σ²⟩_K`` (a scalar loop)."""
    L = len(C_W)
    out = np.empty(L)
    out[0] = K1
    fn = plan.variance if plan.variance is not None else (lambda k: plan.single(k)[:1])
    for ell in range(1, L):
        (s,) = fn(np.array([out[ell - 1]]))[:1]
        out[ell] = C_b[ell] + C_W[ell] * float(np.asarray(s).reshape(-1)[0])
    return out


def _stencil_last(D: tuple[Array, Array, Array], V: Array) -> Array:
    """``Σ_{q ∈ {cc, cd, dd}} D_{cd,q} V[..., q]`` on the last index pair of V."""
    dA, dC, dB = D
    diag = np.diagonal(V, axis1=2, axis2=3)  # V[p1, p2, c, c], shape (P, P, P)
    return dA * diag[:, :, :, None] + dC * V + dB * diag[:, :, None, :]


def mixing(D: tuple[Array, Array, Array], V: Array) -> Array:
    """``T(V)_{abcd} = Σ_p Σ_q D_{ab,p} D_{cd,q} V_{pq}`` (module docstring), shape (P, P, P, P)."""
    W = _stencil_last(D, V)
    W = np.transpose(W, (2, 3, 0, 1))  # the pairs exchanged: V is symmetric under it, W need not be
    W = _stencil_last(D, W)
    return np.transpose(W, (2, 3, 0, 1))


def nlo_shift(D: tuple[Array, Array, Array], D2: dict[str, Array], K1: Array, V: Array) -> Array:
    """``Σ_p D_{ab,p} K1_p + ½ Σ_{p,q} D²_{ab,pq} V_{pq}`` over p, q ∈ {aa, ab, bb}, shape (P, P)."""
    dA, dC, dB = D
    k1d = np.diag(K1)
    first = dA * k1d[:, None] + dC * K1 + dB * k1d[None, :]
    P = K1.shape[0]
    i = np.arange(P)
    a, b = np.meshgrid(i, i, indexing="ij")
    Vaaaa = V[a, a, a, a]
    Vbbbb = V[b, b, b, b]
    Vabab = V[a, b, a, b]
    Vaaab = V[a, a, a, b]
    Vaabb = V[a, a, b, b]
    Vabbb = V[a, b, b, b]
    second = (0.5 * (D2["AA"] * Vaaaa + D2["CC"] * Vabab + D2["BB"] * Vbbbb)
              + D2["AC"] * Vaaab + D2["AB"] * Vaabb + D2["CB"] * Vabbb)
    return first + second


def _sym4(V: Array) -> Array:
    """Average V over its 8-fold symmetry (removes rounding asymmetry of the stencils)."""
    V = 0.5 * (V + np.transpose(V, (1, 0, 2, 3)))
    V = 0.5 * (V + np.transpose(V, (0, 1, 3, 2)))
    return 0.5 * (V + np.transpose(V, (2, 3, 0, 1)))


def finite_width_recursion(plan: FiniteWidthPlan, Ks: Array, C_W: Sequence[float], widths: Sequence[int], *,
                           keep_all: bool = True) -> tuple[Array | None, Array | None, Array, Array]:
    """Run V and K1 from layer 1 (both 0) to layer L over the infinite-width metrics ``Ks`` (L, P, P).

    ``C_W`` has one value per layer (index ℓ − 1 for layer ℓ), ``widths`` the hidden widths n_1 … n_{L-1}.
    Returns ``(V_all, K1_all, V_L, K1_L)``: with ``keep_all`` the stacks (L, P, P, P, P) and (L, P, P),
    else ``None`` for them. The layer terms of all layers are evaluated in one batched call first.
    """
    L, P = Ks.shape[0], Ks.shape[1]
    V = np.zeros((P, P, P, P))
    K1 = np.zeros((P, P))
    V_all = np.zeros((L, P, P, P, P)) if keep_all else None
    K1_all = np.zeros((L, P, P)) if keep_all else None
    if L == 1:
        return V_all, K1_all, V, K1
    batch = layer_terms(plan, Ks[:-1])
    if P == 1:
        return _single_input(batch, C_W, widths, keep_all)
    for ell in range(1, L):  # layer ℓ → ℓ + 1, i.e. Ks[ell - 1] → index ell
        cw = float(C_W[ell])
        r = 1.0 if ell == 1 else widths[ell - 1] / widths[ell - 2]  # n_ℓ / n_{ℓ-1}; V^{(1)} = 0 makes ℓ = 1 moot
        terms = batch.at(ell - 1)
        if P == 1:
            M4 = terms.M4_diag.reshape(1, 1, 1, 1)
        else:
            M4 = plan.moments4(Ks[ell - 1])
        fresh = cw * cw * (M4 - terms.S[:, :, None, None] * terms.S[None, None, :, :])
        del M4
        if ell > 1:
            K1 = r * cw * nlo_shift(terms.D, terms.D2, K1, V)
            V = fresh + (r * cw * cw) * mixing(terms.D, V)
        else:
            V = fresh
        if P > 1:
            V = _sym4(V)
            K1 = 0.5 * (K1 + K1.T)
        if not (np.all(np.isfinite(V)) and np.all(np.isfinite(K1))):
            raise DivergenceError(
                f"V or K1 left float64 at layer {ell + 1}: the kernels grow too fast with depth; lower C_W, C_b "
                "or the input scale, or use fewer layers"
            )
        if keep_all:
            V_all[ell] = V
            K1_all[ell] = K1
    return V_all, K1_all, V, K1


def _single_input(batch: LayerTerms, C_W: Sequence[float], widths: Sequence[int], keep_all: bool):
    """One input: ``V' = C_W²(⟨σ⁴⟩ − ⟨σ²⟩²) + r χ_∥² V``, ``K1' = r (χ_∥ K1 + ½ C_W g'' V)`` as a scalar loop."""
    L = batch.S.shape[0] + 1
    s, a, aa, m4 = (np.asarray(x, dtype=np.float64).reshape(-1).tolist()
                    for x in (batch.S, batch.D[0], batch.D2["AA"], batch.M4_diag))
    v, k1 = 0.0, 0.0
    vs, k1s = [0.0], [0.0]
    for ell in range(1, L):
        cw = float(C_W[ell])
        r = 1.0 if ell == 1 else widths[ell - 1] / widths[ell - 2]
        i = ell - 1
        k1 = r * cw * (a[i] * k1 + 0.5 * aa[i] * v)
        v = cw * cw * (m4[i] - s[i] * s[i]) + r * (cw * a[i]) ** 2 * v
        vs.append(v)
        k1s.append(k1)
    if not (np.isfinite(v) and np.isfinite(k1)):
        raise DivergenceError("V or K1 left float64: the kernels grow too fast with depth; lower C_W, C_b or the input "
                              "scale, or use fewer layers")
    V_all = np.array(vs).reshape(L, 1, 1, 1, 1) if keep_all else None
    K1_all = np.array(k1s).reshape(L, 1, 1) if keep_all else None
    return V_all, K1_all, np.full((1, 1, 1, 1), v), np.full((1, 1), k1)


__all__ = [
    "SINGLE_OUTPUTS",
    "TWO_POINT_OUTPUTS",
    "FiniteWidthPlan",
    "LayerTerms",
    "finite_width_recursion",
    "layer_terms",
    "single_input_metrics",
    "mixing",
    "nlo_shift",
]
