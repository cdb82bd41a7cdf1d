"""Correlation tables: fast two-variable averages that agree with direct quadrature, or step aside."""

from __future__ import annotations

import numpy as np
import pytest

import nnft
from nnft.numeric import correlation_tables as ct
from nnft.numeric import quadrature as q


@pytest.mark.parametrize("act", ["tanh", "swish", "softplus", "sigmoid"])
def test_tables_match_direct_quadrature(act, rng):
    """For smooth activations the verified table equals direct quadrature to 1e-12 over c ∈ [−1, 1]."""
    f = nnft.activation(act).numpy()
    for ka, kb in ((1.3, 1.3), (0.2, 4.0), (25.0, 9.0)):
        coeffs = ct.table(f, f, ka, kb)
        assert coeffs is not None
        c = np.concatenate([rng.uniform(-1, 1, 40), [-1.0, 1.0, 0.9999]])
        ref = q.gauss2_product(f, f, ka, c * np.sqrt(ka * kb), kb)
        np.testing.assert_allclose(ct.clenshaw(coeffs, c), ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_kinked_activation_falls_back_to_direct_quadrature():
    """A Piecewise activation with a kink away from 0 (no closed form) is not tabulated: F is not smooth enough."""
    a = nnft.activation("Max(z - 7/10, 0)")
    f = a.numpy()
    assert ct.table(f, f, 1.0, 1.0, a.kinks, a.kinks) is None


def test_grouping_by_variance_in_a_tile(rng):
    """A tile with two distinct row variances and one column variance uses tables and matches direct."""
    f = nnft.activation("tanh").numpy()
    R, C = 40, 30
    kaa = np.where(np.arange(R) % 2 == 0, 1.0, 2.5)[:, None] * (1 + 1e-15)
    kbb = np.full((1, C), 1.7)
    kab = rng.uniform(-0.95, 0.95, (R, C)) * np.sqrt(kaa * kbb)
    old = ct.MIN_ENTRIES_PER_TABLE
    ct.MIN_ENTRIES_PER_TABLE = 1
    try:
        got = ct.gauss2_product(f, f, kaa, kab, kbb)
    finally:
        ct.MIN_ENTRIES_PER_TABLE = old
    ref = q.gauss2_product(f, f, kaa, kab, kbb)
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-13)


def test_tanh_kernel_with_equal_norm_inputs_is_fast_and_right(rng):
    """Equal-norm inputs (one variance per layer) go through tables; the kernel equals the direct path."""
    x = rng.standard_normal((60, 5))
    x *= np.sqrt(5) / np.linalg.norm(x, axis=1, keepdims=True)
    net = nnft.MLP("tanh", depth=3, C_b=0.1, C_W=1.5)
    fast = net.kernels(x, layers="last")
    old = ct.MIN_ENTRIES_PER_TABLE
    ct.MIN_ENTRIES_PER_TABLE = 10**12  # force direct quadrature everywhere
    try:
        slow = net.kernels(x[:12], layers="last")
    finally:
        ct.MIN_ENTRIES_PER_TABLE = old
    np.testing.assert_allclose(fast.nngp[:12, :12], slow.nngp, rtol=1e-11)
    np.testing.assert_allclose(fast.ntk[:12, :12], slow.ntk, rtol=1e-11)
