"""scikit-learn kernels for the infinite-width NNGP and NTK of an MLP, with C_W and C_b as hyperparameters.

``GaussianProcessRegressor(kernel=NNGPKernel(net) + WhiteKernel())`` fits C_W, C_b (and the noise) by
maximising the marginal likelihood — the textbook way to choose an initialisation by evidence (PDLT §6.3.1).
``net`` is an :class:`nnft.MLP` (its activation and depth are kept; its C_W, C_b, uniform over the layers,
are the starting values) or an activation name with ``depth=``. ``K(x, x')`` is the NNGP of that network
with ``C_W``, ``C_b`` in every layer (CONVENTIONS.md); ``NTKKernel`` gives Θ with λ_W = C_W, λ_b = C_b.
Also importable as ``nnft.sklearn``. The gradient that sklearn asks for (with respect to
``log C``, sklearn's ``theta``) is a central difference of step ``1e-5`` in ``log C`` (relative error
≈ 1e-10, checked in tests/test_inference_sklearn.py against a step-halved difference). Optional: needs
``pip install nnft[sklearn]``.
"""

from __future__ import annotations

import numpy as np

from nnft.errors import InputError

try:
    from sklearn.gaussian_process.kernels import Hyperparameter, Kernel
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("nnft.inference.sklearn needs scikit-learn: pip install 'nnft[sklearn]'") from exc

__all__ = ["NNGPKernel", "NTKKernel"]

_STEP = 1e-5


class _MLPKernel(Kernel):
    """A kernel ``k(x, x')`` of a bias-and-weight-variance MLP prior; subclasses name the kernel."""

    _which = "nngp"

    def __init__(self, net="relu", depth: int | None = None, C_W: float | None = None, C_b: float | None = None,
                 C_W_bounds=(1e-3, 1e3), C_b_bounds=(1e-6, 1e3)):
        # sklearn's clone() rebuilds the kernel from get_params(), so every argument is stored as given,
        # except that C_W / C_b left at None take the network's (or the defaults 1.0 / 0.1).
        from nnft.network import MLP

        if isinstance(net, MLP):
            if depth is not None and depth != net.depth:
                raise InputError(f"depth={depth} contradicts the network's depth {net.depth}: leave depth out "
                                 "when passing an MLP")
            C_W = _uniform(net.C_W, "C_W") if C_W is None else C_W
            C_b = _uniform(net.C_b, "C_b") if C_b is None else C_b
        elif not isinstance(net, str):
            raise InputError(f"pass an nnft.MLP or an activation name, got {type(net).__name__}")
        self.net = net
        self.depth = depth
        self.C_W = 1.0 if C_W is None else C_W
        self.C_b = 0.1 if C_b is None else C_b
        self.C_W_bounds = C_W_bounds
        self.C_b_bounds = C_b_bounds

    @property
    def hyperparameter_C_W(self) -> Hyperparameter:
        return Hyperparameter("C_W", "numeric", self.C_W_bounds)

    @property
    def hyperparameter_C_b(self) -> Hyperparameter:
        return Hyperparameter("C_b", "numeric", self.C_b_bounds)

    def _gram(self, X: np.ndarray, Y: np.ndarray | None, C_W: float, C_b: float) -> np.ndarray:
        from nnft.network import MLP

        if isinstance(self.net, MLP):
            activation, depth = self.net.activation, self.net.depth
        else:
            activation, depth = self.net, 2 if self.depth is None else self.depth
        net = MLP(activation, depth=depth, width=1, C_W=C_W, C_b=C_b)
        k = net.nngp if self._which == "nngp" else net.ntk
        if Y is None:
            return k(X)
        return k(np.vstack([X, Y]))[: len(X), len(X):]

    def __call__(self, X, Y=None, eval_gradient: bool = False):
        """The Gram matrix ``k(X, Y)`` and, if asked (Y None), its gradient in ``log C_W, log C_b``."""
        X = _inputs(X, "X")
        if Y is not None:
            if eval_gradient:
                raise ValueError("the gradient is defined only for Y=None (sklearn's convention)")
            Y = _inputs(Y, "Y")
            if Y.shape[1] != X.shape[1]:
                raise InputError(f"X has {X.shape[1]} features but Y has {Y.shape[1]}: pass inputs of one "
                                 "dimension n_0")
        for name in ("C_W", "C_b"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise InputError(f"{name} must be a finite variance ≥ 0, got {v!r}")
        K = self._gram(X, Y, self.C_W, self.C_b)
        if not eval_gradient:
            return K
        grads = []
        for name in ("C_W", "C_b"):
            if getattr(self, f"hyperparameter_{name}").fixed:
                continue
            c = getattr(self, name)
            if c <= 0:
                raise InputError(f"{name} = 0 has no log-scale gradient: give {name} > 0 or "
                                 f"{name}_bounds='fixed'")
            up = dict(C_W=self.C_W, C_b=self.C_b)
            dn = dict(up)
            up[name], dn[name] = c * np.exp(_STEP), c * np.exp(-_STEP)
            grads.append((self._gram(X, None, **up) - self._gram(X, None, **dn)) / (2 * _STEP))
        G = np.stack(grads, axis=-1) if grads else np.empty(K.shape + (0,))
        return K, G

    def diag(self, X) -> np.ndarray:
        """The diagonal ``k(x, x)`` (from the full Gram matrix: the recursion is cheap at sklearn sizes)."""
        return np.diag(self(X)).copy()

    def is_stationary(self) -> bool:
        return False

    def __repr__(self) -> str:
        from nnft.network import MLP

        if isinstance(self.net, MLP):
            what = f"activation={self.net.activation.name!r}, depth={self.net.depth}"
        else:
            what = f"activation={self.net!r}, depth={2 if self.depth is None else self.depth}"
        return f"{type(self).__name__}({what}, C_W={self.C_W:.4g}, C_b={self.C_b:.4g})"


class NNGPKernel(_MLPKernel):
    """The infinite-width NNGP kernel K^{(L)}(x, x') of an MLP as a scikit-learn kernel (CONVENTIONS.md)."""

    _which = "nngp"


class NTKKernel(_MLPKernel):
    """The infinite-width NTK Θ^{(L)}(x, x') of an MLP (λ = C) as a scikit-learn kernel (CONVENTIONS.md)."""

    _which = "ntk"


def _uniform(values, name: str) -> float:
    if len(set(values)) != 1:
        raise InputError(f"the network's {name} differs between layers ({list(values)}): the sklearn kernels "
                         f"fit one {name} for all layers; pass {name}= explicitly")
    return float(values[0])


def _inputs(X, name: str) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise InputError(f"{name} must have shape (samples, n_0), got {X.shape}: reshape 1-D inputs with "
                         "x[:, None]")
    if not np.all(np.isfinite(X)):
        raise InputError(f"{name} contains NaN or inf: clean or impute the inputs first")
    return X
