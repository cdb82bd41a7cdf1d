"""NNGP and NTK over data: against independent recursions, edge-case inputs, backends and Dask."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnft
from nnft.network import NetworkError

# --------------------------------------------------------------------------- independent references


def _ref_relu(x, L, C_b, C_W, lb=None, lw=None):
    """Plain-numpy arc-cosine recursion (Cho & Saul 2009; PDLT §5) written independently of nnft."""
    lb = C_b if lb is None else lb
    lw = C_W if lw is None else lw
    G = x @ x.T / x.shape[1]
    K = C_b + C_W * G
    T = lb + lw * G
    for _ in range(L - 1):
        dd = np.sqrt(np.outer(np.diag(K), np.diag(K)))  # sqrt(k*k) == k: c is exactly 1 on the diagonal
        c = np.clip(K / dd, -1, 1)
        th = np.arccos(c)
        E = dd * (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi)
        Ed = (np.pi - th) / (2 * np.pi)
        K, T = C_b + C_W * E, lb + lw * E + C_W * Ed * T
    return K, T


def _ref_erf(x, L, C_b, C_W):
    """Plain-numpy arcsine recursion (Williams 1996) written independently of nnft."""
    G = x @ x.T / x.shape[1]
    K = C_b + C_W * G
    T = C_b + C_W * G
    for _ in range(L - 1):
        d = 1 + 2 * np.diag(K)
        E = 2 / np.pi * np.arcsin(2 * K / np.sqrt(np.outer(d, d)))
        Ed = 4 / np.pi / np.sqrt(np.outer(d, d) - 4 * K**2)
        K, T = C_b + C_W * E, C_b + C_W * E + C_W * Ed * T
    return K, T


@pytest.fixture
def x(rng):
    return rng.standard_normal((9, 5))


@pytest.mark.parametrize("L", [1, 2, 4, 7])
def test_relu_matches_independent_recursion(x, L):
    """ReLU K and Θ agree with an independent arc-cosine recursion to 1e-12."""
    net = nnft.MLP("relu", depth=L, C_b=0.1, C_W=2.0, lambda_b=0.3, lambda_W=1.5)
    K, T = _ref_relu(x, L, 0.1, 2.0, 0.3, 1.5)
    np.testing.assert_allclose(net.nngp(x), K, rtol=1e-12, atol=0)
    np.testing.assert_allclose(net.ntk(x), T, rtol=1e-12, atol=0)


@pytest.mark.parametrize("L", [2, 5])
def test_erf_matches_independent_recursion(x, L):
    """erf K and Θ agree with an independent arcsine recursion to 1e-12."""
    net = nnft.MLP("erf", depth=L, C_b=0.2, C_W=1.7)
    K, T = _ref_erf(x, L, 0.2, 1.7)
    np.testing.assert_allclose(net.nngp(x), K, rtol=1e-12)
    np.testing.assert_allclose(net.ntk(x), T, rtol=1e-12)


def test_linear_network_is_exact(x):
    """For σ = z, K^{(ℓ+1)} = C_b + C_W K^{(ℓ)} and Θ^{(ℓ+1)} = λ_b + λ_W K^{(ℓ)} + C_W Θ^{(ℓ)} exactly."""
    cb, cw = [0.1, 0.2, 0.3], [1.1, 0.9, 1.3]
    net = nnft.MLP("linear", depth=3, C_b=cb, C_W=cw)
    kern = net.kernels(x)
    G = x @ x.T / x.shape[1]
    K = cb[0] + cw[0] * G
    T = cb[0] + cw[0] * G
    for ell in range(1, 3):
        K, T = cb[ell] + cw[ell] * K, cb[ell] + cw[ell] * K + cw[ell] * T
        np.testing.assert_allclose(kern.K[ell], K, rtol=1e-13)
        np.testing.assert_allclose(kern.Theta[ell], T, rtol=1e-13)


def test_per_layer_parameters_are_used_in_order(x):
    """A per-layer C_W list gives the same result as applying the layers one by one."""
    net = nnft.MLP("relu", depth=3, C_b=[0.0, 0.5, 0.1], C_W=[1.0, 2.0, 3.0])
    K = net.nngp(x)
    G = x @ x.T / x.shape[1]
    K1 = G
    d = np.sqrt(np.outer(np.diag(K1), np.diag(K1)))
    th = np.arccos(np.clip(K1 / d, -1, 1))
    K2 = 0.5 + 2.0 * d * (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi)
    d = np.sqrt(np.outer(np.diag(K2), np.diag(K2)))
    th = np.arccos(np.clip(K2 / d, -1, 1))
    K3 = 0.1 + 3.0 * d * (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi)
    np.testing.assert_allclose(K, K3, rtol=1e-12)


def test_kernels_shapes_and_layers(x):
    """net.kernels returns (L, P, P) arrays whose last layer is nngp/ntk."""
    net = nnft.MLP("erf", depth=4, C_W=1.5)
    kern = net.kernels(x)
    assert kern.K.shape == kern.Theta.shape == (4, 9, 9)
    np.testing.assert_allclose(kern.nngp, net.nngp(x), rtol=1e-13)
    np.testing.assert_allclose(kern.ntk, net.ntk(x), rtol=1e-13)
    assert "Kernels" in repr(kern) and "<table>" in kern._repr_html_()


# --------------------------------------------------------------------------- numerically delicate inputs


@pytest.mark.parametrize("act", ["relu", "erf", "abs", "leaky_relu", "tanh", "gelu", "sin"])
def test_duplicate_zero_and_nearly_parallel_inputs(act, rng):
    """Duplicates reproduce the diagonal bit for bit; the zero input and near-parallel pairs give no NaN."""
    x = rng.standard_normal((6, 4))
    x[3] = x[1]
    x[4] = 0.0
    x[5] = x[0] + 1e-9 * rng.standard_normal(4)
    for cb in (0.0, 0.1):
        net = nnft.MLP(act, depth=4, C_b=cb, C_W=1.5)
        kern = net.kernels(x)
        for arr in (kern.K, kern.Theta):
            assert np.all(np.isfinite(arr))
            np.testing.assert_array_equal(arr, np.swapaxes(arr, 1, 2))
            assert np.all(arr[:, 1, 3] == arr[:, 1, 1])
            assert np.all(arr[:, 3, 3] == arr[:, 1, 1])
        # nearly parallel: close to the diagonal value, never above the Cauchy–Schwarz bound
        K = kern.K[-1]
        assert K[0, 5] <= np.sqrt(K[0, 0] * K[5, 5]) * (1 + 1e-12)
        assert abs(K[0, 5] - K[0, 0]) <= 1e-6 * abs(K[0, 0]) + 1e-12


def test_relu_nearly_parallel_ntk_accuracy():
    """At a correlation 1 − 1e-12 the ReLU NTK is within 1e-5 of its coincident limit (√eps conditioning)."""
    x = np.array([[1.0, 0.0], [1.0, 1.4e-6]])
    net = nnft.MLP("relu", depth=3, C_W=2.0)
    T = net.ntk(x)
    assert np.all(np.isfinite(T))
    assert abs(T[0, 1] / T[0, 0] - 1) < 1e-5


def test_zero_input_with_zero_bias_is_defined():
    """With C_b = 0 the zero input has K = 0 in every layer and a finite Θ (σ'(0) = Θ(0) = 1/2 convention)."""
    x = np.array([[0.0, 0.0], [1.0, 2.0]])
    kern = nnft.MLP("relu", depth=3, C_b=0.0, C_W=2.0).kernels(x)
    assert np.all(kern.K[:, 0, :] == 0)
    assert np.all(np.isfinite(kern.Theta))


# --------------------------------------------------------------------------- backends and Dask


@pytest.mark.parametrize("act", ["relu", "erf", "leaky_relu(0.2)", "abs", "sin", "cos", "exp", "linear", "monomial(3)"])
def test_numba_backend_agrees_with_numpy(act, rng):
    """The numba backend agrees with the numpy backend to 1e-12 for every closed-form map."""
    x = rng.standard_normal((40, 3)) * (0.3 if act in ("exp", "monomial(3)") else 1.0)
    net = nnft.MLP(act, depth=3, C_b=0.05, C_W=0.8)
    a = net.kernels(x, backend="numpy")
    b = net.kernels(x, backend="numba")
    np.testing.assert_allclose(b.K, a.K, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(b.Theta, a.Theta, rtol=1e-12, atol=1e-300)


def test_numba_backend_refuses_quadrature_maps(x):
    """Maps with no closed form need the numpy backend; numba says so."""
    with pytest.raises(TypeError, match="backend='numpy'"):
        nnft.MLP("tanh", depth=2).nngp(x, backend="numba")


@pytest.mark.parametrize("chunks", [1, 4, 7, 100])
def test_dask_chunks_equal_in_memory(chunks, rng):
    """net.nngp/ntk(x, chunks=c) is a dask array equal to the in-memory kernel (duplicates across blocks too)."""
    x = rng.standard_normal((13, 3))
    x[11] = x[2]
    net = nnft.MLP("relu", depth=4, C_b=0.1, C_W=2.0)
    K = net.nngp(x)
    Kd = net.nngp(x, chunks=chunks)
    assert hasattr(Kd, "dask") and Kd.shape == (13, 13)
    np.testing.assert_allclose(Kd.compute(), K, rtol=1e-14)
    np.testing.assert_allclose(net.ntk(x, chunks=chunks).compute(), net.ntk(x), rtol=1e-14)
    Kc = Kd.compute()
    assert Kc[2, 11] == Kc[2, 2]


def test_dask_blocks_can_be_computed_alone(rng):
    """One block of a large lazy kernel is computed without the rest (out-of-core use)."""
    x = rng.standard_normal((400, 3))
    Kd = nnft.MLP("erf", depth=3).nngp(x, chunks=100)
    blk = Kd[100:200, 300:400].compute()
    full = nnft.MLP("erf", depth=3).nngp(x)
    np.testing.assert_allclose(blk, full[100:200, 300:400], rtol=1e-14)


def test_tiles_and_threads_do_not_change_the_result(rng):
    """Small tiles (many threaded tasks) give the same kernel as one tile."""
    from nnft.numeric.kernels import layer_kernels

    x = rng.standard_normal((50, 4))
    net = nnft.MLP("relu", depth=3, C_W=2.0)
    x[40] = x[3]  # a duplicate in another tile
    a = layer_kernels(net, x, tile=7)
    b = layer_kernels(net, x, tile=1000)
    # BLAS rounds x_a·x_b by matrix shape: agreement to rounding, relative to the kernel's scale
    np.testing.assert_allclose(a.K, b.K, rtol=1e-13, atol=1e-14 * np.abs(b.K).max())
    np.testing.assert_allclose(a.Theta, b.Theta, rtol=1e-13, atol=1e-14 * np.abs(b.Theta).max())
    assert np.all(a.Theta[:, 3, 40] == a.Theta[:, 3, 3])


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"depth": 0}, "depth must be >= 1"),
        ({"depth": 2.5}, "depth must be an integer"),
        ({"width": 0}, "width"),
        ({"depth": 3, "width": [4]}, "hidden widths"),
        ({"C_W": -1.0}, "C_W must be >= 0"),
        ({"C_b": -0.1}, "C_b must be >= 0"),
        ({"C_b": float("nan")}, "finite"),
        ({"depth": 2, "C_W": [1.0, 2.0, 3.0]}, "entries but the network has depth 2"),
        ({"activation": "rleu"}, "did you mean"),
        ({"activation": "x*tanh(z)"}, "function of z alone"),
        ({"n_out": 0}, "n_out"),
    ],
)
def test_bad_network_descriptions_raise(kwargs, match):
    """Invalid descriptions raise NetworkError with a message that names the problem."""
    with pytest.raises(NetworkError, match=match):
        nnft.MLP(**{"activation": "relu", "depth": 2, **kwargs})


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.ones(3), r"shape \(P, n_0\).*x\[None, :\]"),
        (np.ones((2, 2, 2)), r"shape \(P, n_0\)"),
        (np.array([[1.0, np.nan]]), "NaN or inf"),
        (np.array([[1.0, np.inf]]), "NaN or inf"),
        (np.ones((0, 3)), "at least one sample"),
        ([["a", "b"]], "numeric array"),
    ],
)
def test_bad_inputs_raise(bad, match):
    """Wrong shapes and non-finite inputs raise NetworkError before any work."""
    with pytest.raises(NetworkError, match=match):
        nnft.MLP("relu", depth=2).nngp(bad)


def test_ntk_of_a_jump_activation_is_refused(x):
    """step has σ' = δ: its NTK does not exist, and the error says to use the NNGP."""
    from nnft.recursions import NTKUndefinedError

    net = nnft.MLP("step", depth=3)
    assert np.all(np.isfinite(net.nngp(x)))
    with pytest.raises(NTKUndefinedError, match="net.nngp"):
        net.ntk(x)


def test_overflow_is_reported_not_returned():
    """A kernel that overflows (exp activation, large C_W, depth) raises instead of returning inf."""
    x = np.full((2, 2), 3.0)
    with pytest.raises(FloatingPointError, match="not finite"):
        nnft.MLP("exp", depth=6, C_W=5.0).nngp(x)


def _relu_ntk_mpmath(x, L, C_b, C_W):
    """ReLU (K, Θ) of the output layer in 50-digit arithmetic, for accuracy checks."""
    import mpmath as mp

    mp.mp.dps = 50
    X = [[mp.mpf(float(v)) for v in row] for row in x]
    n0, P = len(X[0]), len(X)
    K = [[C_b + C_W * mp.fsum(X[i][k] * X[j][k] for k in range(n0)) / n0 for j in range(P)] for i in range(P)]
    T = [row[:] for row in K]
    for _ in range(L - 1):
        s = [[mp.sqrt(K[i][i] * K[j][j]) for j in range(P)] for i in range(P)]
        th = [[mp.acos(max(-1, min(1, K[i][j] / s[i][j]))) for j in range(P)] for i in range(P)]
        E = [[s[i][j] * (mp.sin(th[i][j]) + (mp.pi - th[i][j]) * mp.cos(th[i][j])) / (2 * mp.pi) for j in range(P)]
             for i in range(P)]
        T = [[C_b + C_W * E[i][j] + C_W * (mp.pi - th[i][j]) / (2 * mp.pi) * T[i][j] for j in range(P)]
             for i in range(P)]
        K = [[C_b + C_W * E[i][j] for j in range(P)] for i in range(P)]
    return np.array(K, dtype=float), np.array(T, dtype=float)


def test_exact_opposites_and_near_parallel_pairs_are_accurate(rng):
    """x and −x (even across BLAS positions) and pairs at angle 1e-6 match 50-digit arithmetic."""
    x = rng.standard_normal((12, 5))
    x[11] = -x[6]
    x[10] = x[4] + 1e-6 * rng.standard_normal(5)
    for cb, cw in ((0.0, 2.0), (0.3, 1.2)):
        K, T = nnft.MLP("relu", depth=4, C_b=cb, C_W=cw).kernels(x).K[-1], nnft.MLP(
            "relu", depth=4, C_b=cb, C_W=cw).ntk(x)
        Kx, Tx = _relu_ntk_mpmath(x, 4, cb, cw)
        np.testing.assert_allclose(K, Kx, rtol=1e-13, atol=1e-15)
        # the angle of a pair at 1e-6 is known to eps/θ² ≈ 1e-4 relative from float64 data: Θ to ~1e-10
        np.testing.assert_allclose(T, Tx, rtol=1e-9)
        assert abs(T[6, 11] / Tx[6, 11] - 1) < 1e-14


def test_last_layer_only_in_one_pass(rng):
    """kernels(x, layers='last') gives the output K and Θ of the all-layer call, as (1, P, P) arrays."""
    x = rng.standard_normal((20, 3))
    net = nnft.MLP("erf", depth=5, C_b=0.1, C_W=1.4)
    last = net.kernels(x, layers="last")
    full = net.kernels(x)
    assert last.K.shape == (1, 20, 20) and last.layers == (5,)
    np.testing.assert_allclose(last.nngp, full.nngp, rtol=1e-14)
    np.testing.assert_allclose(last.ntk, full.ntk, rtol=1e-14)
    k3, t3 = full.layer(3)
    np.testing.assert_array_equal(k3, full.K[2])
    with pytest.raises(ValueError, match="was not kept"):
        last.layer(3)
    with pytest.raises(ValueError, match="'all' or 'last'"):
        net.kernels(x, layers="some")


def test_dask_graph_computes_only_the_upper_triangle(rng):
    """The lazy kernel has one tile task per upper block; lower blocks are transposes (half the work)."""
    x = rng.standard_normal((40, 3))
    Kd = nnft.MLP("relu", depth=3, C_W=2.0).nngp(x, chunks=10)
    tasks = dict(Kd.__dask_graph__())
    tiles = [v for v in tasks.values() if isinstance(v, tuple) and getattr(v[0], "__name__", "") == "_dask_block"]
    assert len(tiles) == 4 * 5 // 2
    K = Kd.compute()
    np.testing.assert_array_equal(K, K.T)


# --------------------------------------------------------------------------- properties (hypothesis)


_ACTS = st.sampled_from(["relu", "erf", "abs", "leaky_relu(0.2)", "gelu", "sin", "linear"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(act=_ACTS, depth=st.integers(1, 6), cb=st.floats(0.0, 1.0), cw=st.floats(0.1, 2.5),
       seed=st.integers(0, 2**16), P=st.integers(1, 12))
def test_kernels_are_symmetric_psd_and_finite(act, depth, cb, cw, seed, P):
    """K and Θ are finite, exactly symmetric and positive semi-definite for any inputs (they are covariances)."""
    x = np.random.default_rng(seed).standard_normal((P, 3))
    kern = nnft.MLP(act, depth=depth, C_b=cb, C_W=cw).kernels(x, layers="last")
    for M in (kern.nngp, kern.ntk):
        assert np.all(np.isfinite(M))
        np.testing.assert_array_equal(M, M.T)
        w = np.linalg.eigvalsh(M)
        assert w.min() >= -1e-12 * max(1.0, abs(w).max())


def test_lazy_kernel_pickles_for_dask_workers(rng):
    """The block plan pickles without its generated module and rebuilds it (workers in other processes)."""
    import pickle

    from nnft.numeric.kernels import _Plan

    x = rng.standard_normal((9, 3))
    plan = _Plan(nnft.MLP("relu", depth=3, C_W=2.0), x, True, "numpy")
    clone = pickle.loads(pickle.dumps(plan))
    a, _ = plan.tile(slice(0, 9), slice(0, 9), False)
    b, _ = clone.tile(slice(0, 9), slice(0, 9), False)
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_lazy_kernel_on_a_process_cluster(rng):
    """net.nngp(x, chunks=c) computes on a LocalCluster with worker processes, equal to in-memory."""
    distributed = pytest.importorskip("distributed")
    x = rng.standard_normal((30, 3))
    net = nnft.MLP("erf", depth=3, C_W=1.5)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            distributed.Client(lc):
        K = net.nngp(x, chunks=8).compute()
    np.testing.assert_allclose(K, net.nngp(x), rtol=1e-14)


def test_divergent_gaussian_average_is_reported():
    """σ = exp(z²/4): ⟨σ²⟩_K diverges for K ≥ 1, and nnft says so instead of returning a truncated integral."""
    assert nnft.activation("exp(z**2/4)").gaussian_growth == pytest.approx(0.25, rel=1e-3)
    assert nnft.activation("exp").gaussian_growth == 0.0
    with pytest.raises(FloatingPointError, match="diverges"):
        nnft.MLP("exp(z**2/4)", depth=2).nngp(2 * np.eye(2))
    K = nnft.MLP("exp(z**2/4)", depth=2, C_W=0.1).nngp(np.eye(2))
    assert np.all(np.isfinite(K))


def test_more_bad_inputs():
    """Complex inputs, 0-d array parameters and unknown functions in expressions are handled clearly."""
    with pytest.raises(NetworkError, match="real"):
        nnft.MLP("relu", depth=2).nngp(np.ones((2, 2)) * (1 + 1j))
    assert nnft.MLP("relu", depth=2, C_W=np.array(2.0)).C_W == (2.0, 2.0)
    with pytest.raises(NetworkError, match="real number"):
        nnft.MLP("relu", depth=2, C_W=[1.0, 1 + 2j])
    with pytest.raises(nnft.ActivationError, match="unknown function"):
        nnft.activation("relu(z)")
    assert nnft.activation("leaky_relu(a=0.1)").expr == nnft.activation("leaky_relu", a=0.1).expr


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("scale", [1e-150, 1e-100, 1.0, 1e100, 1e150])
def test_kernels_at_extreme_scales(scale, backend):
    """ReLU (C_b = 0) is homogeneous: K(s·x) = s² K(x) even where K_αα K_ββ under- or overflows."""
    x = np.array([[1.0, 0.0], [0.6, 0.8], [-0.3, 0.2]])
    net = nnft.MLP("relu", depth=4, C_W=2.0)
    ref = net.kernels(x, backend=backend)
    got = net.kernels(x * scale, backend=backend)
    np.testing.assert_allclose(got.K / scale**2, ref.K, rtol=1e-13)
    assert np.all(np.isfinite(got.Theta))
