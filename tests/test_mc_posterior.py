"""The Monte Carlo posterior of finite networks: reproducible, consistent, and the judge of nnft.posterior(order=1).

The slow must-show: for tanh and relu networks with L = 3 and small data, the order-1 posterior beats
order 0 against the exact finite-width posterior, and what remains falls like 1/n².
"""

from __future__ import annotations

import numpy as np
import pytest

import nnft
from nnft.errors import MonteCarloError


@pytest.fixture
def data():
    rng = np.random.default_rng(11)
    return rng.normal(size=(3, 3)), rng.normal(size=(3, 2)), rng.normal(size=(2, 3))


def test_seeded_and_batch_independent(data):
    xa, Y, xb = data
    net = nnft.MLP("tanh", depth=3, width=8, C_W=1.5, C_b=0.1, n_out=2)
    a = nnft.montecarlo.posterior(net, xa, Y, xb, noise=0.1, samples=4000, seed=5, groups=8)
    b = nnft.montecarlo.posterior(net, xa, Y, xb, noise=0.1, samples=4000, seed=5, groups=8, batch_size=37)
    c = nnft.montecarlo.posterior(net, xa, Y, xb, noise=0.1, samples=4000, seed=6, groups=8)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.cov, b.cov, rtol=1e-10, atol=1e-13)
    assert a.log_marginal_likelihood == pytest.approx(b.log_marginal_likelihood, abs=1e-12)
    assert not np.allclose(a.mean, c.mean)
    assert a.mean.shape == (2, 2) and a.cov.shape == (2, 2, 2, 2) and a.std.shape == (2, 2)
    assert np.all(a.mean_stderr > 0) and 0 < a.ess <= 4000
    assert "ess=" in repr(a)


def test_wide_network_agrees_with_theory(data):
    """At n = 256 the MC posterior agrees with order 1 within its errors (and order 0 nearly so)."""
    xa, Y, xb = data
    net = nnft.MLP("tanh", depth=3, width=256, C_W=1.5, C_b=0.1, n_out=2)
    mc = nnft.montecarlo.posterior(net, xa, Y, xb, noise=0.1, samples=20000, seed=1)
    p1 = nnft.posterior(net, xa, Y, xb, noise=0.1, order=1)
    z = mc.zscores(p1)
    assert np.max(np.abs(z["mean"])) < 4.5 and np.max(np.abs(z["cov"])) < 4.5
    assert abs(z["log_marginal_likelihood"]) < 4.5


def test_negative_control_detects_a_wrong_width(data):
    """Theory at the wrong width (n/2) is rejected by the same run: the judge can fail."""
    xa, Y, xb = data
    net = nnft.MLP("tanh", depth=3, width=16, C_W=1.5, C_b=0.1, n_out=2)
    mc = nnft.montecarlo.posterior(net, xa, Y, xb, noise=0.1, samples=40000, seed=2)
    wrong = nnft.posterior(nnft.MLP("tanh", depth=3, width=8, C_W=1.5, C_b=0.1, n_out=2), xa, Y, xb, noise=0.1,
                           order=1)
    assert np.max(np.abs(mc.zscores(wrong)["cov"])) > 8


def test_errors(data):
    xa, Y, xb = data
    with pytest.raises(MonteCarloError, match="depth-1"):
        nnft.montecarlo.posterior(nnft.MLP("tanh", depth=1, n_out=2), xa, Y, xb, noise=0.1, samples=10)
    net = nnft.MLP("tanh", depth=3, width=8, n_out=2)
    with pytest.raises(MonteCarloError, match="seed"):
        nnft.montecarlo.posterior(net, xa, Y, xb, noise=0.1, samples=10, seed=-1)
    with pytest.raises(MonteCarloError, match="singular"):  # width 1 < P_A with no noise: Ĝ_AA has rank 1
        nnft.montecarlo.posterior(nnft.MLP("tanh", depth=2, width=1, C_b=0.0, n_out=2), xa, Y, xb, noise=0.0,
                                  samples=10)


def _errors(act: str, C_W: float, C_b: float, widths, samples: int, data):
    xa, Y, xb = data
    out = []
    for n in widths:
        net = nnft.MLP(act, depth=3, width=n, C_W=C_W, C_b=C_b, n_out=2)
        mc = nnft.montecarlo.posterior(net, xa, Y, xb, noise=0.1, samples=samples, seed=100 + n)
        p0 = nnft.posterior(net, xa, Y, xb, noise=0.1)
        p1 = nnft.posterior(net, xa, Y, xb, noise=0.1, order=1)
        out.append((n, mc, p0, p1))
    return out


def _rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


@pytest.mark.slow
@pytest.mark.parametrize("act,C_W,C_b", [("tanh", 1.5, 0.1), ("relu", 2.0, 0.05)])
def test_order1_beats_order0_and_the_rest_falls_like_inverse_width_squared(act, C_W, C_b, data):
    """Measured (seed 100 + n, 2e5 networks): tanh cov rms error order 0 → 1: 6.4e-2 → 1.7e-2 (n = 16),
    3.5e-2 → 5.1e-3 (32), 1.9e-2 → 1.4e-3 (64); successive ratios of the order-1 residual 3.3–3.7 (1/n² gives 4,
    1/n gives 2); relu alike (docs/inference.md)."""
    runs = _errors(act, C_W, C_b, (16, 32, 64), 200_000, data)
    prev = None
    for k, (n, mc, p0, p1) in enumerate(runs):
        res = {}
        for what in ("mean", "cov"):
            e0 = getattr(p0, what) - getattr(mc, what)
            e1 = getattr(p1, what) - getattr(mc, what)
            se = getattr(mc, f"{what}_stderr")
            assert _rms(e0 / se) > 5, (act, n, what)  # order 0 is resolved as wrong
            assert _rms(e1) < _rms(e0), (act, n, what, _rms(e1), _rms(e0))
            if k == len(runs) - 1:
                assert _rms(e1) < 0.3 * _rms(e0), (act, n, what, _rms(e1), _rms(e0))
            res[what] = (_rms(e1), _rms(se))
        # the cross-output covariance exists only at finite width: order 0 says 0
        assert np.max(np.abs(mc.cov[0, :, 1, :] / mc.cov_stderr[0, :, 1, :])) > 10
        e_ll0 = p0.log_marginal_likelihood - mc.log_marginal_likelihood
        e_ll1 = p1.log_marginal_likelihood - mc.log_marginal_likelihood
        assert abs(e_ll1) < abs(e_ll0)
        res["ll"] = (abs(e_ll1), mc.log_marginal_likelihood_stderr)
        if prev is not None:  # the order-1 residual falls like 1/n² where it is resolved
            for what in ("cov", "ll"):
                (e_prev, _), (e_now, se) = prev[what], res[what]
                if e_now > 6 * se:
                    assert 2.6 < e_prev / e_now < 6.0, (act, n, what, e_prev / e_now)
                else:
                    assert e_prev > 2.6 * (e_now - 2 * se), (act, n, what)
        prev = res
