"""The exceptions and warnings nnft raises: one documented family, so callers can catch exactly them.

Every error nnft raises on purpose derives from :class:`NNFTError`, and also from the built-in class
that describes it (``ValueError`` for bad input, ``MemoryError`` for a request that does not fit,
``FloatingPointError`` for a result that would overflow), so ``except ValueError`` keeps working.
Messages say what is wrong and how to fix it; ``docs/refusals.md`` lists them all with their reasons.
This module is a leaf: it imports nothing from nnft.
"""

from __future__ import annotations


class NNFTError(Exception):
    """Base class of every error nnft raises on purpose."""


class InputError(NNFTError, ValueError):
    """Inputs, parameters or files that nnft cannot use (wrong shape, NaN/inf, unreadable, …)."""


class ParseError(InputError):
    """A user string (activation expression, parameter, config value) that is not an allowed expression."""


class ActivationError(InputError):
    """An activation name or expression that nnft cannot use (unknown, not finite, not square-integrable, …)."""


class NTKUndefinedError(ActivationError):
    """The NTK needs σ′, which is a Dirac delta for activations that jump (step, sign, floor, …)."""


class NetworkError(InputError):
    """An invalid network description or input."""


class MonteCarloError(InputError):
    """A Monte Carlo request that cannot give a meaningful estimate."""


class DivergenceError(NNFTError, FloatingPointError):
    """A Gaussian average or a kernel that diverges or overflows float64 for the given inputs."""


class ResourceError(NNFTError, MemoryError):
    """A request whose arrays would not fit in memory (the message names ``chunks=`` or the packed form)."""


class BudgetError(NNFTError, RuntimeError):
    """A computation stopped because it would exceed its time or work budget (the message says which knob)."""


class ConvergenceError(NNFTError, RuntimeError):
    """An equation nnft solves numerically (a saddle point) whose solution could not be found or certified."""


class CacheWarning(UserWarning):
    """The code cache could not be used as configured (read-only, corrupt) and nnft fell back."""


class NoisyEstimateWarning(UserWarning):
    """A Monte Carlo estimate whose standard error is large compared with its value."""


__all__ = [
    "ActivationError",
    "BudgetError",
    "CacheWarning",
    "ConvergenceError",
    "DivergenceError",
    "InputError",
    "MonteCarloError",
    "NNFTError",
    "NTKUndefinedError",
    "NetworkError",
    "NoisyEstimateWarning",
    "ParseError",
    "ResourceError",
]
