"""The activation registry: built-ins, user expressions, derived properties and errors."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy.special import erf as sp_erf

import nnft
from nnft.activations import ActivationError, z

# independent numpy definitions of the built-ins (not through nnft's printers)
REFERENCE = {
    "linear": lambda t: t,
    "relu": lambda t: np.maximum(t, 0),
    "leaky_relu": lambda t: np.where(t >= 0, t, 0.01 * t),
    "abs": np.abs,
    "step": lambda t: np.heaviside(t, 0.5),
    "sign": np.sign,
    "erf": sp_erf,
    "tanh": np.tanh,
    "sigmoid": lambda t: 1 / (1 + np.exp(-t)),
    "softplus": lambda t: np.log1p(np.exp(t)),
    "gelu": lambda t: 0.5 * t * (1 + sp_erf(t / np.sqrt(2))),
    "swish": lambda t: t / (1 + np.exp(-t)),
    "sin": np.sin,
    "cos": np.cos,
    "exp": np.exp,
    "monomial": lambda t: t**2,
}
PROPS = {  # name: (parity, homogeneity)
    "linear": (-1, 1), "relu": (0, 1), "leaky_relu": (0, 1), "abs": (1, 1), "step": (0, 0), "sign": (-1, 0),
    "erf": (-1, None), "tanh": (-1, None), "sigmoid": (0, None), "softplus": (0, None), "gelu": (0, None),
    "swish": (0, None), "sin": (-1, None), "cos": (1, None), "exp": (0, None), "monomial": (1, 2),
}


def test_registry_has_the_required_builtins():
    """Every activation the issue names is registered."""
    assert set(REFERENCE) <= set(nnft.builtin_names())


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_builtin_values(name):
    """Each built-in evaluates like an independent numpy definition."""
    t = np.linspace(-4, 4, 41)
    np.testing.assert_allclose(nnft.activation(name)(t), REFERENCE[name](t), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", sorted(PROPS))
def test_parity_and_homogeneity(name):
    """Parity and positive homogeneity are derived correctly from the expression."""
    a = nnft.activation(name)
    assert (a.parity, a.homogeneity) == PROPS[name]


@pytest.mark.parametrize("name", ["tanh", "erf", "sigmoid", "softplus", "gelu", "swish", "sin", "exp"])
def test_derivative_matches_finite_difference(name):
    """σ' agrees with a central finite difference of σ."""
    a = nnft.activation(name)
    dfun = sp.lambdify(z, nnft.functions.unsafe(a.derivative), "scipy")
    t = np.linspace(-3, 3, 13)
    h = 1e-6
    fd = (REFERENCE[name](t + h) - REFERENCE[name](t - h)) / (2 * h)
    np.testing.assert_allclose(dfun(t), fd, rtol=1e-7, atol=1e-8)


def test_kinks_are_found():
    """Kinks are read off Piecewise / Abs / Max, including user ones away from 0."""
    assert nnft.activation("relu").kinks == (0.0,)
    assert nnft.activation(sp.Max(z - sp.Rational(7, 10), 0)).kinks == (0.7,)
    assert nnft.activation("tanh").kinks == ()


def test_parameters_and_call_strings():
    """leaky_relu(a) and monomial(k) take parameters by keyword or in a call string."""
    a1 = nnft.activation("leaky_relu", a=0.1)
    a2 = nnft.activation("leaky_relu(0.1)")
    assert a1.expr == a2.expr
    assert float(a1(np.array([-1.0]))[0]) == pytest.approx(-0.1)
    assert nnft.activation("monomial", k=3).expr == z**3
    assert nnft.activation("silu").expr == nnft.activation("swish").expr


def test_user_expressions():
    """A sympy expression or an expression string in z is an activation; a foreign 'z' symbol is accepted."""
    a = nnft.activation("z*tanh(z)")
    assert a.parity == 1
    zz = sp.Symbol("z")
    b = nnft.activation(sp.sin(zz) + zz / 10)
    assert b.expr == sp.sin(z) + z / 10
    x = sp.Symbol("x")
    c = nnft.activation(sp.tanh(x), var=x)
    assert c.expr == sp.tanh(z)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("rleu", "did you mean"),
        ("nonsense_activation", "unknown activation"),
        ("z*y", "function of z alone"),
        (sp.Integer(3), "does not depend on z"),
        ("z**(", "cannot parse"),
        ("1/z", "not finite"),
    ],
)
def test_bad_activations_raise(spec, match):
    """Unknown names, foreign symbols, constants and non-finite expressions raise ActivationError."""
    with pytest.raises(ActivationError, match=match):
        nnft.activation(spec)


def test_bad_parameters_raise():
    """Unknown or invalid parameters are named in the error."""
    with pytest.raises(ActivationError, match="no parameter"):
        nnft.activation("relu", a=0.1)
    with pytest.raises(ActivationError, match="integer >= 1"):
        nnft.activation("monomial", k=0)
    with pytest.raises(ActivationError, match="finite"):
        nnft.activation("leaky_relu", a=float("nan"))


def test_jupyter_display():
    """An activation renders as LaTeX."""
    assert nnft.activation("relu")._repr_latex_().startswith("$\\sigma(z) =")


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "swish", "gelu", "leaky_relu(0.1)", "tanh"])
def test_printed_expression_parses_back(name):
    """str(σ) is what a report or config file stores: it must parse back to the same expression."""
    act = nnft.activation(name)
    assert nnft.activation(str(act.expr)).expr == act.expr
