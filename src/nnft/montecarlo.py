"""Monte Carlo ensembles of finite-width networks: the judge of every finite-width prediction.

A thin public face of :mod:`nnft.numeric.montecarlo`; see that module and ``docs/montecarlo.md``.
``nnft.montecarlo.estimate(net, x, samples=S, seed=s)`` returns a :class:`MonteCarloResult` whose
attributes (``G``, ``four_point_same``, ``four_point_cross``, ``six_point``, ``ntk_mean``, ``ntk_var`` …)
carry ``.value`` and ``.stderr``. ``nnft.montecarlo.posterior(net, x_train, y_train, x_test, noise=σ²)`` is the
exact finite-width Bayesian posterior (:mod:`nnft.inference.mc_posterior`).
"""

from nnft.inference.mc_posterior import MonteCarloPosterior, posterior
from nnft.numeric.montecarlo import (
    SIX_POINT_PATTERNS,
    STATISTICS,
    InverseWidthFit,
    LayerStatistics,
    MonteCarloError,
    MonteCarloResult,
    NoisyEstimateWarning,
    Statistic,
    empirical_ntk,
    estimate,
    fit_inverse_width,
)

__all__ = [
    "SIX_POINT_PATTERNS",
    "STATISTICS",
    "InverseWidthFit",
    "LayerStatistics",
    "MonteCarloError",
    "MonteCarloPosterior",
    "MonteCarloResult",
    "NoisyEstimateWarning",
    "Statistic",
    "empirical_ntk",
    "estimate",
    "fit_inverse_width",
    "posterior",
]
