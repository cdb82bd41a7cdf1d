"""The first-order (linear-response) solution of the forward–backward saddle: kernel shift = V : error signal.

To first order in the conjugate kernels (../shared/THEORY.md §5, derived there and in ``docs/feature_learning.md``),
with ``c̃^{(ℓ)} = n_{ℓ−1} C̃^{(ℓ)}`` (order one):

    c̃^{(L)}  = ½ (Ỹ Ỹᵀ − m K̃)  on the training block,  K̃ = (K_AA + κ I)⁻¹,  Ỹ = K̃ Y
    c̃^{(ℓ)}  = χ^{(ℓ+1)ᵀ} c̃^{(ℓ+1)},   χ^{(ℓ+1)}_{(αβ)(γδ)} = ∂K^{(ℓ+1)}_{αβ}/∂K^{(ℓ)}_{γδ}   (the NNGP map's Jacobian)
    C^{(ℓ)}  = K^{(ℓ)} + (1/n_{ℓ−1}) Σ_{γδ} V^{(ℓ)}_{(αβ)(γδ)} c̃^{(ℓ)}_{γδ}

The width ratios of the backward map cancel in c̃, and ``n_{ℓ−1}Cov(C^{(ℓ)}, C^{(L)}) = V^{(ℓ)} χ_{L←ℓ}ᵀ`` turns
the forward linear response into the layer's own vertex contracted with its own error signal. V comes from
the finite-width engine (:func:`nnft.finite_width.four_point`), χ from :meth:`OneLayerMap.jacobian`
compiled by the code generator. For the output layer this is ``K + ½ V:(ỸỸᵀ − mK̃)/n``.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import sympy as sp

from nnft.codegen.module import FunctionSpec, compile_module

__all__ = ["nngp_backward", "nngp_of_kernel", "output_signal", "perturbative_kernels"]


@functools.lru_cache(maxsize=32)
def _map_module(act):
    from nnft.recursions.nngp import nngp_map

    return nngp_map(act).compile()


def nngp_of_kernel(act, K: np.ndarray, C_b: float, C_W: float) -> np.ndarray:
    """The NNGP map applied to a given kernel, ``C_b + C_W ⟨φ(z_α)φ(z_β)⟩_K`` (the generated one-layer map)."""
    mod = _map_module(act)
    d = np.diag(K)
    out = np.array(np.broadcast_to(mod.offdiag(d[:, None], K, d[None, :], C_b, C_W)[0], K.shape), dtype=np.float64)
    out[np.diag_indices_from(out)] = mod.diag(d, C_b, C_W)[0]
    return 0.5 * (out + out.T)


@functools.lru_cache(maxsize=32)
def _jacobian_module(act):
    """The generated module with ``jac(K_aa, K_ab, K_bb, C_b, C_W)`` and ``jac_diag(K_aa, C_b, C_W)``."""
    from nnft.gaussian import Kaa, Kab
    from nnft.recursions.nngp import KINDS, nngp_map

    m = nngp_map(act)
    J = m.jacobian()
    outs = {f"d_{arg}": J.get(("K_ab", arg), sp.S.Zero) for arg in ("K_aa", "K_ab", "K_bb")}
    # for the linear map the derivatives are constants; `+ 0·K` keeps each output an expression of an argument
    outs = {k: v + 0 * Kab for k, v in outs.items()}
    dia = sp.diff(m.diag["K_aa"], Kaa) + 0 * Kaa
    specs = [FunctionSpec("jac", outs, m.offdiag_args, {s.name: KINDS[s.name] for s in m.offdiag_args}),
             FunctionSpec("jac_diag", {"d_K_aa": dia}, m.diag_args, {"K_aa": "row", "C_b": "scalar", "C_W": "scalar"})]
    return compile_module("nngp_jacobian", specs, "numpy", key="nngp_jacobian|" + m.cache_key())


def nngp_backward(act, K: np.ndarray, ct_next: np.ndarray, C_b: float, C_W: float) -> np.ndarray:
    """``χᵀ c̃``: ``c̃_{γδ} = Σ_{αβ} c̃'_{αβ} ∂K'_{αβ}/∂K_{γδ}`` for the NNGP map at K (entrywise derivatives).

    Off the diagonal ``c̃_{γδ} = c̃'_{γδ} ∂K'_{γδ}/∂K_{γδ}``; on it
    ``c̃_{γγ} = c̃'_{γγ} dK'_{γγ}/dK_{γγ} + Σ_{β≠γ} (c̃'_{γβ} ∂K'_{γβ}/∂K_{γγ} + c̃'_{βγ} ∂K'_{βγ}/∂K_{γγ})``.
    """
    mod = _jacobian_module(act)
    d = np.diag(K).copy()
    P = K.shape[0]
    with np.errstate(all="ignore"):
        j_aa, j_ab, j_bb = (np.broadcast_to(np.asarray(v, dtype=np.float64), (P, P)).copy()
                            for v in mod.jac(d[:, None], K, d[None, :], C_b, C_W))
    (j_d,) = mod.jac_diag(d, C_b, C_W)
    j_d = np.broadcast_to(np.asarray(j_d, dtype=np.float64), (P,))
    off = ~np.eye(P, dtype=bool)
    for j in (j_aa, j_ab, j_bb):
        j[~off] = 0.0
    live = ct_next != 0
    if not (np.all(np.isfinite(j_aa[live & off])) and np.all(np.isfinite(j_ab[live & off]))):
        raise FloatingPointError("the NNGP map's Jacobian is not finite at these kernels (parallel inputs?)")
    out = ct_next * j_ab
    out[~off] = 0.0
    diag = np.diag(ct_next) * j_d + np.sum(ct_next * j_aa, axis=1) + np.sum(ct_next * j_bb, axis=0)
    out[np.diag_indices(P)] = diag
    return out


def output_signal(K_AA: np.ndarray, Y: np.ndarray, kappa: float) -> np.ndarray:
    """``c̃^{(L)} = ½(ỸỸᵀ − m K̃)``, ``K̃ = (K_AA + κ I)⁻¹``, ``Ỹ = K̃ Y`` (P_A × P_A)."""
    from nnft.errors import InputError
    from nnft.numeric.spd import factor_spd

    with warnings.catch_warnings():  # a jitter is refused below, with the fix, instead of warned about
        warnings.simplefilter("ignore")
        fac = factor_spd(K_AA + kappa * np.eye(K_AA.shape[0]), "the training kernel K_AA + κ I",
                         hint="Duplicate training inputs with κ = 0 make it singular: increase kappa.")
    if fac.jitter > 0:
        raise InputError(f"the training kernel K_AA + κI is numerically singular (a jitter of {fac.jitter:.2g} was "
                         f"needed, κ = {kappa:g}): the error signal (K_AA + κ)⁻¹Y(…)ᵀ would be huge. Increase kappa "
                         "(e.g. 1e-3 × the kernel's scale) or remove (nearly) linearly dependent training inputs")
    Kt = fac.inverse()
    Yt = fac.solve(Y)
    out = 0.5 * (Yt @ Yt.T - Y.shape[1] * Kt)
    return 0.5 * (out + out.T)


def perturbative_kernels(net, x: np.ndarray, Y: np.ndarray, P_A: int, kappa: float):
    """``(C, c̃, K, V)``: the first-order MAP kernels (L, P, P), the error signals c̃ = n C̃ (L, P, P), the NNGP
    kernels (L, P, P) and the vertices (L, P, P, P, P) of every layer on ``x`` (train first)."""
    from nnft.finite_width import four_point

    L, P = net.depth, x.shape[0]
    K = np.asarray(net.kernels(x, ntk=False, layers="all").K, dtype=np.float64)
    V = np.asarray(four_point(net, x, layers="all"), dtype=np.float64) if L >= 2 else np.zeros((1, P, P, P, P))
    ct = np.zeros((L, P, P))
    ct[L - 1, :P_A, :P_A] = output_signal(K[L - 1, :P_A, :P_A], Y, kappa)
    for ell in range(L - 1, 0, -1):  # c̃^{(ℓ)} from c̃^{(ℓ+1)} through layer ℓ+1's map (index ℓ)
        ct[ell - 1] = nngp_backward(net.activation, K[ell - 1], ct[ell], net.C_b[ell], net.C_W[ell])
    C = K.copy()
    for ell in range(2, L + 1):
        n_prev = net.widths[ell - 2]
        C[ell - 1] = K[ell - 1] + np.einsum("abcd,cd->ab", V[ell - 1], ct[ell - 1]) / n_prev
        C[ell - 1] = 0.5 * (C[ell - 1] + C[ell - 1].T)
    return C, ct, K, V
