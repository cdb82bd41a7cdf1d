"""``map_kernels``: the MAP kernels of every layer of a network adapted to a task, and their posterior.

``nnft.feature_learning.map_kernels(net, x_train, y_train, x_test=None, kappa=κ, method=...)`` solves the
forward–backward saddle of the kernel action (:mod:`nnft.feature_learning.action`; ../shared/THEORY.md §5;
Fischer et al., ICML 2024) on train ∪ test and returns a :class:`MAPKernels`: ``.C`` (L, P, P) the forward
kernels of the preactivations of layers 1 … L (training points first; without data they are the NNGP
kernels), ``.C_tilde`` (L, P, P) the backward kernels (zero on test rows), ``.posterior`` (GP regression with the
MAP output kernel) and ``.mean_corrected`` (that GP mean plus the Gaussian-fluctuation term of order 1/n,
:func:`fluctuation_correction`), with the solver's ``.converged``, ``.residual``, ``.iterations``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnft.errors import InputError
from nnft.inference.validate import Problem, problem

__all__ = ["MAPKernels", "fluctuation_correction", "map_kernels"]

_METHODS = ("auto", "closed_form", "perturbative", "quadrature", "montecarlo")


@dataclass
class MAPKernels:
    """The forward–backward saddle of ``net`` on ``x_train ∪ x_test`` (module docstring for the fields)."""

    C: np.ndarray
    C_tilde: np.ndarray
    K: np.ndarray
    method: str
    kappa: float
    converged: bool
    residual: float
    iterations: int
    problem: Problem = field(repr=False)
    net: object = field(repr=False)
    stages: list = field(default_factory=list, repr=False)
    stderr: np.ndarray | None = field(default=None, repr=False)

    @property
    def P_A(self) -> int:
        return self.problem.P_A

    @property
    def shift(self) -> np.ndarray:
        """``C − K`` (L, P, P): the kernel adaptation of every layer."""
        return self.C - self.K

    def alignment(self, layer: int | None = None, *, kernel: str = "C") -> float:
        """The kernel–target alignment ``⟨C_AA, YYᵀ⟩_F / (‖C_AA‖_F ‖YYᵀ‖_F)`` of ``layer`` (default L).

        ``kernel="C"``: the MAP kernel; ``"K"``: the NNGP kernel, for comparison.
        """
        ell = self.net.depth if layer is None else int(layer)
        if not 1 <= ell <= self.net.depth:
            raise InputError(f"layer must be in 1..{self.net.depth}, got {layer}")
        if kernel not in ("C", "K"):
            raise InputError(f"kernel must be 'C' (MAP) or 'K' (NNGP), got {kernel!r}")
        A = (self.C if kernel == "C" else self.K)[ell - 1, : self.P_A, : self.P_A]
        Y = self.problem.Y
        T = Y @ Y.T
        return float(np.sum(A * T) / (np.linalg.norm(A) * np.linalg.norm(T)))

    @property
    def posterior(self):
        """GP regression with the MAP output kernel (:class:`nnft.inference.Posterior`, order 0)."""
        if self.problem.P_B == 0:
            raise InputError("map_kernels was called without x_test: pass x_test to get the posterior on test points")
        from nnft.inference.posterior import Posterior
        from nnft.numeric.gp_posterior import order0

        pb, a, b = self.problem, slice(0, self.P_A), slice(self.P_A, None)
        G = self.C[-1]
        t = order0(G[a, a], G[b, a], G[b, b], pb.Y, pb.noise)
        return Posterior(mean=t.mean, cov=t.cov, log_marginal_likelihood=float(t.log_ml), order=0, noise=pb.noise,
                         n=None, jitter=t.factor.jitter, mean0=t.mean, cov0=t.cov, problem=pb)

    @property
    def mean_corrected(self) -> np.ndarray:
        """The posterior mean with the kernel's Gaussian fluctuations around the saddle (order 1/n), (P_B, m)."""
        return self.posterior.mean + fluctuation_correction(self)

    def latex(self) -> str:
        """The action and the saddle-point equations that were solved (derived by sympy)."""
        from nnft.feature_learning.action import layer_equations

        return layer_equations(self.net.activation.name == "linear" or self.method == "closed_form").latex()

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"

    def __repr__(self) -> str:
        return (f"MAPKernels(method={self.method!r}, L={self.C.shape[0]}, P_A={self.P_A}, P_B={self.problem.P_B}, "
                f"kappa={self.kappa:g}, converged={self.converged}, residual={self.residual:.2g}, "
                f"iterations={self.iterations}, output alignment NNGP {self.alignment(kernel='K'):.4f} → "
                f"MAP {self.alignment():.4f})")


def fluctuation_correction(res: MAPKernels) -> np.ndarray:
    """The order-1/n change of the GP mean from Gaussian fluctuations of the output kernel around the saddle.

    With ``C = C* + δC``, ``E[δC] = K1/n`` (the NLO metric: the prior's loop shift, absent from the saddle) and
    ``E[δC_{ab} δC_{cd}] = V_{(ab)(cd)}/n``, the second-order expansion of ``m(C) = C_BA (C_AA + κ)⁻¹ Y`` gives

        δm_{b;i} = (1/n) [ Σ_a (K1_{ba} − Σ_δ M_{bδ} K1_{δa}) ỹ_{a;i} − Σ_{acd} V⊥_{(ba)(cd)} G̃_{ac} ỹ_{d;i} ]

    (``G̃ = (C*_AA + κ)⁻¹``, ``ỹ = G̃ Y``, ``M = C*_BA G̃``, ``V⊥`` with the test slot projected). Together with the
    MAP kernel's own shift ½V:(ỸỸᵀ − mK̃)/n this is the order-1 posterior mean of ../shared/THEORY.md §6 — a
    second derivation of the same number (tested).
    """
    from nnft.finite_width import cumulants

    pb, P_A = res.problem, res.P_A
    if res.net.depth < 2:
        return np.zeros((pb.P_B, pb.m))
    c = cumulants(res.net, pb.x_all)
    n = c.n
    G = res.C[-1]
    a, b = slice(0, P_A), slice(P_A, None)
    Gt = np.linalg.inv(G[a, a] + pb.noise * np.eye(P_A))
    Gt = 0.5 * (Gt + Gt.T)
    yt = Gt @ pb.Y
    M = G[b, a] @ Gt
    K1 = c.K1
    k1 = (K1[b, a] - M @ K1[a, a]) @ yt
    V = c.V
    Vb = V[b][:, a][:, :, a][:, :, :, a] - np.einsum("bd,dacx->bacx", M, V[a][:, a][:, :, a][:, :, :, a])
    v = np.einsum("bacd,ac,di->bi", Vb, Gt, yt)
    return (k1 - v) / n


def map_kernels(net, x_train, y_train, x_test=None, *, kappa: float, method: str = "auto", tol: float = 1e-12,
                max_iter: int = 2000, samples: int = 200_000, nodes: int = 60, seed: int = 0,
                strict: bool = True) -> MAPKernels:
    """The MAP (forward–backward saddle) kernels of every layer of ``net`` for the data ``(x_train, y_train)``.

    ``kappa`` is the readout noise variance (> 0, or 0 with distinct training inputs); ``y_train`` (P_A, m) or
    (P_A,). ``method``: ``"closed_form"`` (φ(z) = z: the derived linear maps, exact), ``"perturbative"`` (first
    order in C̃: ``C^{(ℓ)} = K^{(ℓ)} + V^{(ℓ)}:c̃^{(ℓ)}/n_{ℓ−1}``), ``"quadrature"`` (the full nonlinear saddle with
    Gauss–Hermite tilted expectations, P ≤ 3) or ``"montecarlo"`` (the full saddle with ``samples`` importance
    samples, seeded; ``.stderr`` the standard errors of each layer's tilted expectation at the last sweep, given
    the layer below — not propagated through the saddle); ``"auto"`` picks closed_form for linear networks and
    the full saddle otherwise (quadrature for P ≤ 3 and smooth σ, else Monte Carlo). The full solvers start from the
    perturbative solution and continue in width (:mod:`nnft.feature_learning.saddle`).
    """
    if method not in _METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {_METHODS}")
    if isinstance(kappa, bool) or not isinstance(kappa, int | float | np.floating | np.integer):
        raise InputError(f"kappa (the readout noise variance) must be a number >= 0, got {kappa!r}")
    if x_test is None:
        x_test = np.zeros((0, np.atleast_2d(np.asarray(x_train, dtype=np.float64)).shape[1]))
    pb = problem(net, x_train, y_train, x_test, kappa) if np.asarray(x_test).shape[0] else _train_only(
        net, x_train, y_train, kappa)
    x, P_A = pb.x_all, pb.P_A
    linear = net.activation.name == "linear"
    if method == "auto":
        smooth = not net.activation.kinks and not net.activation.jumps
        method = "closed_form" if linear else ("quadrature" if x.shape[0] <= 3 and smooth else "montecarlo")
    if method == "closed_form" and not linear:
        raise InputError(f"method='closed_form' exists for φ(z) = z only (this network has {net.activation.name!r}); "
                         "use 'perturbative', 'quadrature' or 'montecarlo'")
    if net.depth < 2:
        raise InputError("a depth-1 network has no hidden layer, so nothing adapts: its kernel is fixed by the inputs")
    from nnft.feature_learning.perturbative import perturbative_kernels

    C0, ct0, K, _ = perturbative_kernels(net, x, pb.Y, P_A, pb.noise)
    if method == "perturbative":
        for ell in range(C0.shape[0]):
            lam = np.linalg.eigvalsh(C0[ell])
            if lam[0] < -1e-9 * lam[-1]:
                raise InputError(f"the first-order MAP kernel of layer {ell + 1} is indefinite (λ_min = {lam[0]:.3g}): "
                                 "the width is too small for the expansion in C̃; use method='quadrature'/'montecarlo' "
                                 "or a wider network")
        n_of = np.array([net.widths[0]] + list(net.widths))[:, None, None]  # C̃^{(1)} = c̃^{(1)}/n_1 (ratio 1)
        return MAPKernels(C=C0, C_tilde=ct0 / n_of, K=K, method=method, kappa=pb.noise, converged=True, residual=0.0,
                          iterations=0, problem=pb, net=net)
    tilted = None
    if not linear or method in ("quadrature", "montecarlo"):
        from nnft.feature_learning.tilted import TiltedGaussian

        tilted = TiltedGaussian(net.activation, method="quadrature" if method == "quadrature" else "montecarlo",
                                nodes=nodes, samples=samples, seed=seed)
    from nnft.feature_learning.saddle import solve_saddle

    out = solve_saddle(net, K[0], pb.Y, P_A, pb.noise, linear=tilted is None, tilted=tilted, start=ct0, K_all=K,
                       tol=tol, max_iter=max_iter, strict=strict)
    return MAPKernels(C=out.C, C_tilde=out.C_tilde, K=K, method=method, kappa=pb.noise, converged=out.converged,
                      residual=out.residual, iterations=out.iterations, problem=pb, net=net, stages=out.stages,
                      stderr=out.stderr)


def _train_only(net, x_train, y_train, kappa) -> Problem:
    """The validated problem without test points (P_B = 0)."""
    xa = np.atleast_2d(np.asarray(x_train, dtype=np.float64))
    pb = problem(net, xa, y_train, xa[:1], kappa)
    return Problem(x_train=pb.x_train, Y=pb.Y, x_test=np.zeros((0, xa.shape[1])), noise=pb.noise, squeeze=pb.squeeze)
