"""The infinite-width ensemble of networks trained by MSE gradient flow, in closed form through the eigenbasis of Θ_AA.

Loss ``ℒ = ½ Σ_{i, α∈A} (z_{i;α} − y_{i;α})²`` and ``dθ/dt = −η ∂ℒ/∂θ``: at infinite width the NTK is frozen,
so ``dz_A/dt = −η Θ_AA (z_A − y)`` and ``dz_B/dt = −η Θ_BA (z_A − y)``, with ``z(0)`` the NNGP prior
(covariance ``δ_ij K``). Writing ``Θ_AA (+ ρ I) = U diag(λ) Uᵀ`` and
``T(t) = Θ_BA U diag((1 − e^{−ηλt})/λ) Uᵀ`` (= ``Θ_BA Θ_AA⁻¹ (I − e^{−ηΘ_AA t})``; ``ηt`` in the limit λ → 0):

    E[z_B(t)] = T(t) y
    Cov[z_{i;B}(t), z_{j;B}(t)] = δ_ij [K_BB + T K_AA Tᵀ − T K_AB − K_BA Tᵀ]

(Jacot et al. 2018; Lee et al. 2019, eqs. 14–16). At ``t = ∞``, ``T = Θ_BA Θ_AA⁻¹``. ``ρ`` is an optional
ridge ``diag_reg`` added to the training kernel ``Θ_AA`` of the flow only: ``dz_A/dt = −η (Θ_AA + ρ)(z_A − y)``,
whose start ``z_A(0)`` keeps the covariance ``K_AA`` given here. Passing the NNGP kernel as ``Θ`` and
``K_AA + ρ I`` as ``K_AA`` gives the NNGP flow, whose ``t = ∞`` is the GP posterior with noise ``ρ``.
Both are the conventions of neural-tangents' ``gradient_descent_mse_ensemble`` with
``diag_reg_absolute_scale=True`` (``get="ntk"`` and ``get="nngp"``; checked on stored references in
``tests/test_inference_vs_neural_tangents.py``); its time is ``t_nt = t · P_A m`` at the same learning
rate, because its loss is the mean, not the half sum, of the ``P_A m`` squares.
"""

from __future__ import annotations

import numpy as np

from nnft.errors import InputError

__all__ = ["ensemble"]


def _flow_matrix(lam: np.ndarray, U: np.ndarray, eta: float, t: float) -> np.ndarray:
    """``U diag((1 − e^{−ηλt})/λ) Uᵀ`` with the λ → 0 limit ηt; ``t = inf`` gives the inverse."""
    if np.isinf(t):
        d = 1.0 / lam
    else:
        x = eta * lam * t
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(np.abs(lam) > 0, -np.expm1(-x) / np.where(lam == 0, 1.0, lam), eta * t)
    return (U * d) @ U.T


def ensemble(Theta_AA, Theta_BA, K_AA, K_BA, K_BB, Y, *, eta: float, times, diag_reg: float = 0.0):
    """Mean (T, P_B, m) and per-output covariance (T, P_B, P_B) of the trained ensemble at each time in ``times``.

    ``diag_reg`` enters ``Θ_AA`` only; ``K_AA`` is the covariance of the training outputs at ``t = 0``.

    Raises :class:`InputError` when ``t = inf`` is asked of a numerically singular ``Θ_AA`` (the flow does not
    converge along its null directions).
    """
    P_A = Theta_AA.shape[0]
    Th = 0.5 * (Theta_AA + Theta_AA.T) + diag_reg * np.eye(P_A)
    lam, U = np.linalg.eigh(Th)
    if lam[0] < -1e-10 * max(lam[-1], 1e-300):
        raise InputError(f"the training NTK Θ_AA is not positive semi-definite (smallest eigenvalue {lam[0]:.3g}): "
                         "check the network and the inputs")
    lam = np.maximum(lam, 0.0)
    KAA = 0.5 * (K_AA + K_AA.T)
    means, covs = [], []
    for t in times:
        if np.isinf(t) and lam[0] <= 1e-12 * lam[-1]:
            raise InputError(f"Θ_AA is numerically singular (eigenvalues {lam[0]:.3g} … {lam[-1]:.3g}): gradient flow "
                             "does not converge along its null directions at t = ∞. Use a finite t, give "
                             "diag_reg > 0, or remove duplicate training inputs")
        F = _flow_matrix(lam, U, eta, float(t))
        T = Theta_BA @ F
        means.append(T @ Y)
        TK = T @ K_BA.T
        c = K_BB + T @ KAA @ T.T - TK - TK.T
        covs.append(0.5 * (c + c.T))
    return np.stack(means), np.stack(covs)
