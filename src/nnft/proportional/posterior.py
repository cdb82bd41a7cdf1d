"""The Bayesian posterior in the proportional limit P = αn: GP regression with the renormalised kernel.

``nnft.proportional.renormalised_posterior(net, x_train, y_train, x_test, noise=T)`` solves the saddle point of
the action of :mod:`nnft.proportional.action` (one scalar order parameter ``Q_ℓ`` per hidden layer, ``α_ℓ =
P/n_ℓ`` read from the network and the training set) and predicts with the renormalised kernel

    K_R = C_b^{(L)} + q (K^{(L)} − C_b^{(L)}),   q = Π_ℓ Q_ℓ,

i.e. the weight part of the output-layer NNGP kernel is scaled by q (Li & Sompolinsky, PRX 11, 031059
(2021), "back-propagating kernel renormalisation"; Pacelli et al., Nat. Mach. Intell. 2023; THEORY §3,
§4.1, §4.4). Mean ``K_R,BA (K_R,AA + T)⁻¹ y`` and covariance ``K_R,BB − K_R,BA (K_R,AA + T)⁻¹ K_R,AB``.

What it is exact for: bias-free deep linear networks, where the action is −2 ln of the exact posterior of
the Gamma scale mixture (THEORY §2) up to O(1) terms, so the prediction is off by O(1/n) at fixed α. For
one hidden layer and odd σ it is Pacelli et al.'s Gaussian-equivalence theory (an approximation). For
deep nonlinear networks it is the "vanilla" variant of deepbays (``K_R = (Π_ℓ Q_ℓ) K^{(L)}``): chosen
because it is the only published deep variant whose linear limit is the exact saddle, it is defined for
every σ, and it needs only the output-layer kernel (the "nested" and "full" variants renormalise inside
each nonlinearity and disagree with each other already at L = 3; THEORY §4.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import cholesky, solve_triangular

from nnft.errors import ConvergenceError, InputError
from nnft.inference.validate import Problem, problem
from nnft.numeric.gp_posterior import order0
from nnft.proportional.action import Action, mode_functions, scalar_action
from nnft.proportional.saddle import Saddle, solve

__all__ = ["GeneralisationError", "OrderParameter", "RenormalisedPosterior", "renormalised_posterior"]


@dataclass(frozen=True)
class OrderParameter:
    """One order parameter at the saddle: its value, what it means, and the layer's α = P/n_ℓ."""

    name: str
    value: float
    meaning: str
    alpha: float | None = None

    def __float__(self) -> float:
        return float(self.value)


@dataclass(frozen=True)
class GeneralisationError:
    """Test error of the predictor, ``total = bias2 + variance`` (means over test points and outputs, no σ_ε²)."""

    total: float
    bias2: float
    variance: float


@dataclass(frozen=True)
class RenormalisedPosterior:
    """Posterior mean (P_B, m), cov (m, P_B, m, P_B), std (P_B, m) of the renormalised theory, with its saddle."""

    mean: np.ndarray
    cov: np.ndarray
    order_parameters: Mapping[str, OrderParameter]
    action: Action
    saddle: Saddle
    K_R: np.ndarray = field(repr=False)  # the renormalised kernel on A ∪ B (training points first)
    problem: Problem = field(repr=False)

    @property
    def std(self) -> np.ndarray:
        """Posterior standard deviation of each latent output, (P_B, m)."""
        m = self.problem.m
        return np.sqrt(np.maximum(np.stack([np.diag(self.cov[i, :, i, :]) for i in range(m)], axis=1), 0.0))

    @property
    def q(self) -> float:
        """The kernel multiplier ``q = Π_ℓ Q_ℓ``."""
        return float(self.saddle.q)

    def generalisation_error(self, y_test) -> GeneralisationError:
        """``ε_g = ⟨(mean − y)²⟩ + ⟨var⟩`` over test points and outputs (THEORY §3; deepbays' averageLoss)."""
        y = np.asarray(y_test, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        if y.shape != self.mean.shape:
            raise InputError(f"y_test has shape {np.shape(y_test)}, the predictions {self.mean.shape}: give one "
                             "target per test input and output")
        if not np.all(np.isfinite(y)):
            raise InputError("y_test contains NaN or inf")
        bias2 = float(np.mean((self.mean - y) ** 2))
        var = float(np.mean(self.std ** 2))
        return GeneralisationError(total=bias2 + var, bias2=bias2, variance=var)

    def latex(self) -> str:
        """The action and the predictor, as LaTeX."""
        return (self.action.latex() + r",\qquad K_R = C_b^{(L)} + \Big(\prod_\ell Q_\ell\Big)\big(K^{(L)} - "
                r"C_b^{(L)}\big),\quad \mathbb{E}[z_B\mid y] = K_{R,BA}(K_{R,AA} + \sigma_\varepsilon^2)^{-1} y")

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"

    def __repr__(self) -> str:
        ops = ", ".join(f"{k}={v.value:.6g}" for k, v in self.order_parameters.items())
        return (f"RenormalisedPosterior({ops}; P_A={self.problem.P_A}, P_B={self.problem.P_B}, m={self.problem.m}, "
                f"noise={self.problem.noise:g}, saddle by {self.saddle.method}, residual {self.saddle.residual:.1e})")


def _pencil(K_w: np.ndarray, C_b: float, noise: float, Y: np.ndarray):
    """Generalised eigenmodes (κ, τ, ỹ²) of ``B + q K_w`` with ``B = σ_ε² I + C_b 11ᵀ`` on the training set."""
    P_A = K_w.shape[0]
    B = noise * np.eye(P_A) + C_b * np.ones((P_A, P_A))
    if noise > 0:
        L = cholesky(B, lower=True)
        Kt = solve_triangular(L, solve_triangular(L, K_w, lower=True).T, lower=True)
        kap, U = np.linalg.eigh(0.5 * (Kt + Kt.T))
        kap = np.maximum(kap, 0.0)
        tau = np.ones(P_A)
    else:
        w = np.linalg.eigvalsh(K_w)
        if w[0] <= 1e-10 * max(w[-1], 1e-300):
            raise InputError(f"noise = 0 needs the weight part of the training kernel to be invertible, but its "
                             f"eigenvalues run from {w[0]:.3g} to {w[-1]:.3g} (P = {P_A} points beyond its rank: "
                             "for a linear network P ≤ n_0, or duplicate inputs). Give noise > 0")
        L = cholesky(0.5 * (K_w + K_w.T), lower=True)
        Bt = solve_triangular(L, solve_triangular(L, B, lower=True).T, lower=True)
        tau, U = np.linalg.eigh(0.5 * (Bt + Bt.T))
        tau = np.maximum(tau, 0.0)
        kap = np.ones(P_A)
    yt = U.T @ solve_triangular(L, Y, lower=True)
    return kap, tau, np.sum(yt ** 2, axis=1)


def renormalised_posterior(net, x_train, y_train, x_test, *, noise: float) -> RenormalisedPosterior:
    """The posterior of ``net`` given ``(x_train, y_train)`` (noise variance ``noise`` = T) at its saddle point.

    One output, any depth ≥ 2, odd or linear σ (non-odd σ needs the mean-vector order parameter of
    Pacelli et al. §4.2, not built yet; several outputs need the m × m order parameter, not built yet).
    """
    pb = problem(net, x_train, y_train, x_test, noise)
    if net.depth < 2:
        raise InputError("a depth-1 network has no hidden layer to renormalise: its posterior is exactly the GP "
                         "(nnft.posterior)")
    if pb.m != 1:
        raise InputError(f"{pb.m} outputs: the m × m order parameter (kernel shape renormalisation) is not built "
                         "yet; fit one output at a time for the isotropic approximation")
    act = net.activation
    if getattr(act, "parity", 0) != -1:
        raise InputError(f"σ = {act.name} is not odd: non-odd activations need the mean-vector order parameter "
                         "(Pacelli et al. 2023 §4.2), which is not built yet; use an odd σ (tanh, erf, linear)")
    ks = net.kernels(pb.x_all, ntk=False, layers="last")
    K = np.asarray(ks.K)[-1]
    C_b = float(net.C_b[-1])
    K_w = K - C_b
    a = slice(0, pb.P_A)
    kap, tau, y2 = _pencil(K_w[a, a], C_b, pb.noise, pb.Y)
    f, q_df, _ = mode_functions()
    widths = np.asarray(net.widths, dtype=np.float64)
    sad = solve(widths, lambda qq: float(np.sum(f(qq, kap, tau, y2, 1))),
                lambda qq: float(np.sum(q_df(qq, kap, tau, y2, 1))))
    if not sad.converged:
        raise ConvergenceError(f"the saddle point did not converge (residual {sad.residual:.2e} after "
                               f"{sad.method}): report this with the inputs")
    K_R = C_b + sad.q * K_w
    b = slice(pb.P_A, None)
    gp = order0(K_R[a, a], K_R[b, a], K_R[b, b], pb.Y, pb.noise,
                hint="the renormalised kernel is singular on the training set: give noise > 0")
    ops = {}
    for ell, (Ql, nl) in enumerate(zip(sad.Q, widths, strict=True), start=1):
        ops[f"Q_{ell}"] = OrderParameter(
            f"Q_{ell}", float(Ql), f"renormalisation of hidden layer {ell} (width {int(nl)}): "
            "n_ℓ(Q_ℓ − 1) = c is the same for every layer", alpha=pb.P_A / nl)
    ops["q"] = OrderParameter("q", sad.q, "kernel multiplier Π_ℓ Q_ℓ: K_R = C_b + q (K − C_b)")
    return RenormalisedPosterior(mean=gp.mean, cov=gp.cov, order_parameters=ops, action=scalar_action(len(widths)),
                                 saddle=sad, K_R=K_R, problem=pb)
