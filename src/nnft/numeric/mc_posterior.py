"""The exact Bayesian posterior of finite-width networks by Monte Carlo: prior samples of the last kernel, weighted.

Given the last hidden layer's activations φ = σ(z^{(L−1)}) of one sampled network, its outputs are exactly
Gaussian and independent across the m outputs, with the *sampled* kernel
``Ĝ_{αβ} = C_b + (C_W/n_{L−1}) Σ_k φ_{k;α} φ_{k;β}`` (CONVENTIONS.md). Conditioning on noisy data
``y = z_A + ε`` is then a GP computation for that network, and the finite-width posterior is the mixture
over networks with weights ``w ∝ p(y | Ĝ) = Π_i N(y_i; 0, Ĝ_AA + σ_ε² I)``:

    E[z_B | y] = E_w[μ(Ĝ)],   μ(Ĝ) = Ĝ_BA (Ĝ_AA + σ_ε²)⁻¹ y
    E[z_{i;B} z_{j;B}ᵀ | y] = E_w[δ_ij Σ(Ĝ) + μ_i(Ĝ) μ_j(Ĝ)ᵀ],   Σ(Ĝ) = Ĝ_BB − Ĝ_BA (Ĝ_AA + σ_ε²)⁻¹ Ĝ_AB
    p(y) = E_prior[p(y | Ĝ)]

(self-normalised importance sampling from the prior, Rao–Blackwellised over the output layer, which is
integrated exactly). This is exact at any width: no expansion in 1/n. Hidden layers are drawn with the
conditional sampler of :mod:`nnft.numeric.mc_sampling`. Errors are jackknife errors over independent
seeded groups (which also removes the O(1/S) bias of the ratio estimator); the effective sample size
``(Σw)²/Σw²`` is reported so a user sees when the data are too informative for prior sampling.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nnft.numeric.mc_activations import _functions
from nnft.numeric.mc_plan import _Plan
from nnft.numeric.mc_sampling import _forward

__all__ = ["PosteriorSums", "posterior_groups", "combine"]


@dataclass
class PosteriorSums:
    """Weighted sums of one group, all scaled by ``exp(−shift)``: Σw, Σw², Σwμ, Σw(δΣ + μμᵀ), count."""

    shift: float
    w: float
    w2: float
    m1: np.ndarray  # (P_B, m)
    m2: np.ndarray  # (m, P_B, m, P_B)
    count: int

    def rescale(self, shift: float) -> PosteriorSums:
        f = math.exp(self.shift - shift)
        return PosteriorSums(shift, self.w * f, self.w2 * f * f, self.m1 * f, self.m2 * f, self.count)

    def __add__(self, other: PosteriorSums) -> PosteriorSums:
        s = max(self.shift, other.shift)
        a, b = self.rescale(s), other.rescale(s)
        return PosteriorSums(s, a.w + b.w, a.w2 + b.w2, a.m1 + b.m1, a.m2 + b.m2, a.count + b.count)


def _batch(G: np.ndarray, Y: np.ndarray, noise: float, P_A: int) -> PosteriorSums:
    """The weighted sums of one batch of sampled kernels ``G`` (B, P, P) (training points first)."""
    B = G.shape[0]
    m = Y.shape[1]
    GAA = G[:, :P_A, :P_A] + noise * np.eye(P_A)
    GBA = G[:, P_A:, :P_A]
    GBB = G[:, P_A:, P_A:]
    L = np.linalg.cholesky(GAA)  # (B, P_A, P_A); raises on a singular sampled kernel (noise = 0, tiny width)
    Yb = np.broadcast_to(Y, (B, *Y.shape))
    u = np.linalg.solve(L, Yb)  # L⁻¹ y
    logdet = 2.0 * np.sum(np.log(np.diagonal(L, axis1=1, axis2=2)), axis=1)
    logw = -0.5 * np.sum(u * u, axis=(1, 2)) - 0.5 * m * logdet - 0.5 * m * P_A * math.log(2 * math.pi)
    Lt = np.swapaxes(L, 1, 2)
    yt = np.linalg.solve(Lt, u)  # (B, P_A, m) = (Ĝ_AA + σ²)⁻¹ y
    mu = GBA @ yt  # (B, P_B, m)
    H = np.linalg.solve(L, np.swapaxes(GBA, 1, 2))  # L⁻¹ Ĝ_AB  (B, P_A, P_B)
    Sig = GBB - np.swapaxes(H, 1, 2) @ H
    shift = float(np.max(logw))
    w = np.exp(logw - shift)
    P_B = mu.shape[1]
    m2 = np.einsum("s,sbi,scj->ibjc", w, mu, mu, optimize=True)
    sig = np.einsum("s,sbc->bc", w, Sig)
    for i in range(m):
        m2[i, :, i, :] += sig
    return PosteriorSums(shift=shift, w=float(w.sum()), w2=float((w * w).sum()),
                         m1=np.einsum("s,sbi->bi", w, mu), m2=m2.reshape(m, P_B, m, P_B), count=B)


def posterior_groups(plan: _Plan, C_b_out: float, C_W_out: float, Y: np.ndarray, noise: float, P_A: int,
                     progress: Callable[[int], None] | None = None) -> list[PosteriorSums]:
    """The weighted sums of every seeded group (group g draws from ``SeedSequence(seed).spawn(groups)[g]``).

    ``plan`` describes the hidden layers 1..L−1 (conditional sampler); ``C_b_out``, ``C_W_out`` the output
    layer's variances, which turn φ^{(L−1)} into the sampled kernel Ĝ.
    """
    sigma, _, _ = _functions(plan.activation)
    x = plan.x
    n_last = plan.n[-1]
    out = []
    for g in range(plan.groups):
        child = np.random.SeedSequence(plan.seed).spawn(plan.groups)[g]
        rng = np.random.Generator(np.random.PCG64(child))
        size = plan.group_sizes[g]
        acc: PosteriorSums | None = None
        done = 0
        while done < size:
            B = min(plan.batch_size, size - done)
            eps = rng.standard_normal((B, plan.draws_per_network))
            zs, _ = _forward(plan, eps, sigma)
            phi = sigma(zs[plan.depth])  # (B, n_{L−1}, P)
            G = C_b_out + (C_W_out / n_last) * np.matmul(np.swapaxes(phi, 1, 2), phi)
            part = _batch(G, Y, noise, P_A)
            acc = part if acc is None else acc + part
            done += B
            if progress is not None:
                progress(B)
        out.append(acc)
    del x
    return out


@dataclass(frozen=True)
class Combined:
    """Posterior mean (P_B, m), cov (m, P_B, m, P_B), log evidence and the effective sample size of some groups."""

    mean: np.ndarray
    cov: np.ndarray
    log_evidence: float
    ess: float


def combine(parts: list[PosteriorSums]) -> Combined:
    """The self-normalised estimates from the summed groups."""
    tot = parts[0]
    for p in parts[1:]:
        tot = tot + p
    mean = tot.m1 / tot.w
    m = mean.shape[1]
    cov = tot.m2 / tot.w - np.einsum("bi,cj->ibjc", mean, mean)
    cov = 0.5 * (cov + cov.transpose(2, 3, 0, 1))
    del m
    return Combined(mean=mean, cov=cov, log_evidence=math.log(tot.w / tot.count) + tot.shift, ess=tot.w**2 / tot.w2)


def jackknife(parts: list[PosteriorSums]) -> tuple[Combined, Combined]:
    """(estimate from all groups, jackknife standard errors over groups as a :class:`Combined` of errors)."""
    full = combine(parts)
    G = len(parts)
    if G < 2:
        nan = Combined(mean=np.full_like(full.mean, np.nan), cov=np.full_like(full.cov, np.nan),
                       log_evidence=float("nan"), ess=float("nan"))
        return full, nan
    reps = [combine(parts[:g] + parts[g + 1:]) for g in range(G)]

    def err(get):
        vals = np.array([get(r) for r in reps])
        return np.sqrt((G - 1) / G * np.sum((vals - vals.mean(axis=0)) ** 2, axis=0))

    errs = Combined(mean=err(lambda r: r.mean), cov=err(lambda r: r.cov),
                    log_evidence=float(err(lambda r: r.log_evidence)), ess=float("nan"))
    return full, errs
