"""Beyond the 1/n expansion: the posterior of networks with P = αn training points (kernel renormalisation).

``nnft.proportional.renormalised_posterior(net, x_train, y_train, x_test, noise=T)`` — the saddle point of an
action over a few order parameters, built symbolically (:mod:`nnft.proportional.action`), solved robustly
(:mod:`nnft.proportional.saddle`) and turned into a GP with the renormalised kernel
(:mod:`nnft.proportional.posterior`). Theory and conventions: ``docs/proportional.md``, ../shared/THEORY.md §2–4.
"""

from nnft.proportional.action import Action, scalar_action, zero_noise_equation
from nnft.proportional.posterior import (
    GeneralisationError,
    OrderParameter,
    RenormalisedPosterior,
    renormalised_posterior,
)

__all__ = ["Action", "GeneralisationError", "OrderParameter", "RenormalisedPosterior", "renormalised_posterior",
           "scalar_action", "zero_noise_equation"]
