"""Evaluate the 1/n recursions of the NTK (Θ1, A, B, D, F) together with V and K1 for P inputs, layer by layer.

The equations are those of :mod:`nnft.recursions.ntk_fluctuation` (derivation there and in
``docs/ntk_finite_width.md``). With ``S = ⟨σσ⟩``, ``T = ⟨σ'σ'⟩`` and their derivatives in the metric entries
(from the compiled plan), the maps' derivatives are ``∂_pK' = C_W ∂_pS``, ``∂_pΘ' = λ_W ∂_pS + C_W Θ ∂_pT``,
``∂_ΘΘ' = C_W T``; the propagated terms are three-term stencils per index pair (as for V in
:mod:`nnft.numeric.finite_width`), O(P⁴) per layer. The fresh terms need the moments ``⟨σσσσ⟩``,
``⟨σ'σ'σσ⟩`` and ``⟨σ'σ'σ'σ'⟩`` over every index quadruple, evaluated once per distinct entry (up to each
tensor's symmetry) and grouped by the coincidence pattern of the quadruple. This module only evaluates: the
activation reaches it as compiled callables in an :class:`NTKPlan`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nnft.errors import DivergenceError
from nnft.numeric.finite_width import FiniteWidthPlan, _stencil_last, _sym4, layer_terms, mixing, nlo_shift

Array = np.ndarray

#: Symmetries (slot permutations) under which each moment tensor is invariant.
_SYM_DDSS = ((0, 1, 2, 3), (1, 0, 2, 3), (0, 1, 3, 2), (1, 0, 3, 2))
_SYM_ALL = tuple((a, b, c, d) for a in range(4) for b in range(4) for c in range(4) for d in range(4)
                 if len({a, b, c, d}) == 4)


@dataclass(frozen=True)
class NTKPlan:
    """Compiled pieces for one activation: the V/K1 plan ``base``, the ⟨σ'σ'⟩ plan ``dd`` and the mixed moments.

    ``mixed(S, p, q)`` → ``⟨Π_i σ(z_i)^{p_i}σ'(z_i)^{q_i}⟩`` for covariances S (B, k, k).
    """

    base: FiniteWidthPlan
    dd: FiniteWidthPlan
    mixed: Callable[[Array, tuple[int, ...], tuple[int, ...]], Array]


def mixed_moments4(K: Array, kinds: tuple[int, int, int, int], group, mixed) -> Array:
    """``M[a,b,c,d] = ⟨Π_s f_s(z_{i_s})⟩_K`` with f_s = σ' (kinds[s] = 1) or σ (0), shape (P, P, P, P).

    Each entry is evaluated once per orbit of ``group`` (slot permutations leaving the tensor invariant); the
    distinct samples of an entry are merged (``σ'_aσ_a`` is one factor ``σ'σ`` of z_a) and entries with the same
    powers are evaluated in one batch.
    """
    P = K.shape[0]
    grid = np.indices((P,) * 4).reshape(4, -1).T  # (P⁴, 4)
    w = np.array([P**3, P**2, P, 1])
    codes = np.stack([grid[:, list(g)] @ w for g in group])
    canon = codes.min(axis=0)
    uniq, inverse = np.unique(canon, return_inverse=True)
    reps = np.stack([uniq // P**3, (uniq // P**2) % P, (uniq // P) % P, uniq % P], axis=1)
    batches: dict[tuple, list] = {}
    for r, row in enumerate(reps):
        counts: dict[int, list[int]] = {}
        for s, i in enumerate(row):
            c = counts.setdefault(int(i), [0, 0])
            c[kinds[s]] += 1
        items = sorted(counts.items(), key=lambda t: (t[1][0], t[1][1]))
        sig = tuple((c[0], c[1]) for _, c in items)
        batches.setdefault(sig, []).append((r, [i for i, _ in items]))
    vals = np.empty(reps.shape[0])
    for sig, members in batches.items():
        rows = np.array([m[0] for m in members])
        idx = np.array([m[1] for m in members])
        S = K[idx[:, :, None], idx[:, None, :]]
        p = tuple(s[0] for s in sig)
        q = tuple(s[1] for s in sig)
        vals[rows] = mixed(S, p, q)
    return vals[inverse].reshape((P,) * 4)


def _mix2(X: tuple[Array, Array, Array], Y: tuple[Array, Array, Array], V: Array) -> Array:
    """``Σ_p Σ_q X_{ab,p} Y_{cd,q} V_{pq}`` (two different three-term stencils), shape (P, P, P, P)."""
    W = _stencil_last(Y, V)
    W = _stencil_last(X, np.transpose(W, (2, 3, 0, 1)))
    return np.transpose(W, (2, 3, 0, 1))


def _sym_pairs(X: Array) -> Array:
    X = 0.5 * (X + np.transpose(X, (1, 0, 2, 3)))
    return 0.5 * (X + np.transpose(X, (0, 1, 3, 2)))


def _sym_group(X: Array, perms) -> Array:
    return sum(np.transpose(X, p) for p in perms) / len(perms)


_B_PERMS = ((0, 1, 2, 3), (1, 0, 3, 2), (2, 3, 0, 1), (3, 2, 1, 0))
_F_PERMS = ((0, 1, 2, 3), (2, 3, 0, 1))

#: The arrays of one layer, in this order, in the result of :func:`ntk_finite_width_recursion`.
FIELDS = ("V", "K1", "Theta1", "A", "B", "D", "F")


def ntk_finite_width_recursion(plan: NTKPlan, Ks: Array, Thetas: Array, C_W: Sequence[float],
                               lambda_W: Sequence[float], widths: Sequence[int], *,
                               keep_all: bool = False) -> dict[str, Array]:
    """Run V, K1, Θ1, A, B, D, F from layer 1 (all 0) to layer L over the metrics ``Ks`` and NTKs ``Thetas`` (L, P, P).

    ``C_W``, ``lambda_W`` have one value per layer (index ℓ − 1), ``widths`` are n_1 … n_{L-1}. Returns a dict of
    :data:`FIELDS`, each the output layer's array, or with ``keep_all`` the stack over layers (leading axis L).
    """
    L, P = Ks.shape[0], Ks.shape[1]
    cur = {"V": np.zeros((P,) * 4), "K1": np.zeros((P, P)), "Theta1": np.zeros((P, P)),
           "A": np.zeros((P,) * 4), "B": np.zeros((P,) * 4), "D": np.zeros((P,) * 4), "F": np.zeros((P,) * 4)}
    stack = {k: [v.copy()] for k, v in cur.items()} if keep_all else None
    if L > 1:
        sterms = layer_terms(plan.base, Ks[:-1])
        tterms = layer_terms(plan.dd, Ks[:-1])
    idx = np.arange(P)
    for ell in range(1, L):  # layer ℓ → ℓ + 1
        cw, lw = float(C_W[ell]), float(lambda_W[ell])
        r = 1.0 if ell == 1 else widths[ell - 1] / widths[ell - 2]
        K_, Th = Ks[ell - 1], Thetas[ell - 1]
        s, t = sterms.at(ell - 1), tterms.at(ell - 1)
        S, T = s.S, t.S
        dK = tuple(cw * d for d in s.D)
        dT = tuple(lw * ds + cw * Th * dt for ds, dt in zip(s.D, t.D, strict=True))
        d2T = {k: lw * s.D2[k] + cw * Th * t.D2[k] for k in s.D2}
        dTh = cw * T
        M_ssss = plan.base.moments4(K_) if P > 1 else s.M4_diag.reshape(1, 1, 1, 1)
        M_ddss = mixed_moments4(K_, (1, 1, 0, 0), _SYM_DDSS, plan.mixed)
        M_dddd = mixed_moments4(K_, (1, 1, 1, 1), _SYM_ALL, plan.mixed)
        SS = S[:, :, None, None] * S[None, None, :, :]
        TS = T[:, :, None, None] * S[None, None, :, :]
        TT = T[:, :, None, None] * T[None, None, :, :]
        Th_ab = Th[:, :, None, None]
        Th_cd = Th[None, None, :, :]
        M_ssdd = np.transpose(M_ddss, (2, 3, 0, 1))
        fresh_V = cw * cw * (M_ssss - SS)
        fresh_A = (lw * lw * (M_ssss - SS) + lw * cw * (Th_cd * (M_ssdd - np.transpose(TS, (2, 3, 0, 1)))
                                                        + Th_ab * (M_ddss - TS))
                   + cw * cw * Th_ab * Th_cd * (M_dddd - TT))
        fresh_D = cw * (lw * (M_ssss - SS) + cw * Th_ab * (M_ddss - TS))
        Th_ac = Th[:, None, :, None]
        Th_bd = Th[None, :, None, :]
        fresh_B = cw * cw * Th_ac * Th_bd * M_dddd
        fresh_F = cw * cw * Th_ac * np.transpose(M_ddss, (0, 2, 1, 3))  # ⟨σ'_aσ_bσ'_cσ_d⟩ = M_ddss[a, c, b, d]
        if ell == 1:
            new = {"V": fresh_V, "K1": np.zeros((P, P)), "Theta1": np.zeros((P, P)), "A": fresh_A, "B": fresh_B,
                   "D": fresh_D, "F": fresh_F}
        else:
            V, K1, Th1, A, B, D, F = (cur[k] for k in FIELDS)
            dd = dTh[:, :, None, None] * dTh[None, None, :, :]
            X = _stencil_last(dT, D)  # Σ_q ∂_qΘ'_cd D_{ab,q}
            new_A = fresh_A + r * (_mix2(dT, dT, V) + dTh[:, :, None, None] * X
                                   + dTh[None, None, :, :] * np.transpose(X, (2, 3, 0, 1)) + dd * A)
            new_B = fresh_B + r * dd * B
            new_D = fresh_D + r * (_mix2(dT, dK, V) + dTh[:, :, None, None] * _stencil_last(dK, D))
            # F: ⟨∂_β(σ'_aσ_b)⟩ — β = a: 2∂S_ab/∂K_aa (a = b: dS/dK), β = b: T_ab (a = b: no second term)
            e1 = 2.0 * s.D[0]
            e1[idx, idx] = s.D[0][idx, idx]
            e2 = T.copy()
            e2[idx, idx] = 0.0
            Fd = np.diagonal(F, axis1=2, axis2=3)  # F[a, b, c, c]
            Faacc = np.einsum("aacc->ac", F)
            Faacd = np.einsum("aacd->acd", F)
            new_F = fresh_F + r * cw * cw * (
                e1[:, :, None, None] * e1[None, None, :, :] * Faacc[:, None, :, None]
                + e1[:, :, None, None] * e2[None, None, :, :] * Faacd[:, None, :, :]
                + e2[:, :, None, None] * e1[None, None, :, :] * Fd[:, :, :, None]
                + e2[:, :, None, None] * e2[None, None, :, :] * F)
            a, b = np.meshgrid(idx, idx, indexing="ij")
            dA, dC, dB = t.D
            new_Th1 = r * (nlo_shift(dT, d2T, K1, V) + dTh * Th1
                           + cw * (dA * D[a, b, a, a] + dC * D[a, b, a, b] + dB * D[a, b, b, b])
                           + cw * (2.0 * dA * F[a, a, b, a] + dC * (F[a, a, b, b] + F[a, b, b, a])
                                   + 2.0 * dB * F[a, b, b, b]))
            new = {"V": fresh_V + (r * cw * cw) * mixing(s.D, V), "K1": r * cw * nlo_shift(s.D, s.D2, K1, V),
                   "Theta1": new_Th1, "A": new_A, "B": new_B, "D": new_D, "F": new_F}
        new["V"], new["A"] = _sym4(new["V"]), _sym4(new["A"])
        new["D"] = _sym_pairs(new["D"])
        new["B"], new["F"] = _sym_group(new["B"], _B_PERMS), _sym_group(new["F"], _F_PERMS)
        new["K1"], new["Theta1"] = 0.5 * (new["K1"] + new["K1"].T), 0.5 * (new["Theta1"] + new["Theta1"].T)
        for k, v in new.items():
            if not np.all(np.isfinite(v)):
                raise DivergenceError(
                    f"the NTK statistic {k} left float64 at layer {ell + 1}: the kernels grow too fast with depth, "
                    "or nearly parallel inputs of a kinked activation make a derivative of the layer map diverge; "
                    "lower C_W, C_b or the input scale, use fewer layers, or drop near-duplicate inputs")
        cur = new
        if keep_all:
            for k, v in cur.items():
                stack[k].append(v.copy())
    if keep_all:
        return {k: np.stack(v) for k, v in stack.items()}
    return cur


__all__ = ["FIELDS", "NTKPlan", "mixed_moments4", "ntk_finite_width_recursion"]
