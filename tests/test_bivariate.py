"""The separable bivariate rule of the layer terms (nnft.numeric.bivariate) against independent routes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf

import nnft
from nnft.numeric.bivariate import SeparableTwoPoint, bivariate_expectations

NAMES = ("S", "A", "C", "B", "AA", "AC", "AB", "CC", "CB", "BB")


def _metric(name, rng, C_b=0.0, C_W=1.2):
    x = rng.standard_normal((9, 5))
    x = np.vstack([x, -x[:1], x[1:2] * 1.0001])  # antiparallel and nearly parallel pairs
    K = nnft.MLP(name, depth=3, C_b=C_b, C_W=C_W).kernels(x, ntk=False).K[1]
    d = np.diag(K)
    return d[:, None], K, d[None, :]


@pytest.mark.parametrize("name", ["tanh", "swish", "softplus"])
def test_layer_terms_equal_the_generated_quadrature(name):
    """All ten terms (⟨σσ⟩ and its metric derivatives) equal the generated map's own 2-D quadrature (runtime
    gauss2, another rule and code) to 1e-12, including the diagonal, x/−x and nearly parallel inputs."""
    from nnft.codegen.module import compile_module
    from nnft.recursions.finite_width_plan import finite_width_plan, two_point_specs

    act = nnft.activation(name)
    plan = finite_width_plan(act)
    assert isinstance(plan.two_point, SeparableTwoPoint)
    ref = compile_module("two_point_reference", two_point_specs(act), "numpy", key=f"ref|{act.key()}").pair
    args = _metric(name, np.random.default_rng(0))
    shape = args[1].shape
    for key, a, b in zip(NAMES, plan.two_point(*args), ref(*args), strict=True):
        np.testing.assert_allclose(np.broadcast_to(a, shape), np.broadcast_to(b, shape), rtol=0, atol=1e-12,
                                   err_msg=key)


def test_sigmoid_equals_tanh_at_a_quarter_of_the_metric():
    """sigmoid(z) = (1 + tanh(z/2))/2, so ⟨σσ⟩_K = 1/4 + ⟨tanh tanh⟩_{K/4}/4 and each derivative in the metric
    picks up one more factor 1/4 (the generated sigmoid quadrature itself does not converge: BudgetError)."""
    from nnft.recursions.finite_width_plan import finite_width_plan

    sig = finite_width_plan(nnft.activation("sigmoid")).two_point
    th = finite_width_plan(nnft.activation("tanh")).two_point
    A, C, B = _metric("sigmoid", np.random.default_rng(1))
    shape = C.shape
    got = sig(A, C, B)
    ref = th(A / 4, C / 4, B / 4)
    for key, g, r in zip(NAMES, got, ref, strict=True):
        order = len(key) if key != "S" else 0
        expect = np.broadcast_to(r, shape) / 4 ** (order + 1) + (0.25 if key == "S" else 0.0)
        np.testing.assert_allclose(np.broadcast_to(g, shape), expect, rtol=0, atol=1e-13, err_msg=key)


def test_erf_pair_against_arcsine_and_degenerate_correlations():
    rng = np.random.default_rng(2)
    A = rng.uniform(0.1, 2.0, 40)
    B = rng.uniform(0.1, 2.0, 40)
    r = np.concatenate([rng.uniform(-0.99, 0.99, 36), [1.0, -1.0, 0.999999, -0.9999999]])
    C = r * np.sqrt(A * B)
    E, ok = bivariate_expectations([erf], [erf], [(0, 0)], A, C, B)
    ref = 2 / np.pi * np.arcsin(2 * C / np.sqrt((1 + 2 * A) * (1 + 2 * B)))
    assert ok.all()
    np.testing.assert_allclose(E[0], ref, rtol=0, atol=1e-12)
