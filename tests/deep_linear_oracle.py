"""The exact posterior of bias-free linear networks at any width, by quadrature (numpy/scipy only, no nnft).

THEORY.md §2: for σ(z) = z and C_b = 0 the outputs are a scale mixture of the infinite-width GP,
``vec z | Q ~ N(0, Q ⊗ K)`` with ``K = C_W^L x·x'/n_0``. One output, L − 1 hidden layers: ``Q = Π_ℓ Q_ℓ``
with ``Q_ℓ ~ Gamma(n_ℓ/2, rate n_ℓ/2)`` independent (a product of χ²'s: each layer's weight vector).
Two outputs, one hidden layer: ``Q ~ Wishart_2(n, I/n)``, written by Bartlett's decomposition as
``Q = [[c1, √c1 u], [√c1 u, u² + c2]]``, ``c1 ~ Gamma(n/2, n/2)``, ``c2 ~ Gamma((n−1)/2, n/2)``,
``u ~ N(0, 1/n)``. Given Q the posterior is a GP posterior (outputs rotated to Q's eigenbasis are
independent); the posterior of Q is prior × evidence. Tensor-product Gauss–Legendre quadrature in
``log c`` (and ``u``) over ±``span`` prior standard deviations.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln, logsumexp


def _gl(lo: float, hi: float, nodes: int):
    x, w = np.polynomial.legendre.leggauss(nodes)
    return 0.5 * (hi - lo) * x + 0.5 * (hi + lo), 0.5 * (hi - lo) * w


def _log_gamma_grid(shape: float, rate: float, nodes: int, span: float):
    """Nodes in t = log c and log(weight × density of t) for c ~ Gamma(shape, rate)."""
    sd = 1.0 / math.sqrt(shape)
    centre = math.log(shape / rate)
    t, w = _gl(centre - span * sd, centre + span * sd, nodes)
    logp = shape * math.log(rate) - gammaln(shape) + shape * t - rate * np.exp(t)
    return t, np.log(w) + logp


def _gp_given_scales(mu, lam, U, Kba, Kbb, Yt, noise):
    """Per-scale GP evidence, mean and covariance for scales ``mu`` (S,) of one rotated output.

    Yt: U.T @ y (P_A,). Returns log evidence (S,), mean (S, P_B), cov (S, P_B, P_B).
    """
    d = mu[:, None] * lam[None, :] + noise                      # (S, P_A)
    loge = -0.5 * (np.sum(np.log(2 * math.pi * d), axis=1) + np.sum(Yt[None, :] ** 2 / d, axis=1))
    M = Kba @ U                                                 # (P_B, P_A)
    mean = mu[:, None] * ((Yt[None, :] / d) @ M.T)
    cov = mu[:, None, None] * Kbb[None] - (mu ** 2)[:, None, None] * np.einsum("ba,sa,ca->sbc", M, 1.0 / d, M)
    return loge, mean, cov


def linear_kernel(x: np.ndarray, C_W: float, depth: int) -> np.ndarray:
    """K^{(L)} of a bias-free linear network: C_W^L x·x'/n_0 (CONVENTIONS.md)."""
    return C_W ** depth * (x @ x.T) / x.shape[1]


def one_output(x_train, y_train, x_test, *, C_W, widths, noise, nodes=120, span=14.0):
    """Exact posterior of one output, hidden widths ``widths`` (one or two layers): mean (P_B,), cov, log evidence."""
    P_A = len(x_train)
    K = linear_kernel(np.vstack([x_train, x_test]), C_W, len(widths) + 1)
    lam, U = np.linalg.eigh(K[:P_A, :P_A])
    Yt = U.T @ y_train
    grids = [_log_gamma_grid(n / 2, n / 2, nodes, span) for n in widths]
    t = sum(np.meshgrid(*[g[0] for g in grids], indexing="ij")).ravel()
    logw = sum(np.meshgrid(*[g[1] for g in grids], indexing="ij")).ravel()
    loge, mean, cov = _gp_given_scales(np.exp(t), lam, U, K[P_A:, :P_A], K[P_A:, P_A:], Yt, noise)
    logz = logsumexp(logw + loge)
    p = np.exp(logw + loge - logz)
    m = p @ mean
    c = np.einsum("s,sbc->bc", p, cov) + np.einsum("s,sb,sc->bc", p, mean, mean) - np.outer(m, m)
    return m, c, logz


def scale_posterior(x_train, y_train, *, C_W, widths, noise, nodes=120, span=14.0):
    """Posterior mean and standard deviation of the kernel scale ``q = Π_ℓ Q_ℓ`` given one output's data."""
    K = linear_kernel(x_train, C_W, len(widths) + 1)
    lam, U = np.linalg.eigh(K)
    Yt = U.T @ y_train
    grids = [_log_gamma_grid(n / 2, n / 2, nodes, span) for n in widths]
    t = sum(np.meshgrid(*[g[0] for g in grids], indexing="ij")).ravel()
    logw = sum(np.meshgrid(*[g[1] for g in grids], indexing="ij")).ravel()
    d = np.exp(t)[:, None] * lam[None, :] + noise
    loge = -0.5 * (np.sum(np.log(d), axis=1) + np.sum(Yt[None, :] ** 2 / d, axis=1))
    lp = logw + loge
    p = np.exp(lp - logsumexp(lp))
    mq = float(p @ np.exp(t))
    return mq, float(np.sqrt(max(p @ np.exp(2 * t) - mq ** 2, 0.0)))


def two_outputs(x_train, y_train, x_test, *, C_W, n, noise, nodes=(64, 64, 48), span=12.0):
    """Exact posterior of two outputs, one hidden layer of width n: mean (P_B, 2), cov (2, P_B, 2, P_B), log Z."""
    P_A, P_B = len(x_train), len(x_test)
    K = linear_kernel(np.vstack([x_train, x_test]), C_W, 2)
    lam, U = np.linalg.eigh(K[:P_A, :P_A])
    Kba, Kbb = K[P_A:, :P_A], K[P_A:, P_A:]
    t1, l1 = _log_gamma_grid(n / 2, n / 2, nodes[0], span)
    t2, l2 = _log_gamma_grid((n - 1) / 2, n / 2, nodes[1], span)
    su = 1.0 / math.sqrt(n)
    u, wu = _gl(-span * su, span * su, nodes[2])
    lu = np.log(wu) - 0.5 * u ** 2 / su ** 2 - math.log(su * math.sqrt(2 * math.pi))
    T1, T2, Uu = (a.ravel() for a in np.meshgrid(t1, t2, u, indexing="ij"))
    logw = sum(a.ravel() for a in np.meshgrid(l1, l2, lu, indexing="ij"))
    c1, c2 = np.exp(T1), np.exp(T2)
    Q = np.empty((len(c1), 2, 2))
    Q[:, 0, 0], Q[:, 0, 1] = c1, np.sqrt(c1) * Uu
    Q[:, 1, 0], Q[:, 1, 1] = Q[:, 0, 1], Uu ** 2 + c2
    mu, R = np.linalg.eigh(Q)                                   # Q = R diag(mu) Rᵀ
    Yr = np.einsum("sik,ai->ska", R, y_train)                   # rotated targets (S, 2, P_A)
    loge = np.zeros(len(c1))
    mean_r = np.empty((len(c1), 2, P_B))
    cov_r = np.empty((len(c1), 2, P_B, P_B))
    for k in range(2):
        Yt = Yr[:, k, :] @ U                                    # (S, P_A): Uᵀ ỹ_k per node
        d = mu[:, k, None] * lam[None, :] + noise
        loge += -0.5 * (np.sum(np.log(2 * math.pi * d), axis=1) + np.sum(Yt ** 2 / d, axis=1))
        M = Kba @ U
        mean_r[:, k] = mu[:, k, None] * ((Yt / d) @ M.T)
        cov_r[:, k] = (mu[:, k, None, None] * Kbb[None]
                       - (mu[:, k] ** 2)[:, None, None] * np.einsum("ba,sa,ca->sbc", M, 1.0 / d, M))
    mean = np.einsum("sik,skb->sbi", R, mean_r)                 # (S, P_B, 2)
    cov = np.einsum("sik,sjk,skbc->sibjc", R, R, cov_r)         # (S, 2, P_B, 2, P_B)
    logz = logsumexp(logw + loge)
    p = np.exp(logw + loge - logz)
    m = np.einsum("s,sbi->bi", p, mean)
    c = (np.einsum("s,sibjc->ibjc", p, cov) + np.einsum("s,sbi,scj->ibjc", p, mean, mean)
         - np.einsum("bi,cj->ibjc", m, m))
    return m, c, logz
