"""Per-network features of a sampled batch and their sums over one group of networks.

Each network contributes neuron averages (``a = zᵀz/m``, ``b = Σ_i z_i⊗z_i⊗z_i⊗z_i/m``, their products,
distinct-neuron moment features for the six-point function, and the NTK counterparts ``t``, ``tt``,
``tsame``, ``toff`` with the kernel-preactivation features ``a``, ``ta``, ``tzsame``, ``tzoff``).
:func:`_run_group` draws the networks of one group from its own seeded stream and sums every feature
sequentially in network order, so the sums do not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nnft.cumulants import distinct_sum, falling_factorial
from nnft.numeric.mc_activations import _functions
from nnft.numeric.mc_plan import _Plan
from nnft.numeric.mc_sampling import _forward
from nnft.numeric.mc_sixpoint import _SIX_KEYS, _mono_name, _six_monomials


def _layer_features(plan: _Plan, z: np.ndarray) -> dict[str, np.ndarray]:
    """Per-network statistics of one layer: neuron averages and their products, each (B, …)."""
    B, m, P = z.shape
    out: dict[str, np.ndarray] = {}
    a = np.matmul(np.swapaxes(z, 1, 2), z) / m  # (B, P, P)
    out["a"] = a
    if "four_point" in plan.stats:
        z2 = (z[:, :, :, None] * z[:, :, None, :]).reshape(B, m, P * P)
        out["b"] = (np.matmul(np.swapaxes(z2, 1, 2), z2) / m).reshape(B, P, P, P, P)
        af = a.reshape(B, P * P)
        out["aa"] = (af[:, :, None] * af[:, None, :]).reshape(B, P, P, P, P)
    if "six_point" in plan.stats:
        za = z[:, :, plan.six_input]
        z2 = za * za
        psum = {2: z2.sum(axis=1), 4: (z2 * z2).sum(axis=1), 6: (z2 * z2 * z2).sum(axis=1)}
        feats: dict[tuple[int, ...], np.ndarray] = {}
        for key in _SIX_KEYS:
            r = len(key)
            if m < r:
                feats[key] = np.full(B, np.nan)
                continue
            feats[key] = distinct_sum(lambda blk, key=key: psum[sum(key[j] for j in blk)], r) / falling_factorial(m, r)
        for mono in _six_monomials():
            prod = feats[mono[0]]
            for key in mono[1:]:
                prod = prod * feats[key]
            out["six:" + _mono_name(mono)] = prod
    return out


def _ntk_features(theta: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
    """Per-network NTK statistics from Θ̂ (B, m, m, P, P) and the output preactivations z (B, m, P).

    Kernel-kernel features: ``t`` = mean_i Θ̂_ii, ``tt`` = t⊗t, ``tsame`` = mean_i Θ̂_ii⊗Θ̂_ii and (m ≥ 2)
    ``toff`` = mean_{i≠j} Θ̂_ij⊗Θ̂_ij. Kernel-preactivation features, all (B, P, P, P, P) indexed
    [a, b, c, d] = (Θ̂ indices, z indices): ``a`` = zᵀz/m, ``ta`` = t⊗a, ``tzsame`` = mean_i Θ̂_{ii;ab} z_{i;c}
    z_{i;d} and (m ≥ 2) ``tzoff`` = mean_{i≠k} Θ̂_{ik;ab} z_{i;c} z_{k;d}. The distinct-neuron average
    mean_{i≠k} Θ̂_{ii;ab} z_{k;c} z_{k;d} = (m² ta − m tzsame)/(m(m−1)) follows from these in the estimator.
    """
    B, m, _, P, _ = theta.shape
    diag = theta[:, np.arange(m), np.arange(m)]  # (B, m, P, P)
    t = diag.mean(axis=1)
    tf = t.reshape(B, P * P)
    df = diag.reshape(B, m, P * P)
    a = np.matmul(np.swapaxes(z, 1, 2), z) / m  # (B, P, P)
    af = a.reshape(B, P * P)
    z2 = (z[:, :, :, None] * z[:, :, None, :]).reshape(B, m, P * P)  # z_{i;c} z_{i;d}
    tzsame = np.matmul(np.swapaxes(df, 1, 2), z2)  # Σ_i Θ̂_{ii;ab} z_{i;c} z_{i;d}, (B, P², P²)
    out = {
        "t": t,
        "tt": (tf[:, :, None] * tf[:, None, :]).reshape(B, P, P, P, P),
        "tsame": (np.matmul(np.swapaxes(df, 1, 2), df) / m).reshape(B, P, P, P, P),
        "a": a,
        "ta": (tf[:, :, None] * af[:, None, :]).reshape(B, P, P, P, P),
        "tzsame": (tzsame / m).reshape(B, P, P, P, P),
    }
    if m >= 2:
        full = theta.reshape(B, m * m, P * P)
        allsq = np.matmul(np.swapaxes(full, 1, 2), full)  # Σ_{ij} Θ_ij ⊗ Θ_ij
        diagsq = np.matmul(np.swapaxes(df, 1, 2), df)
        out["toff"] = ((allsq - diagsq) / (m * (m - 1))).reshape(B, P, P, P, P)
        # Σ_{i,k} Θ̂_{ik;ab} z_{i;c} z_{k;d}: contract k, then i, by two batched matrix products
        th = np.transpose(theta, (0, 1, 3, 4, 2)).reshape(B, m * P * P, m)  # [i, a, b | k]
        y = np.matmul(th, z).reshape(B, m, P * P * P)  # [i | a, b, d]
        allz = np.matmul(np.swapaxes(z, 1, 2), y).reshape(B, P, P, P, P)  # [c, a, b, d]
        allz = np.transpose(allz, (0, 2, 3, 1, 4)).reshape(B, P * P, P * P)  # [a, b, c, d]
        out["tzoff"] = ((allz - tzsame) / (m * (m - 1))).reshape(B, P, P, P, P)
    return out


def _batch_features(plan: _Plan, eps: np.ndarray, sigma, dsigma) -> dict[str, np.ndarray]:
    """Every per-network feature of one batch, keyed ``"ℓ:name"`` (NTK features ``"L:ntk:name"``)."""
    # overflow is detected and raised, with the layer, by _forward and by the final check of estimate()
    with np.errstate(over="ignore", invalid="ignore"):
        zs, theta = _forward(plan, eps, sigma, dsigma)
        feats: dict[str, np.ndarray] = {}
        for ell in plan.layers:
            for k, v in _layer_features(plan, zs[ell]).items():
                feats[f"{ell}:{k}"] = v
        if theta is not None:
            for k, v in _ntk_features(theta, zs[plan.depth]).items():
                feats[f"{plan.depth}:ntk:{k}"] = v
    return feats


def _run_group(plan: _Plan, g: int, progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Sums over the networks of group g of every per-network feature, folded sequentially in network order.

    Also returns ``"N"``. The normals of group g come from ``SeedSequence(seed).spawn(groups)[g]``,
    consumed network by network, so any batch size gives the same numbers and the same sums.
    """
    sigma, dsigma, _ = _functions(plan.activation)
    child = np.random.SeedSequence(plan.seed).spawn(plan.groups)[g]
    rng = np.random.Generator(np.random.PCG64(child))
    size = plan.group_sizes[g]
    per = plan.draws_per_network
    acc: dict[str, np.ndarray] | None = None
    done = 0
    while done < size:
        B = min(plan.batch_size, size - done)
        eps = rng.standard_normal((B, per))
        feats = _batch_features(plan, eps, sigma, dsigma)
        with np.errstate(over="ignore", invalid="ignore"):
            if acc is None:
                acc = {k: np.cumsum(v, axis=0)[-1] for k, v in feats.items()}
            else:
                acc = {k: np.cumsum(np.concatenate([acc[k][None], v]), axis=0)[-1] for k, v in feats.items()}
        done += B
        if progress is not None:
            progress(B)
    acc = dict(acc or {})
    acc["N"] = np.float64(size)
    return acc
