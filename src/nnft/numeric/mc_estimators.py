"""Unbiased estimators from summed per-network features, and their delete-one-group jackknife errors.

Products of population means (``G_{12}G_{34}`` …) are estimated by U-statistics over *distinct*
networks, computed from power sums by Möbius inversion (:mod:`nnft.cumulants`), so every estimate is
exactly unbiased. Group sums are folded in group order; the jackknife deletes one group at a time,
which keeps the network as the independent unit (its neurons are exchangeable but correlated).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnft.cumulants import distinct_sum, falling_factorial
from nnft.numeric.mc_plan import _Plan
from nnft.numeric.mc_sixpoint import _SIX_TERMS, SIX_POINT_PATTERNS, _mono_name


def _u2(Ta: np.ndarray, Taa: np.ndarray, N: float, Tb: np.ndarray | None = None) -> np.ndarray:
    """U-statistic of G_{12} G_{34} over distinct networks: (Σa ⊗ Σa − Σ a⊗a) / N(N−1).

    With ``Tb`` (and ``Taa`` = Σ a⊗b), the mixed product E[a]_{12} E[b]_{34}: (Σa ⊗ Σb − Σ a⊗b) / N(N−1).
    """
    P = Ta.shape[0]
    Tb = Ta if Tb is None else Tb
    outer = (Ta.reshape(-1)[:, None] * Tb.reshape(-1)[None, :]).reshape(P, P, P, P)
    return (outer - Taa) / (N * (N - 1))


def _estimators(T: dict[str, np.ndarray], plan: _Plan) -> dict[int, dict[str, np.ndarray]]:
    """Unbiased estimates of every requested statistic, per layer, from the feature sums ``T`` of N networks."""
    N = float(T["N"])
    out: dict[int, dict[str, np.ndarray]] = {}
    for ell in plan.layers:
        m = plan.n[ell]
        res: dict[str, np.ndarray] = {}
        Ta = T[f"{ell}:a"]
        res["G"] = Ta / N
        if "four_point" in plan.stats:
            with np.errstate(invalid="ignore", divide="ignore"):
                U = _u2(Ta, T[f"{ell}:aa"], N)
                pair = U + np.einsum("acbd->abcd", U) + np.einsum("adbc->abcd", U)
                res["four_point_same"] = T[f"{ell}:b"] / N - pair
                if m >= 2:
                    cross = (m * m * T[f"{ell}:aa"] - m * T[f"{ell}:b"]) / (m * (m - 1))
                    res["four_point_cross"] = cross / N - U
                else:
                    res["four_point_cross"] = np.full_like(U, np.nan)
        if "six_point" in plan.stats:
            vals = []
            for pattern in SIX_POINT_PATTERNS:
                total = 0.0
                for prod, coef in _SIX_TERMS[pattern].items():
                    t = len(prod)
                    if N < t:
                        total = np.nan
                        break

                    def ps(blk, prod=prod, ell=ell):
                        return T[f"{ell}:six:" + _mono_name(tuple(sorted(prod[j] for j in blk)))]

                    total = total + coef * distinct_sum(ps, t) / falling_factorial(N, t)
                vals.append(total)
            res["six_point"] = np.asarray(vals, dtype=np.float64)
        out[ell] = res
    if "ntk" in plan.stats:
        L = plan.depth
        m = plan.n[L]
        Tt, Ttt, Ts = T[f"{L}:ntk:t"], T[f"{L}:ntk:tt"], T[f"{L}:ntk:tsame"]
        with np.errstate(invalid="ignore", divide="ignore"):
            U = _u2(Tt, Ttt, N)
            res = out.setdefault(L, {})
            res["ntk_mean"] = Tt / N
            res["ntk_var"] = Ts / N - U
            if m >= 2:
                res["ntk_cov_cross"] = (m * m * Ttt - m * Ts) / (m * (m - 1)) / N - U
                res["ntk_offdiag"] = T[f"{L}:ntk:toff"] / N
            # kernel-preactivation correlations E[ΔΘ̂_{i1i2;ab} z_{i3;c} z_{i4;d}]: the product of means
            # E[Θ̂_{ii;ab}] E[z_{k;c} z_{k;d}] is a U-statistic of t and a over distinct networks
            Tta, Tzs = T[f"{L}:ntk:ta"], T[f"{L}:ntk:tzsame"]
            Uz = _u2(Tt, Tta, N, T[f"{L}:ntk:a"])
            res["ntk_preact_same"] = Tzs / N - Uz
            if m >= 2:
                res["ntk_preact_cross"] = (m * m * Tta - m * Tzs) / (m * (m - 1)) / N - Uz
                res["ntk_preact_offdiag"] = T[f"{L}:ntk:tzoff"] / N  # E[Θ̂_{ik}] = 0 for i ≠ k
    return out


def _fold(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Σ_g parts[g], added sequentially in group order (the reduction order is fixed)."""
    total = {k: np.array(v, dtype=np.float64, copy=True) for k, v in parts[0].items()}
    for p in parts[1:]:
        for k in total:
            total[k] = total[k] + p[k]
    return total


def _jackknife(
    parts: Sequence[dict[str, np.ndarray]], plan: _Plan
) -> tuple[dict[int, dict[str, np.ndarray]], dict[int, dict[str, np.ndarray]]]:
    """Full-sample estimates and delete-one-group jackknife standard errors."""
    total = _fold(parts)
    full = _estimators(total, plan)
    G = len(parts)
    reps = []
    if G >= 2:
        for p in parts:
            sub = {k: total[k] - p[k] for k in total}
            with np.errstate(invalid="ignore", divide="ignore"):
                reps.append(_estimators(sub, plan))
    errs: dict[int, dict[str, np.ndarray]] = {}
    for ell, stats in full.items():
        errs[ell] = {}
        for name, val in stats.items():
            if G < 2:
                errs[ell][name] = np.full_like(val, np.nan)
                continue
            r = np.stack([rep[ell][name] for rep in reps])
            with np.errstate(invalid="ignore"):
                errs[ell][name] = np.sqrt((G - 1) / G * np.sum((r - r.mean(axis=0)) ** 2, axis=0))
    return full, errs
