"""Forward passes of a batch of sampled networks, with both samplers and the empirical NTK.

A batch is a (B, draws_per_network) block of standard normals. The ``"explicit"`` sampler reads them
as every weight and bias and multiplies through the layers (O(n²P) per layer); the ``"conditional"``
sampler reads them as the i.i.d. Gaussian neurons of each layer given the layer below, coloured by a
square root of their P × P covariance (O(nP² + P³) per layer). With the explicit sampler the
output-layer NTK Θ̂ follows from the stored activations by the layer-wise formula.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from nnft.errors import DivergenceError
from nnft.numeric.mc_plan import _Plan


def _overflow_error(what: str, layer: int, activation) -> DivergenceError:
    """The error for sampled values that left float64 (inf/NaN) at ``layer``, with what to change."""
    name = getattr(activation, "name", str(activation))
    return DivergenceError(
        f"Monte Carlo overflow: the sampled {what} at layer {layer} are not finite in float64 (σ = {name}); "
        "the finite-width network blows up for these parameters: reduce C_W, C_b or the input scale, use fewer "
        "layers, or choose a bounded activation"
    )


def _check_finite(arr: np.ndarray, what: str, layer: int, activation) -> None:
    """Raise :class:`DivergenceError` if ``arr`` holds an inf or NaN (sampled values overflowed).

    One summation pass (no boolean temporary): inf/NaN make the sum non-finite; only then is the exact
    elementwise test run, so a sum that merely overflowed from finite entries does not raise.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(arr)
    if not np.isfinite(total) and not np.all(np.isfinite(arr)):
        raise _overflow_error(what, layer, activation)


def _eps_layers(plan: _Plan, eps: np.ndarray):
    """Split a (B, draws_per_network) block of normals into per-layer views (W, b) or ε."""
    B = eps.shape[0]
    P = plan.x.shape[0]
    off = 0
    out = []
    for ell in range(1, plan.depth + 1):
        n_out, n_in = plan.n[ell], plan.n[ell - 1]
        if plan.sampler == "explicit":
            W = eps[:, off : off + n_out * n_in].reshape(B, n_out, n_in)
            off += n_out * n_in
            b = eps[:, off : off + n_out]
            off += n_out
            out.append((W, b))
        else:
            out.append(eps[:, off : off + n_out * P].reshape(B, n_out, P))
            off += n_out * P
    return out


def _psd_sqrt(S: np.ndarray) -> np.ndarray:
    """A with AᵀA = S for a stack of symmetric PSD matrices (eigh; tiny negative eigenvalues clipped)."""
    if S.shape[-1] == 1:
        return np.sqrt(np.maximum(S, 0.0))
    try:
        w, U = np.linalg.eigh(S)
    except np.linalg.LinAlgError as exc:  # only for non-finite or astronomically scaled covariances
        raise DivergenceError(
            "Monte Carlo overflow: the conditional covariance of the next layer cannot be factorised "
            f"({exc}); its entries reach {float(np.max(np.abs(S))):.3g}: reduce C_W, C_b or the input scale, "
            "or choose a bounded activation"
        ) from exc
    return np.sqrt(np.maximum(w, 0.0))[..., :, None] * np.swapaxes(U, -1, -2)


def _forward(plan: _Plan, eps: np.ndarray, sigma: Callable, dsigma: Callable | None = None):
    """Run a batch of networks: z^{(ℓ)} of shape (B, n_ℓ, P) for ℓ = 1..depth (+ NTK when requested)."""
    x = plan.x  # (P, n0)
    P = x.shape[0]
    B = eps.shape[0]
    draws = _eps_layers(plan, eps)
    zs: dict[int, np.ndarray] = {}
    keep_ntk = "ntk" in plan.stats
    phis, dphis, Ws = [], [], []
    phi = None
    for ell in range(1, plan.depth + 1):
        i = ell - 1
        n_in = plan.n[ell - 1]
        if plan.sampler == "explicit":
            W, b = draws[i]
            if ell == 1:
                pre = np.matmul(W, x.T)  # (B, n1, P)
            else:
                pre = np.matmul(W, phi)
            z = math.sqrt(plan.C_W[i] / n_in) * pre + math.sqrt(plan.C_b[i]) * b[:, :, None]
            if keep_ntk:
                Ws.append(W)
        else:
            if ell == 1:
                S = plan.C_b[0] + plan.C_W[0] * (x @ x.T) / n_in
                A = np.broadcast_to(_psd_sqrt(S[None]), (B, P, P))
            else:
                S = plan.C_b[i] + (plan.C_W[i] / n_in) * np.matmul(np.swapaxes(phi, 1, 2), phi)
                _check_finite(S, "conditional covariances C_b + C_W σ(z)·σ(z)/n", ell, plan.activation)
                A = _psd_sqrt(S)
            z = np.matmul(draws[i], A)
        _check_finite(z, "preactivations z", ell, plan.activation)
        zs[ell] = z
        if ell < plan.depth or keep_ntk:
            if keep_ntk:
                phis.append(np.broadcast_to(x.T, (B, n_in, P)) if ell == 1 else phi)
            phi = sigma(z)
            _check_finite(phi, "activations σ(z)", ell, plan.activation)
            if keep_ntk and ell < plan.depth:
                dphis.append(dsigma(z))
                _check_finite(dphis[-1], "derivatives σ′(z)", ell, plan.activation)
    ntk = _ntk_from_forward(plan, phis, dphis, Ws) if keep_ntk else None
    if ntk is not None:
        _check_finite(ntk, "empirical NTK Θ̂", plan.depth, plan.activation)
    return zs, ntk


def _ntk_from_forward(plan: _Plan, phis, dphis, Ws) -> np.ndarray:
    """Θ̂_{ij;αβ} of the output layer, (B, m, m, P, P), by the layer-wise formula (NTK parameterisation).

    Θ̂_{ij;αβ} = Σ_ℓ Σ_k J^{(ℓ)}_{ik;α} J^{(ℓ)}_{jk;β} [λ_b^{(ℓ)} + (λ_W^{(ℓ)}/n_{ℓ−1}) φ^{(ℓ−1)}_α·φ^{(ℓ−1)}_β],
    with J^{(ℓ)}_α = ∂z^{(L)}_α/∂z^{(ℓ)}_α = J^{(ℓ+1)}_α W̃^{(ℓ+1)} diag σ'(z^{(ℓ)}_α), W̃ = √(C_W/n) × the
    standard normals, J^{(L)} = 1 (PDLT §7–8; CONVENTIONS.md, Neural tangent kernel).
    """
    L = plan.depth
    B = phis[0].shape[0]
    m = plan.n[L]
    P = plan.x.shape[0]
    J = np.broadcast_to(np.eye(m), (B, P, m, m))  # (B, P, m, n_L)
    theta = np.zeros((B, m, m, P, P))
    for ell in range(L, 0, -1):
        i = ell - 1
        n_in = plan.n[ell - 1]
        nl = J.shape[-1]
        Jf = J.reshape(B, P * m, nl)
        JJ = np.matmul(Jf, np.swapaxes(Jf, 1, 2)).reshape(B, P, m, P, m)  # [b, α, i, β, j]
        phi = phis[i]
        kern = plan.lambda_b[i] + (plan.lambda_W[i] / n_in) * np.matmul(np.swapaxes(phi, 1, 2), phi)  # (B,P,P)
        theta += np.transpose(JJ, (0, 2, 4, 1, 3)) * kern[:, None, None, :, :]
        if ell > 1:
            Wt = math.sqrt(plan.C_W[i] / n_in) * Ws[i]  # (B, n_ℓ, n_{ℓ-1})
            JW = np.matmul(J, Wt[:, None, :, :])  # (B, P, m, n_{ℓ-1})
            J = JW * np.swapaxes(dphis[i - 1], 1, 2)[:, :, None, :]
    return theta
