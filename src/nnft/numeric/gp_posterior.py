"""Bayesian posterior of the network outputs on test inputs, from the kernels: order 0 (GP) and order 1/n.

Setting (../shared/THEORY.md §1, §6; PDLT ch. 6): outputs ``z_{i;α}``, ``i = 1…m``, on training points
``A`` and test points ``B``; data ``y_{i;α} = z_{i;α} + ε``, ``ε ~ N(0, σ_ε²)``. The prior has covariance
``δ_ij G_{αβ}`` (``G = K + K1/n``) and connected four-point function
``(1/n)[δ_ij δ_kl V_{(α1α2)(α3α4)} + δ_ik δ_jl V_{(α1α3)(α2α4)} + δ_il δ_jk V_{(α1α4)(α2α3)}]``.

Order 0 is the textbook GP: with ``G̃ = (G_AA + σ_ε² I)⁻¹``, ``ỹ_i = G̃ y_i`` and ``M = G_BA G̃``,
``E[z_{i;B}|Y] = M y_i`` and ``Cov = δ_ij (G_BB − M G_AB)``.

Order 1 is the first-order Edgeworth expansion of the joint law of ``(z_B, y_A)`` conditioned on ``y_A``
(derivation in docs/inference.md; THEORY.md §6): with ``V⊥`` = V with each test slot projected,
``e_b → e_b − Σ_δ M_{bδ} e_δ``, ``S = Σ_j ỹ_j ỹ_jᵀ``,

    δE[z_{i;b}] = (1/2n) Σ ỹ_{i;α1} { V⊥_{(bα1)(α2α3)} [S − m G̃]_{α2α3} − 2 V⊥_{(bα2)(α1α3)} G̃_{α2α3} }
    δCov_{ib1,jb2} = (1/2n) Σ { δ_ij V⊥⊥_{(b1b2)(α1α2)} [S − m G̃]_{α1α2}
                                + 2 V⊥⊥_{(b1α1)(b2α2)} [ỹ_{i;α1} ỹ_{j;α2} − δ_ij G̃_{α1α2}] }
    δ log p(Y) = (1/8n) [ V:(S⊗S) − 2m V:(G̃⊗S) − 4 V_{(12)(34)} G̃_{13} S_{24} + m² V:(G̃⊗G̃)
                          + 2m V_{(12)(34)} G̃_{13} G̃_{24} ]

(``V:(X⊗Y) = Σ V_{(α1α2)(α3α4)} X_{α1α2} Y_{α3α4}``, all indices in ``A``). Noise enters only through
``G_AA + σ_ε² I``: it adds no fourth cumulant. Arrays only (numpy); the network layer is
:mod:`nnft.inference.posterior`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nnft.numeric.spd import SPDFactor, factor_spd

__all__ = ["GPTerms", "order0", "order1_corrections"]


@dataclass(frozen=True)
class GPTerms:
    """The order-0 posterior and the pieces the order-1 terms reuse (all float64 arrays)."""

    mean: np.ndarray  # (P_B, m)
    cov: np.ndarray  # (m, P_B, m, P_B)
    log_ml: float
    factor: SPDFactor  # of G_AA + σ_ε² I
    ytilde: np.ndarray  # (P_A, m) = G̃ y
    M: np.ndarray  # (P_B, P_A) = G_BA G̃


def order0(G_AA: np.ndarray, G_BA: np.ndarray, G_BB: np.ndarray, Y: np.ndarray, noise: float, *,
           hint: str = "") -> GPTerms:
    """The GP posterior ``E = G_BA G̃ Y``, ``Cov = δ_ij (G_BB − G_BA G̃ G_AB)`` and ``log N(Y; 0, G_AA + σ²)``.

    ``log p(Y) = Σ_i [−½ y_iᵀ G̃ y_i] − (m/2) log det(G_AA + σ² I) − (m P_A/2) log 2π`` (Rasmussen & Williams
    eq. 2.30, summed over the m independent outputs).
    """
    P_A, m = Y.shape
    P_B = G_BB.shape[0]
    fac = factor_spd(G_AA + noise * np.eye(P_A), "the training kernel G_AA + σ_ε² I", hint=hint)
    yt = fac.solve(Y)
    M = fac.solve(G_BA.T).T
    mean = M @ Y
    c = G_BB - M @ G_BA.T
    c = 0.5 * (c + c.T)
    cov = np.zeros((m, P_B, m, P_B))
    for i in range(m):
        cov[i, :, i, :] = c
    log_ml = float(-0.5 * np.sum(Y * yt) - 0.5 * m * fac.logdet() - 0.5 * m * P_A * math.log(2 * math.pi))
    return GPTerms(mean=mean, cov=cov, log_ml=log_ml, factor=fac, ytilde=yt, M=M)


def order1_corrections(terms: GPTerms, V: np.ndarray, n: float, P_A: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The 1/n terms ``(δmean (P_B, m), δcov (m, P_B, m, P_B), δlog p(Y))`` of the posterior (module formulas).

    ``V`` is the four-point vertex on ``A ∪ B`` with the training points first, shape (P, P, P, P),
    ``P = P_A + P_B``; ``n = n_{L−1}``.
    """
    yt, M = terms.ytilde, terms.M
    m = yt.shape[1]
    P_B = M.shape[0]
    Gt = terms.factor.inverse()
    S = yt @ yt.T
    R = np.hstack([-M, np.eye(P_B)])  # (P_B, P): e_b − Σ_δ M_bδ e_δ on A ∪ B
    a = slice(0, P_A)
    V_AAAA = V[a, a, a, a]
    Vp = np.einsum("bx,xijk->bijk", R, V[:, a, a, a], optimize=True)  # V⊥_{(b α1)(α2 α3)}
    T = S - m * Gt
    u = np.einsum("bijk,jk->bi", Vp, T, optimize=True)  # Σ V⊥_{(bα1)(α2α3)} T_{α2α3}
    w = np.einsum("bjik,jk->bi", Vp, Gt, optimize=True)  # Σ V⊥_{(bα2)(α1α3)} G̃_{α2α3}
    dmean = (u - 2.0 * w) @ yt / (2.0 * n)

    Vpp_same = np.einsum("bx,cy,xyij->bcij", R, R, V[:, :, a, a], optimize=True)  # V⊥⊥_{(b1b2)(α1α2)}
    Vpp_cross = np.einsum("bx,cy,xiyj->bicj", R, R, V[:, a, :, a], optimize=True)  # V⊥⊥_{(b1α1)(b2α2)}
    base = np.einsum("bcij,ij->bc", Vpp_same, T, optimize=True) - 2.0 * np.einsum(
        "bicj,ij->bc", Vpp_cross, Gt, optimize=True)
    cross = 2.0 * np.einsum("bicj,ik,jl->kblc", Vpp_cross, yt, yt, optimize=True)  # (m, P_B, m, P_B)
    dcov = cross
    for i in range(m):
        dcov[i, :, i, :] += base
    dcov = dcov / (2.0 * n)
    dcov = 0.5 * (dcov + dcov.transpose(2, 3, 0, 1))

    VSS = np.einsum("ijkl,ij,kl->", V_AAAA, S, S, optimize=True)
    VGS = np.einsum("ijkl,ij,kl->", V_AAAA, Gt, S, optimize=True)
    VxGS = np.einsum("ijkl,ik,jl->", V_AAAA, Gt, S, optimize=True)
    VGG = np.einsum("ijkl,ij,kl->", V_AAAA, Gt, Gt, optimize=True)
    VxGG = np.einsum("ijkl,ik,jl->", V_AAAA, Gt, Gt, optimize=True)
    dlog = (VSS - 2 * m * VGS - 4 * VxGS + m * m * VGG + 2 * m * VxGG) / (8.0 * n)
    return dmean, dcov, float(dlog)
