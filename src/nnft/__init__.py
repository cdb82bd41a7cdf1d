"""nnft: a symbolic-numeric derivation engine for the statistical field theory of deep neural networks.

The public API is re-exported here; see the README and ``docs/`` for a guided tour.
"""

from nnft.activations import Activation, ActivationError, activation, builtin_names
from nnft.network import MLP, Layer, NetworkError

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "Activation",
    "ActivationError",
    "Layer",
    "NetworkError",
    "__version__",
    "activation",
    "builtin_names",
]
