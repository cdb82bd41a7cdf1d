"""The Bayesian posterior of a network's outputs on test inputs, at infinite width and at order 1/n.

``nnft.posterior(net, x_train, y_train, x_test, noise=σ_ε², order=0|1)`` conditions the prior of
CONVENTIONS.md (outputs with covariance ``δ_ij G``, ``G = K + K1/n``, and four-point vertex ``V``; n = n_{L−1})
on noisy data ``y = z_A + ε``. Order 0 is the NNGP posterior (Rasmussen & Williams ch. 2); order 1 adds
the 1/n terms of the first-order Edgeworth expansion (PDLT ch. 6; ../shared/THEORY.md §6): the K1 shift of
the kernel, the V terms of the mean and the covariance, including the covariance between different
outputs that only exists at finite width. The formulas are in :mod:`nnft.numeric.gp_posterior` and
``docs/inference.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnft.errors import InputError
from nnft.inference.validate import Problem, problem
from nnft.numeric.gp_posterior import order0, order1_corrections

__all__ = ["Posterior", "posterior"]

_LATEX = {
    0: (r"\mathbb{E}[z_{i;\dot\beta}\mid y] = \sum_{\alpha_1\alpha_2} K_{\dot\beta\alpha_1}"
        r"\tilde K^{\alpha_1\alpha_2} y_{i;\alpha_2},\quad "
        r"\mathrm{Cov}[z_{i;\dot\beta_1}, z_{j;\dot\beta_2}\mid y] = \delta_{ij}\Big(K_{\dot\beta_1\dot\beta_2}"
        r" - \sum_{\alpha_1\alpha_2} K_{\dot\beta_1\alpha_1}\tilde K^{\alpha_1\alpha_2}K_{\alpha_2\dot\beta_2}\Big),"
        r"\quad \tilde K = (K_{AA} + \sigma_\varepsilon^2 I)^{-1}"),
    1: (r"\mathbb{E}[z_{i;\dot\beta}\mid y] = \sum_{\alpha} M_{\dot\beta\alpha} y_{i;\alpha} + \frac{1}{2n}"
        r"\sum_{\alpha_1\alpha_2\alpha_3} \tilde y_{i;\alpha_1}\Big\{ V^{\perp}_{(\dot\beta\alpha_1)(\alpha_2\alpha_3)}"
        r"\Big[\sum_j \tilde y_{j;\alpha_2}\tilde y_{j;\alpha_3} - m\,\tilde G^{\alpha_2\alpha_3}\Big]"
        r" - 2V^{\perp}_{(\dot\beta\alpha_2)(\alpha_1\alpha_3)}\tilde G^{\alpha_2\alpha_3}\Big\}"
        r"\\ \mathrm{Cov}[z_{i;\dot\beta_1}, z_{j;\dot\beta_2}\mid y] = \delta_{ij}\Big[G_{\dot\beta_1\dot\beta_2}"
        r" - \sum_\alpha M_{\dot\beta_1\alpha}G_{\alpha\dot\beta_2}\Big] + \frac{1}{2n}\sum_{\alpha_1\alpha_2}"
        r"\Big\{\delta_{ij}V^{\perp\perp}_{(\dot\beta_1\dot\beta_2)(\alpha_1\alpha_2)}\Big[\sum_k \tilde y_{k;\alpha_1}"
        r"\tilde y_{k;\alpha_2} - m\tilde G^{\alpha_1\alpha_2}\Big] + 2V^{\perp\perp}_{(\dot\beta_1\alpha_1)"
        r"(\dot\beta_2\alpha_2)}\Big[\tilde y_{i;\alpha_1}\tilde y_{j;\alpha_2}"
        r" - \delta_{ij}\tilde G^{\alpha_1\alpha_2}"
        r"\Big]\Big\}"
        r"\\ G = K + \tfrac{1}{n}K_1,\quad \tilde G = (G_{AA} + \sigma_\varepsilon^2 I)^{-1},\quad"
        r" \tilde y_i = \tilde G y_i,\quad M = G_{BA}\tilde G,\quad V^{\perp}: e_{\dot\beta} \to e_{\dot\beta}"
        r" - \textstyle\sum_\delta M_{\dot\beta\delta}e_\delta"),
}


@dataclass(frozen=True)
class Posterior:
    """The posterior of the latent outputs on the test inputs: mean (P_B, m), cov (m, P_B, m, P_B), std (P_B, m).

    ``cov[i, b1, j, b2] = Cov(z_{i;b1}, z_{j;b2} | y)`` (latent: without the noise; add ``noise`` on the
    diagonal for the predictive distribution of new targets). ``log_marginal_likelihood`` is
    ``log p(y_train)`` (a density in ``R^{P_A m}``); ``jitter`` what the factorisation of
    ``G_AA + σ_ε² I`` had to add to its diagonal (0 if nothing); ``mean0``/``cov0`` the Gaussian parts (the
    GP posterior of G, without the V terms).
    """

    mean: np.ndarray
    cov: np.ndarray
    log_marginal_likelihood: float
    order: int
    noise: float
    n: int | None
    jitter: float
    mean0: np.ndarray = field(repr=False)
    cov0: np.ndarray = field(repr=False)
    problem: Problem = field(repr=False)

    @property
    def std(self) -> np.ndarray:
        """``sqrt(Cov(z_{i;b}, z_{i;b} | y))`` of shape (P_B, m) (negative 1/n-truncated variances raise)."""
        m, P_B = self.cov.shape[0], self.cov.shape[1]
        var = np.stack([np.diag(self.cov[i, :, i, :]) for i in range(m)], axis=1)
        if np.any(var < 0):
            raise InputError("the order-1 posterior variance is negative at some test point: the 1/n expansion has "
                             "broken down (the width is too small for this data); use order=0 or a wider network, "
                             "or nnft.montecarlo.posterior for the exact finite-width answer")
        return np.sqrt(var).reshape(P_B, m)

    def latex(self) -> str:
        """The formulas this posterior evaluated, as LaTeX (one ``align``-free display string)."""
        return _LATEX[self.order]

    def _repr_latex_(self) -> str:
        return r"$$\begin{gathered}" + self.latex() + r"\end{gathered}$$"

    def __repr__(self) -> str:
        n = "∞" if self.order == 0 else str(self.n)
        return (f"Posterior(order={self.order}, n={n}, P_A={self.problem.P_A}, P_B={self.problem.P_B}, "
                f"m={self.problem.m}, noise={self.noise:g}, log p(y)={self.log_marginal_likelihood:.6g}, "
                f"jitter={self.jitter:g})")


def posterior(net, x_train, y_train, x_test, *, noise: float = 0.0, order: int = 0) -> Posterior:
    """The posterior of ``net``'s outputs at ``x_test`` given ``(x_train, y_train)`` with noise variance ``noise``.

    ``order=0``: the NNGP posterior of the output-layer kernel K. ``order=1``: with ``G = K + K1/n`` and the
    1/n terms of V (``n = n_{L−1}``; formulas in :mod:`nnft.numeric.gp_posterior`). ``y_train`` has shape
    (P_A, m) (or (P_A,) when m = 1), with m the network's ``n_out``.
    """
    if order not in (0, 1) or isinstance(order, bool):
        raise InputError(f"order must be 0 (infinite width) or 1 (order 1/n), got {order!r}")
    pb = problem(net, x_train, y_train, x_test, noise)
    x = pb.x_all
    a, b = slice(0, pb.P_A), slice(pb.P_A, None)
    hint = ("Duplicate or nearly identical training inputs with little noise make it singular: increase noise "
            "or remove near-duplicates.")
    if order == 0:
        G = np.asarray(net.nngp(x), dtype=np.float64)
        n = None
    else:
        from nnft.finite_width import cumulants

        c = cumulants(net, x)
        n = c.n
        G = c.K + c.K1 / n
    G = 0.5 * (G + G.T)
    t = order0(G[a, a], G[b, a], G[b, b], pb.Y, pb.noise, hint=hint)
    mean, cov, log_ml = t.mean, t.cov, t.log_ml
    mean0, cov0 = t.mean, t.cov
    if order == 1:
        dmean, dcov, dlog = order1_corrections(t, c.V, n, pb.P_A)
        mean = mean + dmean
        cov = cov + dcov
        log_ml = log_ml + dlog
    return Posterior(mean=mean, cov=cov, log_marginal_likelihood=float(log_ml), order=order, noise=pb.noise, n=n,
                     jitter=t.factor.jitter, mean0=mean0, cov0=cov0, problem=pb)
