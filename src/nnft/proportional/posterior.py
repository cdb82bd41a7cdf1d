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

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
from scipy.linalg import cholesky, solve_triangular

from nnft.errors import ConvergenceError, InputError
from nnft.inference.validate import Problem, problem
from nnft.numeric.gp_posterior import order0
from nnft.proportional.action import (
    PAIR_MODES,
    Action,
    MatrixAction,
    PairAction,
    Qbar,
    Qc,
    _kap,
    _mt,
    _tau,
    _yt,
    matrix_action,
    matrix_mode_action,
    mode_functions,
    n1,
    pair_action,
    scalar_action,
)
from nnft.proportional.mixture import ScaleMixture, scale_mixture
from nnft.proportional.modes import compile_mode_expressions
from nnft.proportional.saddle import MatrixSaddle, PairSaddle, Saddle, solve, solve_matrix, solve_pair

__all__ = ["GeneralisationError", "OrderParameter", "RenormalisedPosterior", "renormalised_posterior"]


@dataclass(frozen=True)
class OrderParameter:
    """One order parameter at the saddle: its value, what it means, and the layer's α = P/n_ℓ."""

    name: str
    value: float | np.ndarray  # an m × m array for the kernel-shape order parameter of several outputs
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
    action: Action | PairAction | MatrixAction
    saddle: Saddle | PairSaddle | MatrixSaddle
    #: the renormalised kernel on A ∪ B (training points first); (m, P, m, P) for several outputs
    K_R: np.ndarray = field(repr=False)
    problem: Problem = field(repr=False)
    kernel_latex: str = field(repr=False, default="")
    _C_b: float = field(repr=False, default=0.0)
    _widths: tuple = field(repr=False, default=())
    _K_w: np.ndarray | None = field(repr=False, default=None)  # the weight part of the kernel on A ∪ B
    _pencil: _Pencil | None = field(repr=False, default=None)

    @property
    def std(self) -> np.ndarray:
        """Posterior standard deviation of each latent output, (P_B, m)."""
        m = self.problem.m
        return np.sqrt(np.maximum(np.stack([np.diag(self.cov[i, :, i, :]) for i in range(m)], axis=1), 0.0))

    @property
    def q(self) -> float:
        """The multiplier of the centred kernel: ``q = Π_ℓ Q_ℓ`` (odd σ) or ``Q̄`` (non-odd σ)."""
        if isinstance(self.saddle, MatrixSaddle):
            raise AttributeError("several outputs have an m × m order parameter: read order_parameters['Q']")
        return float(self.saddle.q if isinstance(self.saddle, Saddle) else self.saddle.Qbar)

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

    def predictive(self, b: int = 0) -> ScaleMixture:
        """The predictive law of test point ``b`` with the scale Q integrated, not fixed at the saddle.

        One hidden layer, odd σ, one output: a scale mixture of Gaussians over the posterior of Q
        (:mod:`nnft.proportional.mixture`; exact for bias-free linear networks). At ``noise = 0`` and
        ``C_b = 0`` its closed form, a symmetric generalised hyperbolic law, is in ``.closed_form``.
        """
        pb = self.problem
        if not isinstance(self.saddle, Saddle) or len(self.saddle.Q) != 1:
            raise InputError("the scale-mixture predictive is built for one hidden layer, odd σ and one output")
        if not (isinstance(b, int | np.integer) and 0 <= b < pb.P_B):
            raise InputError(f"b must be a test-point index in 0 … {pb.P_B - 1}, got {b!r}")
        C_b, K_w = float(self._C_b), self._K_w
        a, j = slice(0, pb.P_A), pb.P_A + int(b)
        n = float(self._widths[0])
        return scale_mixture(self._pencil, pb.Y[:, 0], K_w[j, a], float(K_w[j, j]), C_b, n, self.saddle.q,
                             closed_form=pb.noise == 0 and C_b == 0)

    def latex(self) -> str:
        """The action and the predictor, as LaTeX."""
        return (self.action.latex() + r",\qquad " + self.kernel_latex
                + r",\quad \mathbb{E}[z_B\mid y] = K_{R,BA}(K_{R,AA} + \sigma_\varepsilon^2)^{-1} y")

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"

    def __repr__(self) -> str:
        ops = ", ".join(f"{k}={np.array2string(np.asarray(v.value), precision=6)}"
                        for k, v in self.order_parameters.items())
        return (f"RenormalisedPosterior({ops}; P_A={self.problem.P_A}, P_B={self.problem.P_B}, m={self.problem.m}, "
                f"noise={self.problem.noise:g}, saddle by {self.saddle.method}, residual {self.saddle.residual:.1e})")


@dataclass(frozen=True)
class _Pencil:
    """Joint eigenmodes of ``(B, K_w)`` on the training set, ``B = σ_ε² I + C_b 11ᵀ``: ``B + q K_w`` is diagonal.

    ``B + q K_w = L U diag(τ + q κ) Uᵀ Lᵀ``; ``rotate(v) = Uᵀ L⁻¹ v``; ``logdet0 = log det L Lᵀ``.
    """

    kappa: np.ndarray
    tau: np.ndarray
    L: np.ndarray
    U: np.ndarray
    logdet0: float

    def rotate(self, v: np.ndarray) -> np.ndarray:
        return self.U.T @ solve_triangular(self.L, v, lower=True)


def _pencil(K_w: np.ndarray, C_b: float, noise: float) -> _Pencil:
    """The eigen-pencil of ``B + q K_w``: whiten by B when the noise is positive, else by K_w (which must be PD)."""
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
    return _Pencil(kappa=kap, tau=tau, L=L, U=U, logdet0=float(2 * np.sum(np.log(np.diag(L)))))


@functools.lru_cache(maxsize=32)
def _mean_function(expr: sp.Expr):
    """``K ↦ ⟨σ(z)⟩_{z ~ N(0, K)}`` from the engine's single-variable expectation (closed form or quadrature)."""
    from nnft.codegen.module import compile_function
    from nnft.gaussian import Kaa, expect_single

    return compile_function({"mu": expect_single(expr)}, (Kaa,), name="proportional_mean").mu


def activation_mean(activation, K_diag: np.ndarray) -> np.ndarray:
    """``μ_a = ⟨σ(z_a)⟩`` for ``z_a ~ N(0, K_aa)``, one per input."""
    return np.asarray(_mean_function(activation.expr)(np.asarray(K_diag, dtype=np.float64)), dtype=np.float64)


@functools.lru_cache(maxsize=1)
def _pair_functions():
    act = pair_action()
    return compile_mode_expressions([act.expr, *act.gradient], (Qbar, Qc, n1), PAIR_MODES)


@functools.lru_cache(maxsize=4)
def _matrix_functions(m_out: int):
    expr, entries, per_mode, grad = matrix_mode_action(m_out)
    return compile_mode_expressions([expr, *grad], (*entries, n1), per_mode), per_mode


class PairProblem:
    """The non-odd one-hidden-layer action on a training set, evaluated in the pencil's modes (O(P) per call)."""

    def __init__(self, pencil: _Pencil, y: np.ndarray, mu_w: np.ndarray, n: float) -> None:
        self.pencil, self.n = pencil, float(n)
        self.modes = {_kap: pencil.kappa, _tau: pencil.tau, _yt: pencil.rotate(y), _mt: pencil.rotate(mu_w)}
        self._f = _pair_functions()

    def S(self, Qb: float, Q: float) -> float:
        """The full action, ``n₁[−Q̄Q + ln(1+Q)] + ln det(B + K_R) + yᵀ(B + K_R)⁻¹y``."""
        return float(self._f(Qb, Q, self.n, modes=self.modes)[0]) + self.pencil.logdet0

    def grad(self, Qb: float, Q: float) -> np.ndarray:
        return self._f(Qb, Q, self.n, modes=self.modes)[1:]


class MatrixProblem:
    """The m-output one-hidden-layer action over an m × m Q, evaluated in the pencil's modes (O(m P) per call)."""

    #: the largest m for which the action and gradient are derived by sympy per mode (beyond: the closed form)
    DERIVED_UP_TO = 3

    def __init__(self, pencil: _Pencil, Y: np.ndarray, n: float) -> None:
        self.pencil, self.n, self.m = pencil, float(n), Y.shape[1]
        self.Y0 = pencil.rotate(Y)  # (P_A, m): rotating outputs commutes with the mode rotation
        self._derived = None
        if self.m <= self.DERIVED_UP_TO:
            fn, per_mode = _matrix_functions(self.m)
            ys = list(per_mode.values())[2:]
            modes = {_kap: pencil.kappa, _tau: pencil.tau, **{sym: self.Y0[:, i] for i, sym in enumerate(ys)}}
            self._derived = (fn, modes, np.triu_indices(self.m))

    def _parts(self, Q: np.ndarray):
        q, R = np.linalg.eigh(0.5 * (Q + Q.T))
        a = self.pencil.tau[:, None] + self.pencil.kappa[:, None] * q[None, :]
        return q, R, a, self.Y0 @ R

    def S(self, Q: np.ndarray) -> float:
        """``n₁[tr Q − ln det Q] + ln det(I ⊗ B + Q ⊗ K_w) + vec(Y)ᵀ(…)⁻¹vec(Y)``; +inf outside Q > 0."""
        q, _, a, Yt = self._parts(Q)
        if np.any(q <= 0) or np.any(a <= 0):
            return np.inf
        return float(self.n * np.sum(q - np.log(q)) + np.sum(np.log(a)) + np.sum(Yt ** 2 / a)
                     + self.m * self.pencil.logdet0)

    def derived(self, Q: np.ndarray) -> tuple[float, np.ndarray]:
        """``(S − m log det L Lᵀ, ∂S/∂Q)`` from the sympy derivation per mode (m ≤ DERIVED_UP_TO)."""
        fn, modes, iu = self._derived
        out = fn(*Q[iu], self.n, modes=modes)
        return float(out[0]), out[1:].reshape(self.m, self.m)

    def grad(self, Q: np.ndarray) -> np.ndarray:
        """``∂S/∂Q``: derived by sympy per mode for m ≤ 3, else the closed form :meth:`grad_closed_form`."""
        if self._derived is not None:
            return self.derived(0.5 * (Q + Q.T))[1]
        return self.grad_closed_form(Q)

    def grad_closed_form(self, Q: np.ndarray) -> np.ndarray:
        """``∂S/∂Q = n₁(I − Q⁻¹) + R H Rᵀ`` (see :class:`nnft.proportional.action.MatrixAction`)."""
        q, R, a, Yt = self._parts(Q)
        kap = self.pencil.kappa[:, None]
        W = Yt / a
        H = np.diag(np.sum(kap / a, axis=0)) - (W * kap).T @ W
        G = self.n * (np.eye(self.m) - (R / q) @ R.T) + R @ H @ R.T
        return 0.5 * (G + G.T)


def _scalar_saddle(pencil: _Pencil, Y: np.ndarray, widths: np.ndarray) -> Saddle:
    f, q_df = mode_functions()
    kap, tau = pencil.kappa, pencil.tau
    y2 = np.sum(pencil.rotate(Y) ** 2, axis=1)
    m = Y.shape[1]
    sad = solve(widths, lambda qq: float(np.sum(f(qq, kap, tau, y2, m))),
                lambda qq: float(np.sum(q_df(qq, kap, tau, y2, m))))
    if not sad.converged:
        raise ConvergenceError(f"the saddle point did not converge (residual {sad.residual:.2e} after "
                               f"{sad.method}): report this with the inputs")
    return sad


def _several_outputs(pb: Problem, pencil: _Pencil, iso: Saddle, K_w: np.ndarray, C_b: float,
                     n: float) -> RenormalisedPosterior:
    """m outputs, one hidden layer: solve for Q (m × m) from the isotropic start, predict output by output."""
    mp = MatrixProblem(pencil, pb.Y, n)
    sad = solve_matrix(n, mp.S, mp.grad, iso.q * np.eye(pb.m))
    if not sad.converged:
        raise ConvergenceError(f"the m × m saddle point did not converge (residual {sad.residual:.2e} after "
                               f"{sad.method}): report this with the inputs")
    q, R = np.linalg.eigh(sad.Q)
    a, b = slice(0, pb.P_A), slice(pb.P_A, None)
    YR = pb.Y @ R
    mean_r = np.empty((pb.P_B, pb.m))
    cov_r = np.empty((pb.m, pb.P_B, pb.P_B))
    for i in range(pb.m):
        Ki = C_b + q[i] * K_w
        gp = order0(Ki[a, a], Ki[b, a], Ki[b, b], YR[:, i:i + 1], pb.noise,
                    hint="the renormalised kernel is singular on the training set: give noise > 0")
        mean_r[:, i] = gp.mean[:, 0]
        cov_r[i] = gp.cov[0, :, 0, :]
    mean = mean_r @ R.T
    cov = np.einsum("il,jl,lbc->ibjc", R, R, cov_r)
    K_R = np.einsum("ij,ab->iajb", sad.Q, K_w) + C_b * np.einsum("ij,ab->iajb", np.eye(pb.m),
                                                                 np.ones_like(K_w))
    ops = {"Q": OrderParameter("Q", sad.Q.copy(), "m × m kernel-shape renormalisation: Cov(z_i, z_j) = δ_ij C_b "
                               "+ Q_ij (K − C_b)", alpha=pb.P_A / n)}
    return RenormalisedPosterior(mean=mean, cov=cov, order_parameters=ops, action=matrix_action(pb.m), saddle=sad,
                                 K_R=K_R, problem=pb,
                                 kernel_latex=r"\mathrm{Cov}(z_i, z_j) = \delta_{ij} C_b + Q_{ij}\,(K - C_b)")


def renormalised_posterior(net, x_train, y_train, x_test, *, noise: float) -> RenormalisedPosterior:
    """The posterior of ``net`` given ``(x_train, y_train)`` (noise variance ``noise`` = T) at its saddle point.

    Odd σ (and linear), one output: any depth ≥ 2, one order parameter ``Q_ℓ`` per hidden layer. Non-odd σ
    (relu, gelu, …), one output: one hidden layer, the two order parameters ``(Q̄, Q)`` of the mean-vector
    action (:class:`nnft.proportional.action.PairAction`); deep non-odd networks are refused (no published
    variant is exact in any limit). Several outputs: one hidden layer, odd σ, the m × m order parameter
    ``Q`` (:class:`nnft.proportional.action.MatrixAction`).
    """
    pb = problem(net, x_train, y_train, x_test, noise)
    if net.depth < 2:
        raise InputError("a depth-1 network has no hidden layer to renormalise: its posterior is exactly the GP "
                         "(nnft.posterior)")
    act = net.activation
    odd = getattr(act, "parity", 0) == -1
    if pb.m > 1 and (net.depth != 2 or not odd):
        raise InputError(f"{pb.m} outputs: the m × m order parameter (kernel shape renormalisation) is built for "
                         "one hidden layer and odd σ (exact for linear networks); use depth=2 and an odd σ, or "
                         "fit one output at a time")
    if not odd and net.depth > 2:
        raise InputError(f"σ = {act.name} is not odd and the network has {net.depth - 1} hidden layers: the "
                         "mean-vector theory (Pacelli et al. 2023 §4.2) is built for one hidden layer only; use "
                         "depth=2 or an odd σ (tanh, erf, linear)")
    ks = net.kernels(pb.x_all, ntk=False, layers="all" if not odd else "last")
    K = np.asarray(ks.K)[-1]
    C_b = float(net.C_b[-1])
    K_w = K - C_b
    a, b = slice(0, pb.P_A), slice(pb.P_A, None)
    pencil = _pencil(K_w[a, a], C_b, pb.noise)
    widths = np.asarray(net.widths, dtype=np.float64)
    odd_saddle = _scalar_saddle(pencil, pb.Y, widths)
    ops: dict[str, OrderParameter] = {}
    if pb.m > 1:
        return _several_outputs(pb, pencil, odd_saddle, K_w, C_b, widths[0])
    if odd:
        sad: Saddle | PairSaddle = odd_saddle
        K_R = C_b + sad.q * K_w
        for ell, (Ql, nl) in enumerate(zip(sad.Q, widths, strict=True), start=1):
            ops[f"Q_{ell}"] = OrderParameter(
                f"Q_{ell}", float(Ql), f"renormalisation of hidden layer {ell} (width {int(nl)}): "
                "n_ℓ(Q_ℓ − 1) = c is the same for every layer", alpha=pb.P_A / nl)
        ops["q"] = OrderParameter("q", sad.q, "kernel multiplier Π_ℓ Q_ℓ: K_R = C_b + q (K − C_b)")
        action: Action | PairAction = scalar_action(len(widths))
        kernel_tex = r"K_R = C_b^{(L)} + \Big(\prod_\ell Q_\ell\Big)\big(K^{(L)} - C_b^{(L)}\big)"
    else:
        mu_w = np.sqrt(float(net.C_W[-1])) * activation_mean(act, np.diag(np.asarray(ks.K)[0]))
        pp = PairProblem(pencil, pb.Y[:, 0], mu_w[: pb.P_A], widths[0])
        Qb0 = float(odd_saddle.q)
        sad = solve_pair(widths[0], pp.grad, pp.S, (Qb0, 1.0 / Qb0 - 1.0))
        if not sad.converged:
            raise ConvergenceError(f"the saddle point (Q̄, Q) did not converge (residual {sad.residual:.2e} after "
                                   f"{sad.method}): report this with the inputs")
        M_w = np.outer(mu_w, mu_w)
        K_R = C_b + sad.Qbar * (K_w - M_w) + M_w / (1.0 + sad.Q)
        alpha = pb.P_A / widths[0]
        ops["Qbar"] = OrderParameter("Qbar", sad.Qbar, "renormalisation of the centred readout kernel K − C_b − M "
                                     "(M = C_W μμᵀ, μ = ⟨σ⟩)", alpha=alpha)
        ops["Q"] = OrderParameter("Q", sad.Q, "conjugate of Q̄; the mean-vector part M is scaled by 1/(1 + Q) "
                                  "(Q = 1/Q̄ − 1 when μ = 0)", alpha=alpha)
        action = pair_action()
        kernel_tex = r"K_R = C_b + \bar Q\,(K - C_b - M) + \frac{M}{1 + Q},\ M = C_W\,\mu\mu^{\top}"
    gp = order0(K_R[a, a], K_R[b, a], K_R[b, b], pb.Y, pb.noise,
                hint="the renormalised kernel is singular on the training set: give noise > 0")
    return RenormalisedPosterior(mean=gp.mean, cov=gp.cov, order_parameters=ops, action=action, saddle=sad, K_R=K_R,
                                 problem=pb, kernel_latex=kernel_tex, _C_b=C_b, _widths=tuple(net.widths), _K_w=K_w,
                                 _pencil=pencil)
