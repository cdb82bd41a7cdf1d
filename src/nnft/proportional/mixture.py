"""The predictive distribution of the one-hidden-layer theory as a scale mixture of Gaussians (and its closed form).

Integrating the order parameter instead of fixing it at the saddle: with one hidden layer of width n and odd σ,
the kernel scale ``Q`` has the prior ``Gamma(n/2, rate n/2)`` and, given Q, the outputs are the GP of
``C_b + Q K_w`` (THEORY §2; exact for bias-free linear networks, the Gaussian-equivalence theory otherwise):

    p(Q | y) ∝ Q^{n/2 − 1} e^{−nQ/2} N(y; 0, B + Q K_w),    p(z_b | y) = ∫ dQ p(Q | y) N(z_b; m_b(Q), v_b(Q)).

:func:`scale_mixture` evaluates it on a Gauss–Legendre grid in ``ln Q`` through the eigen-pencil of
``(B, K_w)`` (O(P) per node). At σ_ε² = 0 and C_b = 0 the mean does not depend on Q and ``v_b(Q) = Q v_b``;
the mixing law is the generalised inverse Gaussian ``GIG(λ = (n − P)/2, χ = yᵀK_w⁻¹y, ψ = n)`` (THEORY §2), so
``z_b`` is a *symmetric generalised hyperbolic* variable (:class:`GeneralisedHyperbolic`), not a Student-t: a
Student-t with ``P − n`` degrees of freedom is only its ``ψ → 0`` limit for ``P > n`` (an inverse-Gamma
mixing law; a finite variance needs ``P > n + 2``), which a Gamma prior on the scale never reaches at finite n.
``closed_form`` is None where the Bessel functions overflow (``|λ| ≫ 1``, e.g. n ≫ P). See docs/proportional.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import kve, logsumexp

from nnft.errors import ConvergenceError, InputError

__all__ = ["GeneralisedHyperbolic", "ScaleMixture"]


@dataclass(frozen=True)
class GeneralisedHyperbolic:
    """``X = loc + √W ε``, ``W ~ GIG(λ, χ, ψ)`` (density ∝ w^{λ−1} e^{−(χ/w + ψw)/2}), ε ~ N(0, 1)."""

    lam: float
    chi: float
    psi: float
    loc: float

    def pdf(self, x) -> np.ndarray:
        """``f(x) = (ψ/χ)^{λ/2} K_{λ−½}(√(ψ(χ + d²))) ((χ + d²)/ψ)^{(λ−½)/2} / (√(2π) K_λ(√(χψ)))``, d = x − loc."""
        d2 = (np.asarray(x, dtype=np.float64) - self.loc) ** 2
        lam, chi, psi = self.lam, self.chi, self.psi
        a = np.sqrt(psi * (chi + d2))
        b = math.sqrt(chi * psi)
        # kve(v, z) = K_v(z) e^{z}: work in logs so that large arguments do not underflow
        log_f = (0.5 * lam * math.log(psi / chi) + np.log(kve(lam - 0.5, a)) - a
                 + 0.5 * (lam - 0.5) * np.log((chi + d2) / psi)
                 - 0.5 * math.log(2 * math.pi) - (math.log(kve(lam, b)) - b))
        return np.exp(log_f)

    @property
    def var(self) -> float:
        """``E[W] = √(χ/ψ) K_{λ+1}(√(χψ)) / K_λ(√(χψ))``."""
        b = math.sqrt(self.chi * self.psi)
        return math.sqrt(self.chi / self.psi) * kve(self.lam + 1, b) / kve(self.lam, b)


@dataclass(frozen=True)
class ScaleMixture:
    """``p(z_b | y) = Σ_j w_j N(z_b; mean_j, var_j)`` over nodes ``Q_j`` of the posterior of the scale."""

    Q: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    closed_form: GeneralisedHyperbolic | None

    @property
    def mean(self) -> float:
        return float(self.weights @ self.means)

    @property
    def var(self) -> float:
        """Total variance: mean of the conditional variances plus the variance of the conditional means."""
        return float(self.weights @ self.variances + self.weights @ (self.means - self.mean) ** 2)

    @property
    def Q_mean(self) -> float:
        """Posterior mean of the scale Q (the saddle point is its O(1/n) approximation)."""
        return float(self.weights @ self.Q)

    def pdf(self, z) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)[..., None]
        g = np.exp(-0.5 * (z - self.means) ** 2 / self.variances) / np.sqrt(2 * math.pi * self.variances)
        return g @ self.weights


def scale_mixture(pencil, y: np.ndarray, k_b: np.ndarray, k_bb: float, C_b: float, n: float, Q_star: float, *,
                  nodes: int = 160, span: float = 14.0, closed_form: bool = False) -> ScaleMixture:
    """The mixture for one test point: ``k_b`` = K_w(b, A) (P_A,), ``k_bb`` = K_w(b, b); grid around ``Q_star``."""
    kap, tau = pencil.kappa, pencil.tau
    yt = pencil.rotate(y)
    wt = pencil.rotate(k_b)
    ct = pencil.rotate(np.ones_like(y)) * C_b
    sd = math.sqrt(2.0 / n)  # the prior's standard deviation in ln Q; the grid widens until the ends are empty
    t, w = np.polynomial.legendre.leggauss(nodes)
    for _ in range(6):
        u = math.log(Q_star) + span * sd * t
        Q = np.exp(u)
        a = tau[None, :] + Q[:, None] * kap[None, :]                      # (nodes, P_A)
        log_ev = -0.5 * (np.sum(np.log(a), axis=1) + np.sum(yt[None, :] ** 2 / a, axis=1))
        log_prior = 0.5 * n * u - 0.5 * n * Q                              # Gamma(n/2, n/2) in u = ln Q
        lp = np.log(w) + log_prior + log_ev
        weights = np.exp(lp - logsumexp(lp))
        if max(weights[:3].sum(), weights[-3:].sum()) < 1e-14:
            break
        span *= 2.0
    else:
        raise ConvergenceError("the posterior of the scale Q is not contained in ln Q* ± "
                               f"{span * sd:.3g}: the predictive mixture cannot be integrated reliably (targets "
                               "near zero with noise 0?); give noise > 0")
    v = ct[None, :] + Q[:, None] * wt[None, :]                             # rotated k_R(b, A) per node
    means = np.sum(v * yt[None, :] / a, axis=1)
    variances = C_b + Q * k_bb - np.sum(v ** 2 / a, axis=1)
    gh = None
    if closed_form:
        P = len(y)
        chi = float(np.sum(yt ** 2))                                       # yᵀ K_w⁻¹ y (τ = 0, κ = 1)
        v0 = float(k_bb - np.sum(wt ** 2))
        if v0 <= 1e-12 * max(k_bb, 1e-300):
            raise InputError("the test point coincides with a training point (or lies in their span) at noise 0: "
                             "its predictive is a point mass at the target; give noise > 0 or another test point")
        gh = GeneralisedHyperbolic(lam=(n - P) / 2, chi=chi * v0, psi=n / v0, loc=float(means[0]))
        if not (math.isfinite(gh.var) and np.isfinite(gh.pdf(gh.loc))):  # kve overflows for |λ| ≫ 1
            gh = None
    return ScaleMixture(Q=Q, weights=weights, means=means, variances=np.maximum(variances, 0.0), closed_form=gh)
