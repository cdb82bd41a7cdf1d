"""Monte Carlo ensembles of finite-width networks: the judge of every finite-width prediction.

A thin public face of :mod:`nnft.numeric.montecarlo`; see that module and ``docs/montecarlo.md``.
``nnft.montecarlo.estimate(net, x, samples=S, seed=s)`` returns a :class:`MonteCarloResult` whose
attributes (``G``, ``four_point_same``, ``four_point_cross``, ``six_point``, ``ntk_mean``, ``ntk_var`` …)
carry ``.value`` and ``.stderr``.
"""

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
    "MonteCarloResult",
    "NoisyEstimateWarning",
    "Statistic",
    "empirical_ntk",
    "estimate",
    "fit_inverse_width",
]
