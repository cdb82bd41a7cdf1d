"""The exact finite-width Bayesian posterior by Monte Carlo: the independent judge of nnft.posterior(order=1).

``nnft.montecarlo.posterior(net, x_train, y_train, x_test, noise=σ_ε², samples=S, seed=s)`` samples S
networks of the prior, integrates each one's output layer exactly (given the last hidden layer it is a
GP with the sampled kernel Ĝ) and weights it by its likelihood of the data; see
:mod:`nnft.numeric.mc_posterior` for the estimator. It shares no code with the 1/n theory (no V, no K1,
no Edgeworth series): only the forward sampler and linear algebra.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from nnft.errors import MonteCarloError
from nnft.inference.validate import Problem, problem

__all__ = ["MonteCarloPosterior", "posterior"]

_TARGET_DOUBLES_PER_BATCH = 1 << 21


@dataclass(frozen=True)
class MonteCarloPosterior:
    """Posterior mean (P_B, m) and cov (m, P_B, m, P_B) of S finite networks, each with a jackknife stderr.

    ``log_marginal_likelihood`` is ``log p(y_train)``; ``ess`` the effective number of networks
    ``(Σw)²/Σw²`` behind the weighted averages (a few hundred or more for trustworthy errors).
    """

    mean: np.ndarray
    mean_stderr: np.ndarray
    cov: np.ndarray
    cov_stderr: np.ndarray
    log_marginal_likelihood: float
    log_marginal_likelihood_stderr: float
    ess: float
    samples: int
    seed: int
    seconds: float
    problem: Problem = field(repr=False)

    @property
    def std(self) -> np.ndarray:
        """Posterior standard deviations of the outputs, (P_B, m)."""
        m = self.cov.shape[0]
        return np.sqrt(np.stack([np.diag(self.cov[i, :, i, :]) for i in range(m)], axis=1))

    def zscores(self, theory) -> dict[str, np.ndarray]:
        """``(theory − MC)/stderr`` for the mean, the covariance and the log evidence of a :class:`Posterior`."""
        return {
            "mean": (theory.mean - self.mean) / self.mean_stderr,
            "cov": (theory.cov - self.cov) / self.cov_stderr,
            "log_marginal_likelihood": (theory.log_marginal_likelihood - self.log_marginal_likelihood)
            / self.log_marginal_likelihood_stderr,
        }

    def __repr__(self) -> str:
        return (f"MonteCarloPosterior(samples={self.samples}, ess={self.ess:.0f}, P_A={self.problem.P_A}, "
                f"P_B={self.problem.P_B}, m={self.problem.m}, noise={self.problem.noise:g}, "
                f"log p(y)={self.log_marginal_likelihood:.6g} ± {self.log_marginal_likelihood_stderr:.2g})")


def posterior(net, x_train, y_train, x_test, *, noise: float = 0.0, samples: int = 100_000, seed: int = 0,
              groups: int = 32, batch_size: int | None = None, progress: bool = False) -> MonteCarloPosterior:
    """The exact posterior of ``samples`` finite networks ``net`` given noisy data (``noise`` = σ_ε² ≥ 0)."""
    from nnft.numeric.mc_plan import _as_count, _Plan
    from nnft.numeric.mc_posterior import jackknife, posterior_groups

    t0 = time.perf_counter()
    pb = problem(net, x_train, y_train, x_test, noise)
    S = _as_count("samples", samples, 2)
    groups = min(_as_count("groups", groups, 2), S)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise MonteCarloError(f"seed must be a non-negative integer, got {seed!r}")
    if net.depth < 2:
        raise MonteCarloError("a depth-1 network's outputs are exactly Gaussian: its posterior is the GP of "
                              "nnft.posterior(..., order=0); Monte Carlo needs a hidden layer")
    x = pb.x_all
    P = x.shape[0]
    L = net.depth
    n = (x.shape[1], *net.widths)
    sizes = tuple(S // groups + (1 if g < S % groups else 0) for g in range(groups))
    proto = _Plan(x=x, n=n, C_b=net.C_b[: L - 1], C_W=net.C_W[: L - 1], lambda_b=net.lambda_b[: L - 1],
                  lambda_W=net.lambda_W[: L - 1], activation=net.activation, sampler="conditional",
                  layers=(L - 1,), stats=("G",), six_input=0, seed=int(seed), groups=groups, group_sizes=sizes,
                  batch_size=1)
    if batch_size is None:
        per = proto.draws_per_network + 3 * sum(n[1:]) * P + 4 * P * P
        batch_size = int(max(1, min(max(sizes), _TARGET_DOUBLES_PER_BATCH // per)))
    plan = _Plan(**{**proto.__dict__, "batch_size": int(batch_size)})
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=S, unit="net", desc="nnft mc posterior")
    try:
        parts = posterior_groups(plan, net.C_b[L - 1], net.C_W[L - 1], pb.Y, pb.noise, pb.P_A,
                                 progress=None if bar is None else bar.update)
    except np.linalg.LinAlgError as exc:
        raise MonteCarloError("a sampled kernel Ĝ_AA + σ_ε² I is singular (narrow last hidden layer with "
                              "noise = 0, or n_{L-1} < P_A): give noise > 0") from exc
    finally:
        if bar is not None:
            bar.close()
    full, errs = jackknife(parts)
    if not (np.all(np.isfinite(full.mean)) and math.isfinite(full.log_evidence)):
        raise MonteCarloError("the Monte Carlo posterior is not finite: the likelihood weights underflowed for "
                              "every network (data far outside the prior); check the targets' scale")
    return MonteCarloPosterior(mean=full.mean, mean_stderr=errs.mean, cov=full.cov, cov_stderr=errs.cov,
                               log_marginal_likelihood=full.log_evidence,
                               log_marginal_likelihood_stderr=errs.log_evidence, ess=full.ess, samples=S,
                               seed=int(seed), seconds=time.perf_counter() - t0, problem=pb)
