"""The symbolic one-layer maps: display, their Jacobians (Price's theorem) and diagonal consistency."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import nnft
from nnft.functions import unsafe
from nnft.gaussian import Kaa, Kab, Kbb, expect_pair
from nnft.recursions import one_layer_map
from nnft.recursions.base import C_W, C_b, Theta_ab, lambda_b, lambda_W

PTS = {Kaa: sp.Rational(7, 10), Kbb: sp.Rational(13, 10), Kab: sp.Rational(-3, 10), C_b: sp.Rational(1, 10),
       C_W: sp.Rational(3, 2), lambda_b: sp.Rational(1, 5), lambda_W: sp.Rational(4, 5), Theta_ab: sp.Rational(1, 3)}


@pytest.mark.parametrize("act", ["relu", "erf", "gelu", "sin", "abs"])
def test_jacobian_in_K_ab_is_price_theorem(act):
    """∂K'_αβ/∂K_αβ = C_W ⟨σ'_α σ'_β⟩_K (Price): the map's Jacobian agrees with the derivative average."""
    a = nnft.activation(act)
    m = one_layer_map("nngp", a)
    jac = m.jacobian()[("K_ab", "K_ab")]
    ref = C_W * expect_pair(a.derivative, a.derivative)
    assert float(unsafe(jac - ref).subs(PTS).evalf(30)) == pytest.approx(0, abs=1e-14)


def test_jacobian_of_ntk_map_in_theta():
    """∂Θ'_αβ/∂Θ_αβ = C_W ⟨σ'σ'⟩ for the NTK map."""
    a = nnft.activation("erf")
    m = one_layer_map("ntk", a)
    jac = m.jacobian()[("Theta_ab", "Theta_ab")]
    assert sp.simplify(unsafe(jac - C_W * expect_pair(a.derivative, a.derivative))) == 0


def test_quadrature_maps_differentiate_to_expectation_nodes():
    """For tanh (no closed form) the Jacobian is again a Gaussian average (Price on the node)."""
    m = one_layer_map("nngp", nnft.activation("tanh"))
    jac = m.jacobian()[("K_ab", "K_ab")]
    assert not m.closed and jac.has(nnft.gaussian.Expectation)


@pytest.mark.parametrize("act", ["relu", "tanh", "erf"])
def test_latex_display(act):
    """A map renders as a LaTeX aligned block in Jupyter, with ⟨…⟩ where there is no closed form."""
    m = nnft.MLP(act, depth=2).recursion("ntk")
    tex = m._repr_latex_()
    assert tex.startswith("$$\\begin{aligned}") and "K^{(\\ell+1)}_{\\alpha\\beta}" in tex
    assert ("\\left\\langle" in tex.split("&=")[2]) == (act == "tanh")
    assert act in repr(m)


def test_diag_function_matches_offdiag_on_the_diagonal():
    """The single-input map equals the two-input map at K_αβ = K_αα = K_ββ."""
    for act in ("relu", "erf", "sin", "gelu"):
        mod = one_layer_map("ntk", nnft.activation(act)).compile("numpy")
        k = np.array([0.3, 1.0, 4.0])
        t = np.array([0.5, 1.5, 2.0])
        d = mod.diag(k, t, 0.1, 1.3, 0.2, 0.9)
        o = mod.offdiag(k, k, k, t, 0.1, 1.3, 0.2, 0.9)
        for a, b in zip(d, o, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-13)


def test_unknown_recursion_name():
    """An unknown map name lists the available ones."""
    with pytest.raises(ValueError, match="nngp"):
        nnft.MLP("relu", depth=2).recursion("vertex")
