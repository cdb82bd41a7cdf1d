"""nnft: a symbolic-numeric derivation engine for the statistical field theory of deep neural networks.

The public API is re-exported here lazily (PEP 562), so that generated numeric modules, which import
``nnft.runtime``, never pull in sympy. See the README and ``docs/`` for a guided tour.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "MLP": "nnft.network",
    "Layer": "nnft.network",
    "NetworkError": "nnft.network",
    "Activation": "nnft.activations",
    "ActivationError": "nnft.activations",
    "activation": "nnft.activations",
    "builtin_names": "nnft.activations",
    "NNFTError": "nnft.errors",
    "InputError": "nnft.errors",
    "ParseError": "nnft.errors",
    "posterior": "nnft.inference.posterior",
    "Posterior": "nnft.inference.posterior",
    "gradient_descent": "nnft.inference.gradient_descent",
    "GradientDescentPrediction": "nnft.inference.gradient_descent",
}
_SUBMODULES = {"montecarlo", "gaussian", "activations", "functions", "network", "recursions", "codegen", "numeric",
               "runtime", "cumulants", "cli", "testing", "errors", "plot",
               "criticality", "inference", "proportional", "feature_learning", "sklearn"}

__all__ = [
    "MLP",
    "Activation",
    "ActivationError",
    "InputError",
    "Layer",
    "NNFTError",
    "NetworkError",
    "ParseError",
    "Posterior",
    "GradientDescentPrediction",
    "__version__",
    "activation",
    "builtin_names",
    "criticality",
    "errors",
    "feature_learning",
    "gradient_descent",
    "inference",
    "montecarlo",
    "posterior",
    "proportional",
]

if TYPE_CHECKING:  # pragma: no cover
    from nnft import montecarlo
    from nnft.activations import Activation, ActivationError, activation, builtin_names
    from nnft.inference.gradient_descent import GradientDescentPrediction, gradient_descent
    from nnft.inference.posterior import Posterior, posterior
    from nnft.network import MLP, Layer, NetworkError


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"nnft.{name}")
    raise AttributeError(f"module 'nnft' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)
