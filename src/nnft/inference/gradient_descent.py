"""What an infinitely wide network trained by MSE gradient flow predicts: the NTK ensemble's mean and covariance.

``nnft.gradient_descent(net, x_train, y_train, x_test, t=…, learning_rate=η)`` evaluates the closed form of
:mod:`nnft.numeric.gradient_flow` (Lee et al. 2019) with the output-layer NNGP K and NTK Θ of ``net``:
the ensemble over initialisations of networks trained on ``ℒ = ½ Σ (z − y)²`` for time ``t`` (``t = inf``:
to convergence). Both kernels come from one pass of the kernel recursion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnft.errors import InputError
from nnft.inference.validate import Problem, problem
from nnft.numeric.gradient_flow import ensemble

__all__ = ["GradientDescentPrediction", "gradient_descent"]

_LATEX = (r"\mathbb{E}[z_{i;B}(t)] = \Theta_{BA}\Theta_{AA}^{-1}\big(I - e^{-\eta\Theta_{AA}t}\big)\,y_i,\qquad "
          r"\mathrm{Cov}[z_{i;B}(t), z_{j;B}(t)] = \delta_{ij}\big[K_{BB} + T K_{AA} T^{\top} - T K_{AB} - K_{BA}"
          r"T^{\top}\big],\quad T = \Theta_{BA}\Theta_{AA}^{-1}\big(I - e^{-\eta\Theta_{AA}t}\big)")


@dataclass(frozen=True)
class GradientDescentPrediction:
    """Mean (P_B, m) and covariance (m, P_B, m, P_B) of the trained infinite-width ensemble at time ``t``.

    With an array of times every field gains a leading time axis: mean (T, P_B, m), cov (T, m, P_B, m, P_B).
    """

    mean: np.ndarray
    cov: np.ndarray
    t: float | np.ndarray
    learning_rate: float
    diag_reg: float
    kernel: str
    problem: Problem = field(repr=False)

    @property
    def std(self) -> np.ndarray:
        """Standard deviation of each output over the ensemble, (P_B, m) (or (T, P_B, m))."""
        m = self.problem.m
        var = np.stack([np.diagonal(self.cov[..., i, :, i, :], axis1=-2, axis2=-1) for i in range(m)], axis=-1)
        return np.sqrt(np.maximum(var, 0.0))

    def latex(self) -> str:
        """The closed form this prediction evaluated, as LaTeX."""
        return _LATEX

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"


def _times(t) -> tuple[np.ndarray, bool]:
    arr = np.asarray(t, dtype=np.float64)
    scalar = arr.ndim == 0
    arr = np.atleast_1d(arr)
    if arr.ndim != 1 or np.any(np.isnan(arr)) or np.any(arr < 0):
        raise InputError(f"t must be a time ≥ 0 (or np.inf, or a 1-D array of them), got {t!r}")
    return arr, scalar


def gradient_descent(net, x_train, y_train, x_test, *, t=np.inf, learning_rate: float = 1.0, diag_reg: float = 0.0,
                     kernel: str = "ntk") -> GradientDescentPrediction:
    """The infinite-width ensemble trained by gradient flow on ``½ Σ (z − y)²`` for time ``t`` at rate η.

    ``kernel="ntk"`` (default) is ordinary training of all layers; ``kernel="nngp"`` uses K in place of Θ
    (the flow whose t → ∞ limit is the noise-free NNGP posterior). ``diag_reg`` adds ρ I to the training
    kernel of the flow (ridge); with ``kernel="nngp"`` it also enters the starting covariance of the
    training outputs, so that t → ∞ is the NNGP posterior with noise ρ — both as neural-tangents'
    ``gradient_descent_mse_ensemble(…, diag_reg=ρ, diag_reg_absolute_scale=True)``, whose time is
    ``t_nt = t · P_A m`` (its loss is the mean of the squares). ``t`` a number, ``np.inf`` or a 1-D array.
    """
    if kernel not in ("ntk", "nngp"):
        raise InputError(f"kernel must be 'ntk' or 'nngp', got {kernel!r}")
    eta = float(learning_rate)
    if not np.isfinite(eta) or eta <= 0:
        raise InputError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
    diag_reg = float(diag_reg)
    if not np.isfinite(diag_reg) or diag_reg < 0:
        raise InputError(f"diag_reg must be ≥ 0, got {diag_reg}")
    times, scalar = _times(t)
    pb = problem(net, x_train, y_train, x_test, 0.0, allow_singular=True)
    ks = net.kernels(pb.x_all, ntk=kernel == "ntk", layers="last")
    K = np.asarray(ks.K)[-1]
    Th = np.asarray(ks.Theta)[-1] if kernel == "ntk" else K
    a, b = slice(0, pb.P_A), slice(pb.P_A, None)
    K_AA = K[a, a] + diag_reg * np.eye(pb.P_A) if kernel == "nngp" else K[a, a]
    means, covs = ensemble(Th[a, a], Th[b, a], K_AA, K[b, a], K[b, b], pb.Y, eta=eta, times=times,
                           diag_reg=diag_reg)
    m, P_B = pb.m, pb.P_B
    cov = np.zeros((len(times), m, P_B, m, P_B))
    for i in range(m):
        cov[:, i, :, i, :] = covs
    if scalar:
        means, cov = means[0], cov[0]
    return GradientDescentPrediction(mean=means, cov=cov, t=float(times[0]) if scalar else times,
                                     learning_rate=eta, diag_reg=diag_reg, kernel=kernel, problem=pb)
