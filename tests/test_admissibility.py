"""Admissibility of σ: singular points, complex values, growth, jumps and constants are refused clearly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import nnft
from nnft.admissibility import evaluate, value
from nnft.codegen.printers import NumbaPrinter, NumpyPrinter
from nnft.errors import ActivationError, NTKUndefinedError

X = np.array([[1.0, 0.2], [0.3, 1.1]])


def test_tan_names_its_pole():
    """tan(z) has a pole at π/2 ≈ 1.5708: ⟨σ²⟩ diverges, refused before any quadrature."""
    with pytest.raises(ActivationError, match=r"z = 1\.5708.*π/2.*⟨σ²⟩ diverges"):
        nnft.activation("tan(z)")
    with pytest.raises(ValueError, match="singular"):  # MLP reports it as a NetworkError
        nnft.MLP("tan(z)", depth=2)


def test_pole_at_a_shifted_point():
    """1/(z - 0.5): pole at 0.5, not square-integrable."""
    with pytest.raises(ActivationError, match=r"z = 0\.5.*\^-1 .*not square-integrable"):
        nnft.activation("1/(z-0.5)")
    with pytest.raises(ActivationError, match=r"z = 1\.41421.*\^-2"):
        nnft.activation("1/(z**2 - 2)**2")
    with pytest.raises(ActivationError, match=r"z = 0\.285398"):  # tan(2z + 1): (π/2 - 1)/2
        nnft.activation("tan(2*z + 1)")


def test_log_singularity_is_refused_with_the_right_reason():
    """log|z - 0.5| is square-integrable; nnft's quadrature does not resolve it (≈2 % off), so it says exactly that."""
    with pytest.raises(ActivationError, match=r"integrable logarithmic singularity at z = 0\.5.*quadrature") as info:
        nnft.activation("log(abs(z-0.5))")
    assert "depth" not in str(info.value)
    with pytest.raises(ActivationError, match=r"weak \(\|z - a\|\^-0\.25\)"):
        nnft.activation("Abs(z)**(-0.25)")


def test_complex_valued_expressions_are_refused():
    """z**2.5, sqrt(z) and log(z) are complex for z < 0, and the message says so and offers a real form."""
    for text in ("z**2.5", "sqrt(z)", "log(z)"):
        with pytest.raises(ActivationError, match="complex"):
            nnft.activation(text)
    assert nnft.activation("Abs(z)**2.5").parity == 1


def test_super_gaussian_growth_is_refused():
    """σ growing faster than every exp(q z²) has ⟨σ²⟩ = ∞ at every K; construction stops fast, no hang."""
    for text in ("exp(z**3)", "exp(exp(z))", "exp(exp(exp(exp(z))))", "exp(z**2*log(1 + z**2))"):
        with pytest.raises(ActivationError, match="faster than exp"):
            nnft.activation(text)
    assert nnft.activation("exp(z**2/4)").gaussian_growth == pytest.approx(0.25, rel=1e-3)


def test_guarded_evaluator_agrees_with_sympy():
    """The guarded evaluator gives sympy's values (40 digits) on ordinary expressions, and inf instead of hanging."""
    z = nnft.activations.z
    for e in (sp.tanh(z) * z, sp.erf(z / 3) + sp.exp(-z**2), sp.Max(z, 0) ** 3, sp.log(1 + z**2)):
        for t in (-2.5, 0.375, 4.0):
            ref = sp.N(e.subs(z, sp.Rational(str(t))), 40)
            assert abs(evaluate(e, t, 40) - ref) < 1e-35 * max(1, abs(ref))
    assert math.isinf(value(sp.exp(sp.exp(sp.exp(sp.exp(z)))), 60.0))


def test_singularities_attribute():
    """Accepted activations expose the (empty) list of singular points."""
    assert nnft.activation("tanh").singularities == ()
    assert nnft.activation("1/(1 + z**2)").singularities == ()


@pytest.mark.parametrize("text", ["floor(z)", "ceiling(z)", "floor(2*z + 0.3)", "Piecewise((0, z < 0.7), (1, True))"])
def test_jumps_make_the_ntk_undefined(text):
    """Any σ that jumps gets the same NTKUndefinedError as step/sign, never a printer crash."""
    act = nnft.activation(text)
    assert act.jumps and act.has_distributional_derivative
    with pytest.raises(NTKUndefinedError, match="Dirac delta"):
        nnft.MLP(text, depth=2).ntk(X)


def test_floor_jumps_are_at_the_integers():
    """floor jumps at the integers (verified by left/right limits); a continuous kink is not a jump."""
    assert set(nnft.activation("floor(z)").jumps) >= {-2.0, -1.0, 0.0, 1.0, 2.0}
    assert nnft.activation("relu").jumps == ()
    assert nnft.activation("abs").has_distributional_derivative is False


@pytest.mark.parametrize("printer", [NumpyPrinter, NumbaPrinter])
def test_printers_refuse_unknown_functions_clearly(printer):
    """A function the printer cannot translate raises an ActivationError naming it (no raw printer exception)."""
    z = nnft.activations.z
    with pytest.raises(ActivationError, match="cannot generate code for f"):
        printer().doprint(sp.Function("f")(z))
    with pytest.raises(ActivationError, match="derivative"):
        printer().doprint(sp.Derivative(sp.floor(z), z))


def test_undefined_function_in_a_sympy_expression():
    """An undefined sympy Function in σ is refused at construction, naming it."""
    with pytest.raises(ActivationError, match=r"undefined function\(s\) \['f'\]"):
        nnft.activation(sp.Function("f")(nnft.activations.z))


@pytest.mark.parametrize("k", [2.5, 0.5, "2.5", -1, 0, 101])
def test_monomial_needs_a_positive_integer(k):
    """monomial(k) never truncates k: a non-integer degree is refused (with the real-form hint)."""
    with pytest.raises(ActivationError, match="integer >= 1"):
        nnft.activation("monomial", k=k)


def test_monomial_call_string_and_hint():
    """'monomial(2.5)' is refused and points to Abs(z)**(5/2), since z**(5/2) is complex for z < 0."""
    with pytest.raises(ActivationError, match=r"Abs\(z\)\*\*\(5/2\).*complex for z < 0"):
        nnft.activation("monomial(2.5)")
    assert nnft.activation("monomial", k=3.0).expr == nnft.activations.z**3
    assert nnft.activation("monomial(k=4)").expr == nnft.activations.z**4


@pytest.mark.parametrize("text", ["0", "1", "2.5", "pi", "tanh(0.5)", "-3"])
def test_constants_are_not_activations(text):
    """A constant gets its own message, not 'unknown activation'."""
    with pytest.raises(ActivationError, match="a constant is not an activation"):
        nnft.activation(text)


@pytest.mark.parametrize("text", ["x", "tanh(x)", "x*z", "exp(t)"])
def test_wrong_variable_is_named(text):
    """An expression in another variable says which and how to fix it (write it in z or pass var=)."""
    with pytest.raises(ActivationError, match="depends on .*function of z.*var="):
        nnft.activation(text)


def test_misspelt_names_keep_did_you_mean():
    """Misspelt built-in names still get suggestions."""
    with pytest.raises(ActivationError, match=r"unknown activation 'tanhh'; did you mean \['tanh'\]"):
        nnft.activation("tanhh")


def test_floor_nngp_is_refused_not_wrong():
    """floor jumps at every integer, which quadrature cannot split at: refused (it was 3e-3 off, silently)."""
    from scipy.special import erfc

    x = np.array([[1.0, 0.0], [0.6, 0.8]])
    with pytest.raises(ActivationError, match="jumps at z = 0, 1, -1"):
        nnft.MLP("floor(z)", depth=2).nngp(x)
    # a jump the quadrature can split at is fine and exact: ⟨Θ(z − 0.3)²⟩ at K = 1/2 is erfc(0.3)/2
    K = nnft.MLP("Piecewise((0, z < 0.3), (1, True))", depth=2).nngp(x)
    np.testing.assert_allclose(np.diag(K), erfc(0.3) / 2, rtol=1e-12)
