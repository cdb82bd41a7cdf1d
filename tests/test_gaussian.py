"""The symbolic Gaussian-expectation engine: rules, unevaluated nodes and Price's theorem."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import nnft
from nnft.activations import z
from nnft.gaussian import (
    ErfRule,
    Expectation,
    HomogeneousRule,
    Kaa,
    Kab,
    Kbb,
    PolyGaussExpRule,
    closed_form_rule,
    expect_pair,
    expect_single,
    is_closed,
    za,
    zb,
)


@pytest.mark.parametrize(
    "expr, rule",
    [
        ("relu", HomogeneousRule),
        ("abs", HomogeneousRule),
        ("step", HomogeneousRule),
        ("erf", ErfRule),
        ("sin", PolyGaussExpRule),
        ("exp", PolyGaussExpRule),
        ("monomial", HomogeneousRule),
    ],
)
def test_rules_recognise_expressions_not_names(expr, rule):
    """The rule is chosen from the expression: a built-in and an equivalent user expression match alike."""
    a = nnft.activation(expr)
    assert isinstance(closed_form_rule(a.expr, a.expr), rule)


def test_user_max_gets_the_arccosine_closed_form():
    """sympy.Max(z, 0) typed by a user gets exactly relu's closed form."""
    user = expect_pair(sp.Max(z, 0), sp.Max(z, 0))
    builtin = expect_pair(nnft.activation("relu").expr, nnft.activation("relu").expr)
    assert sp.simplify(user - builtin) == 0


def test_linear_combinations_of_exponentials():
    """⟨(z + sin z)(z + sin z)⟩ = K_ab + 2·K_ab e^{-K/2}-type cross terms (completing the square + Stein)."""
    f = z + sp.sin(z)
    e = expect_pair(f, f)
    assert is_closed(e)
    val = float(e.subs({Kaa: 1.0, Kbb: 1.0, Kab: 0.5}))
    # independent: E[za zb] + E[za sin zb] + E[sin za zb] + E[sin za sin zb]
    ref = 0.5 + 2 * 0.5 * np.exp(-0.5) + np.exp(-1.0) * np.sinh(0.5)
    assert val == pytest.approx(ref, rel=1e-14)


def test_unknown_average_is_an_expectation_node():
    """tanh has no closed form: an Expectation node that prints as ⟨…⟩ in LaTeX."""
    t = nnft.activation("tanh").expr
    e = expect_pair(t, t)
    assert isinstance(e, Expectation) and not is_closed(e)
    assert r"\left\langle" in sp.latex(e)
    assert e.separable() == (sp.tanh(z), sp.tanh(z))


def test_price_theorem_on_the_node():
    """∂⟨f⟩/∂K_ab = ⟨∂_a∂_b f⟩ and ∂⟨f⟩/∂K_aa = ½⟨∂_a² f⟩ on unevaluated nodes."""
    e = Expectation(sp.tanh(za) * sp.tanh(zb), (za, zb), (Kaa, Kab, Kbb))
    d_ab = sp.diff(e, Kab)
    assert isinstance(d_ab, Expectation)
    assert sp.simplify(d_ab.integrand - (1 - sp.tanh(za) ** 2) * (1 - sp.tanh(zb) ** 2)) == 0
    d_aa = sp.diff(e, Kaa)
    assert isinstance(d_aa, Expectation)
    assert sp.simplify(d_aa.integrand - sp.diff(sp.tanh(za), za, 2) * sp.tanh(zb) / 2) == 0
    assert sp.diff(e, sp.Symbol("unrelated")) == 0


def test_price_theorem_holds_for_closed_forms_of_an_unnamed_expression():
    """For a user polynomial-exponential σ, ∂/∂K_ab of ⟨σσ⟩ equals ⟨σ'σ'⟩ exactly."""
    s = z**2 * sp.exp(-z**2 / 3) + sp.cos(2 * z)
    lhs = sp.diff(expect_pair(s, s), Kab)
    rhs = expect_pair(sp.diff(s, z), sp.diff(s, z))
    pts = {Kaa: sp.Rational(7, 10), Kbb: sp.Rational(13, 10), Kab: sp.Rational(-3, 10)}
    assert abs(float((lhs - rhs).subs(pts))) < 1e-13


def test_single_is_the_coincident_limit_of_pair():
    """⟨σ(z)²⟩_K equals ⟨σ(z_a)σ(z_b)⟩ at K_ab = K_aa = K_bb = K for every closed-form built-in."""
    for name in ["relu", "erf", "abs", "sin", "cos", "exp", "leaky_relu", "monomial", "linear"]:
        a = nnft.activation(name)
        pair = nnft.functions.unsafe(expect_pair(a.expr, a.expr)).subs({Kab: Kaa, Kbb: Kaa})
        single = expect_single(a.expr, a.expr)
        for k in (0.3, 1.7):
            assert float(pair.subs(Kaa, k)) == pytest.approx(float(single.subs(Kaa, k)), rel=1e-13), name


def test_diverging_gaussian_exponential_is_not_closed():
    """exp(+z²) is not integrable for large K: no closed form is claimed."""
    e = expect_pair(sp.exp(z**2 / 4), sp.exp(z**2 / 4))
    assert not is_closed(e)


def test_zscore_helpers_flag_disagreement():
    """nnft.testing.assert_zscores passes within the bound and names the worst entry beyond it."""
    from nnft.testing import assert_zscores, zscores

    np.testing.assert_allclose(zscores([1.0, 2.0], [0.5, 0.5], [1.0, 1.0]), [0.0, 2.0])
    assert_zscores([1.0, 2.0], [0.5, 0.5], [1.0, 1.0], bound=4)
    with pytest.raises(AssertionError, match=r"at \(1,\)"):
        assert_zscores([1.0, 4.0], [0.5, 0.5], [1.0, 1.0], bound=4)


def test_gelu_has_a_closed_form_by_stein_and_completing_the_square():
    """GELU = z Φ(z) gets a closed form (ErfRule); it is symmetric in a ↔ b and matches the reference."""
    from nnft.functions import unsafe
    from nnft.testing import pair_average

    g = nnft.activation("gelu")
    e = expect_pair(g.expr, g.expr)
    assert is_closed(e) and isinstance(closed_form_rule(g.expr, g.expr), ErfRule)
    swapped = e.subs({Kaa: Kbb, Kbb: Kaa}, simultaneous=True)
    pts = {Kaa: 0.7, Kbb: 1.9, Kab: -0.4}
    assert float(unsafe(e - swapped).subs(pts)) == pytest.approx(0, abs=1e-15)
    from scipy.special import erf

    def gelu(t):
        return 0.5 * t * (1 + erf(t / np.sqrt(2)))

    assert float(unsafe(e).subs(pts)) == pytest.approx(pair_average(gelu, gelu, 0.7, -0.4, 1.9), rel=1e-12)
