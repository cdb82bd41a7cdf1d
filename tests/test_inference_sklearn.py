"""nnft.inference.sklearn: the NNGP/NTK as scikit-learn kernels — values, gradients, GPR round trip, errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.gaussian_process import GaussianProcessRegressor  # noqa: E402
from sklearn.gaussian_process.kernels import WhiteKernel  # noqa: E402

import nnft  # noqa: E402
from nnft.errors import InputError  # noqa: E402
from nnft.inference.sklearn import NNGPKernel, NTKKernel  # noqa: E402


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(7, 3))


@pytest.mark.parametrize("cls,method", [(NNGPKernel, "nngp"), (NTKKernel, "ntk")])
def test_values_are_the_network_kernels(cls, method, X):
    k = cls("tanh", depth=3, C_W=1.7, C_b=0.2)
    net = nnft.MLP("tanh", depth=3, width=8, C_W=1.7, C_b=0.2)
    full = getattr(net, method)(X)
    np.testing.assert_allclose(k(X), full, atol=1e-13)
    np.testing.assert_allclose(k(X[:4], X[4:]), full[:4, 4:], atol=1e-13)
    np.testing.assert_allclose(k.diag(X), np.diag(full), atol=1e-13)
    assert not k.is_stationary()


def test_kernel_of_a_network_as_the_issue_names_it(X):
    """``nnft.sklearn.NNGPKernel(net)``: the network's activation and depth, its C_W and C_b as start values."""
    import nnft.sklearn

    net = nnft.MLP("erf", depth=3, width=32, C_W=1.6, C_b=0.05, n_out=2)
    k = nnft.sklearn.NNGPKernel(net)
    np.testing.assert_allclose(np.exp(k.theta), [1.6, 0.05])
    np.testing.assert_allclose(k(X), net.nngp(X), atol=1e-13)
    np.testing.assert_allclose(nnft.sklearn.NTKKernel(net)(X), net.ntk(X), atol=1e-13)
    moved = nnft.sklearn.NNGPKernel(net, C_W=2.0)
    np.testing.assert_allclose(moved(X), nnft.MLP("erf", depth=3, C_W=2.0, C_b=0.05).nngp(X), atol=1e-13)
    c = clone(k)
    assert repr(c.get_params()["net"]) == repr(net)  # clone deep-copies the network
    np.testing.assert_allclose(c(X), k(X))
    assert repr(k) == "NNGPKernel(activation='erf', depth=3, C_W=1.6, C_b=0.05)"
    with pytest.raises(InputError, match="differs between layers"):
        nnft.sklearn.NNGPKernel(nnft.MLP("erf", depth=2, C_W=[1.0, 2.0]))
    with pytest.raises(InputError, match="depth"):
        nnft.sklearn.NNGPKernel(net, depth=2)
    with pytest.raises(InputError, match="MLP or an activation"):
        nnft.sklearn.NNGPKernel(3.0)


def test_gradient_against_the_closed_form_of_a_linear_network(X):
    """σ = z, L = 2: K = C_b + C_W (C_b + C_W x·x'/n_0), so ∂K/∂log C_W = C_W C_b + 2 C_W² x·x'/n_0."""
    cw, cb = 1.4, 0.3
    K, G = NNGPKernel("linear", depth=2, C_W=cw, C_b=cb)(X, eval_gradient=True)
    g = X @ X.T / 3
    assert G.shape == (7, 7, 2)
    np.testing.assert_allclose(G[..., 0], cw * cb + 2 * cw ** 2 * g, atol=1e-9)
    np.testing.assert_allclose(G[..., 1], cb * (1 + cw), atol=1e-9)


def test_gradient_of_a_nonlinear_kernel_is_step_independent(X):
    k = NTKKernel("gelu", depth=3, C_W=1.3, C_b=0.1)
    _, G = k(X, eval_gradient=True)
    th = k.theta.copy()
    for i in range(2):
        h = 2e-4
        up, dn = th.copy(), th.copy()
        up[i] += h
        dn[i] -= h
        ref = (k.clone_with_theta(up)(X) - k.clone_with_theta(dn)(X)) / (2 * h)
        np.testing.assert_allclose(G[..., i], ref, rtol=1e-6, atol=1e-9)
    _, G1 = NNGPKernel("tanh", depth=2, C_b=0.2, C_b_bounds="fixed")(X, eval_gradient=True)
    assert G1.shape == (7, 7, 1)


def test_gpr_round_trip_equals_nnft_posterior_and_fits_by_evidence():
    rng = np.random.default_rng(4)
    x = rng.uniform(-2, 2, size=(40, 1))
    truth = nnft.MLP("tanh", depth=2, width=8, C_W=2.5, C_b=0.05)
    K = truth.nngp(x)
    y = np.linalg.cholesky(K + 1e-2 * np.eye(40)) @ rng.normal(size=40)
    xt = np.linspace(-2, 2, 5)[:, None]
    kern = NNGPKernel("tanh", depth=2, C_W=2.5, C_b=0.05)
    gpr = GaussianProcessRegressor(kernel=kern, alpha=1e-2, optimizer=None).fit(x, y)
    mean, cov = gpr.predict(xt, return_cov=True)
    post = nnft.posterior(truth, x, y, xt, noise=1e-2)
    np.testing.assert_allclose(mean, post.mean[:, 0], atol=1e-9)
    np.testing.assert_allclose(cov, post.cov[0, :, 0, :], atol=1e-9)
    assert gpr.log_marginal_likelihood_value_ == pytest.approx(post.log_marginal_likelihood, abs=1e-8)
    # fitting from a wrong start, by the gradient above, reaches at least the evidence of the truth and
    # recovers the noise level
    start = NNGPKernel("tanh", depth=2, C_W=0.5, C_b=0.5) + WhiteKernel(0.1)
    fit = GaussianProcessRegressor(kernel=start, random_state=0).fit(x, y)
    at_truth = GaussianProcessRegressor(kernel=kern + WhiteKernel(1e-2), optimizer=None).fit(x, y)
    at_start = GaussianProcessRegressor(kernel=start, optimizer=None).fit(x, y)
    assert fit.log_marginal_likelihood_value_ > at_start.log_marginal_likelihood_value_ + 5
    assert fit.log_marginal_likelihood_value_ >= at_truth.log_marginal_likelihood_value_ - 1e-6
    assert 3e-3 < fit.kernel_.k2.noise_level < 3e-2


def test_sklearn_protocol(X):
    k = NNGPKernel("relu", depth=3, C_W=2.0, C_b=0.1)
    assert [h.name for h in k.hyperparameters] == ["C_W", "C_b"]
    np.testing.assert_allclose(np.exp(k.theta), [2.0, 0.1])
    c = clone(k)
    assert c.get_params() == k.get_params()
    np.testing.assert_allclose(c(X), k(X))
    assert "NNGPKernel(activation='relu'" in repr(k)


def test_bad_input(X):
    k = NNGPKernel("tanh", depth=2)
    with pytest.raises(InputError, match="reshape"):
        k(X[:, 0])
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        k(bad)
    with pytest.raises(InputError, match="features"):
        k(X, X[:, :2])
    with pytest.raises(InputError, match="C_b"):
        NNGPKernel("tanh", depth=2, C_b=0.0)(X, eval_gradient=True)
    with pytest.raises(InputError, match="variance"):
        NNGPKernel("tanh", depth=2, C_W=-1.0)(X)
