"""Tests of the Monte Carlo engine (nnft.montecarlo) against exact references.

Exact references used (derived in docs/montecarlo.md; the last layer is conditionally Gaussian with
variance s = C_b + (C_W/n) Σ_j σ(z_j)² given the layer below):
- first layer exactly Gaussian: every connected function above two points vanishes, G = K^{(1)};
- deep linear, C_b = 0: E[s^k]/E[s]^k multiplies by (1 + 2/n)(1 + 4/n)⋯(1 + 2(k−1)/n) per hidden layer, so
  E[z⁴]/(3E[z²]²) = Π_ℓ (1 + 2/n_ℓ) and E[z⁶]/(15E[z²]³) = Π_ℓ (1 + 2/n_ℓ)(1 + 4/n_ℓ);
- ReLU, C_b = 0, C_W = 2: E[z²] = K exactly and E[z⁴]/(3E[z²]²) = Π_ℓ (1 + 5/n_ℓ) (E[relu(u)⁴] = 3K²/2);
- one input, any σ: E[z_i² z_j²]_c = E[s²] − E[s]² = E[z_i⁴]_c / 3 and E[z_i⁴z_j²] = 3E[s³], E[z_i²z_j²z_k²] = E[s³].
"""

import json
import math
import warnings

import numpy as np
import pytest

import nnft
from nnft.errors import DivergenceError
from nnft.montecarlo import (
    MonteCarloError,
    NoisyEstimateWarning,
    empirical_ntk,
    estimate,
    fit_inverse_width,
)

X1 = np.array([[0.8, -1.1, 0.4]])  # one input, n_0 = 3
K1_LIN = float((X1 @ X1.T)[0, 0]) / 3


def _quiet(**kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoisyEstimateWarning)
        return estimate(**kw)


def _identical(a, b) -> bool:
    """Bit-identical results: every value and stderr array equal, NaN where NaN (no tolerance)."""
    if a.layers != b.layers:
        return False
    for ell in a.layers:
        sa, sb = a.at(ell), b.at(ell)
        if sa.keys() != sb.keys():
            return False
        for k in sa:
            for f in ("value", "stderr"):
                x, y = getattr(sa[k], f), getattr(sb[k], f)
                if x.shape != y.shape or x.tobytes() != y.tobytes():
                    return False
    return True


def _linear_moments(K: float, widths, k: int) -> float:
    """E[s^k]/E[s]^k of the output-layer conditional variance of a deep linear net (C_b = 0)."""
    return math.prod(math.prod(1 + 2 * j / n for j in range(1, k)) for n in widths)


def _linear_six(K: float, widths) -> np.ndarray:
    R2, R3 = _linear_moments(K, widths, 2), _linear_moments(K, widths, 3)
    # iiiiii: 15R3 − 45R2 + 30;  iiiijj: 3R3 − 3R2 − 6R2 + 6;  iijjkk: R3 − 3R2 + 2   (times K³)
    return K**3 * np.array([15 * R3 - 45 * R2 + 30, 3 * R3 - 9 * R2 + 6, R3 - 3 * R2 + 2])


# ----------------------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors():
    net = nnft.MLP("tanh", depth=2, width=4)
    x = np.ones((2, 3))
    with pytest.raises(MonteCarloError, match="samples must be >= 2"):
        estimate(net, x, samples=1)
    with pytest.raises(MonteCarloError, match="batch_size must be >= 1"):
        estimate(net, x, samples=10, batch_size=0)
    with pytest.raises(MonteCarloError, match="whole number"):
        estimate(net, x, samples=10.5)
    with pytest.raises(MonteCarloError, match="layers are numbered 1..2"):
        estimate(net, x, samples=10, layers=3)
    with pytest.raises(MonteCarloError, match="unknown statistic"):
        estimate(net, x, samples=10, statistics="V")
    with pytest.raises(MonteCarloError, match="explicit"):
        estimate(net, x, samples=10, statistics="ntk", sampler="conditional")
    with pytest.raises(MonteCarloError, match="nnft.MLP"):
        estimate("tanh", x, samples=10)
    with pytest.raises(nnft.NetworkError, match="shape"):
        estimate(net, np.ones(3), samples=10)
    with pytest.raises(nnft.NetworkError, match="width"):
        nnft.MLP("tanh", depth=3, width=[4, 0])
    with pytest.raises(MonteCarloError, match="backend"):
        estimate(net, x, samples=10, backend="spark")


def test_samples_given_as_float_like_1e4_are_accepted():
    r = _quiet(net=nnft.MLP("tanh", depth=2, width=4), x=X1, samples=1e3, statistics="G")
    assert r.samples == 1000


# ----------------------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("sampler", ["conditional", "explicit"])
def test_bit_identical_for_any_batch_size_and_threads(sampler):
    net = nnft.MLP("tanh", depth=3, width=6, C_b=0.1, C_W=1.5, n_out=3)
    x = np.random.default_rng(0).standard_normal((3, 4))
    stats = ("G", "four_point", "six_point") + (("ntk",) if sampler == "explicit" else ())
    runs = [
        _quiet(net=net, x=x, samples=301, seed=9, sampler=sampler, batch_size=bs, workers=w, groups=7,
               statistics=stats)
        for bs, w in [(None, 1), (1, 2), (13, 1), (1000, 2)]
    ]
    assert all(_identical(r, runs[0]) for r in runs[1:])
    other = _quiet(net=net, x=x, samples=301, seed=10, sampler=sampler, groups=7, statistics=stats)
    assert not _identical(other, runs[0])


# ----------------------------------------------------------------------------- exact references
def test_first_layer_is_exactly_gaussian():
    """V^{(1)} = 0: all connected four- and six-point estimates at layer 1 are 0 within errors; G = K^{(1)}."""
    net = nnft.MLP("tanh", depth=3, width=5, C_b=0.3, C_W=1.7, n_out=2)
    x = np.random.default_rng(1).standard_normal((3, 4))
    with pytest.warns(NoisyEstimateWarning, match="four_point_same"):
        r = estimate(net, x, samples=20000, seed=2, layers=1)
    K1 = 0.3 + 1.7 * x @ x.T / 4
    assert np.max(np.abs(r.G.zscore(K1))) < 4
    for name in ("four_point_same", "four_point_cross", "six_point"):
        z = getattr(r, name).zscore(0.0)
        assert np.max(np.abs(z)) < 4.5, name
        assert getattr(r, name).noise_dominated
    # a non-zero V of the size the next layer has would be resolved: z ≫ 4 (the test can fail)
    r2 = _quiet(net=net, x=x, samples=20000, seed=2, layers=2)
    assert np.max(np.abs(r2.four_point_same.zscore(0.0))) > 8


@pytest.mark.slow
def test_deep_linear_exact_four_and_six_point():
    """C_b = 0 deep linear: E[z⁴]/(3E[z²]²) = Π(1 + 2/n_ℓ), six-point from Π(1 + 2/n)(1 + 4/n)."""
    zs, zwrong = [], []
    for widths in ([2], [3, 3], [4, 4, 4], [8, 8], [16], [3, 8, 5]):
        L = len(widths) + 1
        net = nnft.MLP("linear", depth=L, width=widths, C_b=0.0, C_W=1.0, n_out=6)
        r = estimate(net, X1, samples=100_000, seed=L * 100 + widths[0])
        K = K1_LIN
        k4 = 3 * K**2 * (_linear_moments(K, widths, 2) - 1)
        zs += [r.G.zscore(K).item(), r.four_point_same.zscore(k4).item(), r.four_point_cross.zscore(k4 / 3).item()]
        zs += list(r.six_point.zscore(_linear_six(K, widths)))
        # a wrong factor (1 + 3/n) instead of (1 + 2/n) is rejected by far
        wrong = 3 * K**2 * (math.prod(1 + 3 / n for n in widths) - 1)
        zwrong.append(abs(r.four_point_same.zscore(wrong).item()))
    assert np.max(np.abs(zs)) < 4, zs
    assert min(zwrong) > 6, zwrong


@pytest.mark.slow
def test_relu_exact_four_point_and_two_point():
    """ReLU, C_b = 0, C_W = 2: E[z²] = K exactly, E[z⁴]/(3E[z²]²) = Π(1 + 5/n_ℓ)."""
    zs, zwrong = [], []
    for widths in ([2], [3, 3], [4, 4, 4], [8, 8], [16], [6, 3]):
        L = len(widths) + 1
        net = nnft.MLP("relu", depth=L, width=widths, C_b=0.0, C_W=2.0, n_out=6)
        r = estimate(net, X1, samples=200_000, seed=7 * L + widths[0], statistics=("G", "four_point"))
        K = 2 * float((X1 @ X1.T)[0, 0]) / 3
        k4 = 3 * K**2 * (math.prod(1 + 5 / n for n in widths) - 1)
        zs += [r.G.zscore(K).item(), r.four_point_same.zscore(k4).item(), r.four_point_cross.zscore(k4 / 3).item()]
        # the Gaussian-like factor (1 + 2/n) is rejected: z ≫ 4
        wrong = 3 * K**2 * (math.prod(1 + 2 / n for n in widths) - 1)
        zwrong.append(abs(r.four_point_same.zscore(wrong).item()))
    assert np.max(np.abs(zs)) < 4, zs
    assert min(zwrong) > 6, zwrong


@pytest.mark.slow
def test_error_bars_are_calibrated_over_seeds():
    """Over 40 independent seeds the z-scores against exact values have spread ≈ 1, and the mean jackknife
    error matches the actual scatter of the estimates.

    Four-point estimates of small networks are heavy-tailed: at a few thousand networks their z-scores are
    skewed (mean ≈ −0.6, because a rare large sample inflates value and error together); with 5·10⁴
    networks, used here, the skew is gone. docs/montecarlo.md says so.
    """
    widths = [3, 3]
    net = nnft.MLP("linear", depth=3, width=widths, C_b=0.0, C_W=1.0, n_out=4)
    K = K1_LIN
    k4 = 3 * K**2 * (_linear_moments(K, widths, 2) - 1)
    exact = {"G": K, "four_point_same": k4, "four_point_cross": k4 / 3}
    vals = {k: [] for k in exact}
    errs = {k: [] for k in exact}
    for seed in range(40):
        r = _quiet(net=net, x=X1, samples=50_000, seed=1000 + seed, statistics=("G", "four_point"), groups=32)
        for k in exact:
            vals[k].append(getattr(r, k).value.item())
            errs[k].append(getattr(r, k).stderr.item())
    for k, ref in exact.items():
        v, e = np.asarray(vals[k]), np.asarray(errs[k])
        z = (v - ref) / e
        assert 0.7 < z.std() < 1.35, (k, z.std())
        assert abs(z.mean()) < 0.5, (k, z.mean())
        assert 0.75 < e.mean() / v.std() < 1.33, (k, e.mean() / v.std())


# ----------------------------------------------------------------------------- samplers agree
@pytest.mark.slow
def test_explicit_and_conditional_samplers_agree():
    net = nnft.MLP("tanh", depth=3, width=4, C_b=0.2, C_W=2.0, n_out=3)
    x = np.random.default_rng(3).standard_normal((2, 3))
    a = _quiet(net=net, x=x, samples=40_000, seed=1, sampler="explicit")
    b = _quiet(net=net, x=x, samples=40_000, seed=2, sampler="conditional")
    for name in ("G", "four_point_same", "four_point_cross", "six_point"):
        sa, sb = getattr(a, name), getattr(b, name)
        z = (sa.value - sb.value) / np.hypot(sa.stderr, sb.stderr)
        assert np.max(np.abs(z)) < 4.5, (name, z)
    # the four-point function is resolved here, so agreement is a real check
    assert np.max(np.abs(a.four_point_same.zscore(0.0))) > 10


# ----------------------------------------------------------------------------- NNGP at large width
def _closed_form_nngp(act: str, x: np.ndarray, depth: int, C_b: float, C_W: float) -> np.ndarray:
    K = C_b + C_W * x @ x.T / x.shape[1]
    for _ in range(depth - 1):
        d = np.sqrt(np.diag(K))
        if act == "relu":
            c = np.clip(K / np.outer(d, d), -1.0, 1.0)
            th = np.arccos(c)
            g = np.outer(d, d) * (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi)
        else:  # erf
            s = np.sqrt(1 + 2 * np.diag(K))
            g = 2 / np.pi * np.arcsin(2 * K / np.outer(s, s))
        K = C_b + C_W * g
    return K


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_width_1024_two_point_matches_closed_form_nngp(act):
    x = np.random.default_rng(4).standard_normal((5, 3))
    net = nnft.MLP(act, depth=3, width=1024, C_b=0.1, C_W=1.6, n_out=16)
    r = _quiet(net=net, x=x, samples=3000, seed=5, statistics="G")
    K = _closed_form_nngp(act, x, 3, 0.1, 1.6)
    z = r.G.zscore(K)
    assert np.max(np.abs(z)) < 4, z
    # a 5 % error in K is resolved (the test can fail)
    assert np.max(np.abs(r.G.zscore(1.05 * K))) > 6


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_width_1024_two_point_matches_net_nngp(act):
    """At width 1024 the two-point function agrees with the infinite-width net.nngp within error bars (P = 4)."""
    x = np.random.default_rng(4).standard_normal((4, 3))
    net = nnft.MLP(act, depth=3, width=1024, C_b=0.1, C_W=1.6, n_out=16)
    r = _quiet(net=net, x=x, samples=3000, seed=6, statistics="G")
    K = np.asarray(net.nngp(x))
    assert np.max(np.abs(r.G.zscore(K))) < 4


# ----------------------------------------------------------------------------- NTK
def _forward_scalar(net, params, x):
    h = x.T
    for i, (W, b) in enumerate(params):
        if i > 0:
            h = np.tanh(h)
        h = W @ h + b[:, None]
    return h  # (m, P)


def test_empirical_ntk_matches_finite_differences():
    net = nnft.MLP("tanh", depth=3, width=[3, 4], C_b=0.3, C_W=1.4, n_out=2, lambda_b=0.7, lambda_W=1.9)
    x = np.random.default_rng(5).standard_normal((2, 3))
    rng = np.random.default_rng(6)
    n = [3, 3, 4, 2]
    params = [(rng.standard_normal((n[i + 1], n[i])), rng.standard_normal(n[i + 1])) for i in range(3)]
    theta = empirical_ntk(net, x, params)
    h = 1e-6
    grads, lrs = [], []
    for li, (W, b) in enumerate(params):
        for arr, lr in ((W, net.lambda_W[li] / n[li]), (b, net.lambda_b[li])):
            for idx in np.ndindex(arr.shape):
                old = arr[idx]
                arr[idx] = old + h
                up = _forward_scalar(net, params, x)
                arr[idx] = old - h
                dn = _forward_scalar(net, params, x)
                arr[idx] = old
                grads.append((up - dn) / (2 * h))
                lrs.append(lr)
    Jm = np.stack(grads)  # (params, m, P)
    ref = np.einsum("p,pia,pjb->ijab", np.asarray(lrs), Jm, Jm)
    assert np.allclose(theta, ref, rtol=1e-7, atol=1e-8)


def test_ntk_mean_is_exact_for_deep_linear_networks():
    """Deep linear: J^{(ℓ)} and φ^{(ℓ−1)} are independent, so E[Θ̂] equals the infinite-width Θ at any width."""
    net = nnft.MLP("linear", depth=3, width=[3, 2], C_b=0.2, C_W=1.3, n_out=2, lambda_b=0.5, lambda_W=0.8)
    x = np.random.default_rng(7).standard_normal((3, 2))
    r = _quiet(net=net, x=x, samples=20000, seed=8, statistics=("G", "ntk"))
    K = 0.2 + 1.3 * x @ x.T / 2
    Th = 0.5 + 0.8 * x @ x.T / 2
    for _ in range(2):
        Th = 0.5 + 0.8 * K + 1.3 * Th
        K = 0.2 + 1.3 * K
    assert np.max(np.abs(r.ntk_mean.zscore(Th))) < 4
    assert np.max(np.abs(r.G.zscore(K))) < 4
    assert np.all(r.ntk_var.value[0, 0, 0, 0] > 4 * r.ntk_var.stderr[0, 0, 0, 0])  # fluctuations resolved
    assert np.max(np.abs(r.ntk_mean.zscore(1.03 * Th))) > 6


def test_single_layer_ntk_is_deterministic():
    net = nnft.MLP("tanh", depth=1, n_out=3)
    x = np.random.default_rng(9).standard_normal((2, 4))
    r = _quiet(net=net, x=x, samples=50, seed=1, statistics="ntk")
    Th = 1.0 * x @ x.T / 4  # λ_b = C_b = 0, λ_W = C_W = 1
    assert np.allclose(r.ntk_mean.value, Th, rtol=1e-13)
    assert np.allclose(r.ntk_var.value, 0, atol=1e-13)


# ----------------------------------------------------------------------------- Dask
@pytest.mark.slow
def test_dask_backend_is_bit_identical_to_in_process():
    distributed = pytest.importorskip("distributed")
    net = nnft.MLP("relu", depth=3, width=5, C_b=0.1, C_W=2.0, n_out=2)
    x = np.random.default_rng(2).standard_normal((2, 3))
    local = _quiet(net=net, x=x, samples=2000, seed=3, groups=8, statistics=("G", "four_point", "six_point"))
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc,
        distributed.Client(lc) as client,
    ):
        remote = _quiet(net=net, x=x, samples=2000, seed=3, groups=8, backend="dask", client=client, batch_size=64,
                        statistics=("G", "four_point", "six_point"))
    assert _identical(remote, local)


def test_dask_without_client_is_a_clear_error():
    pytest.importorskip("distributed")
    with pytest.raises(MonteCarloError, match="Client"):
        estimate(nnft.MLP("tanh", depth=2, width=3), X1, samples=10, backend="dask")


# ----------------------------------------------------------------------------- result object and helpers
def test_result_api_display_and_json():
    net = nnft.MLP("erf", depth=2, width=8, n_out=2)
    x = np.random.default_rng(1).standard_normal((2, 3))
    r = _quiet(net=net, x=x, samples=500, seed=1, layers=(1, 2), statistics=("G", "four_point", "ntk"))
    assert r.layers == (1, 2) and r.layer == 2
    assert r.G.value.shape == (2, 2) and r.four_point_cross.value.shape == (2,) * 4
    assert r.at(1)["G"].value.shape == (2, 2)
    assert np.allclose(r.zscore("G", r.G.value), 0)
    assert "ntk_mean" in r.statistics and r.ntk_var.value.shape == (2,) * 4
    text, page = repr(r), r._repr_html_()
    assert "samples=500" in text and "four_point_same" in page and "±" in page
    json.dumps(r.to_dict())
    with pytest.raises(AttributeError, match="six_point was not estimated"):
        r.six_point  # noqa: B018
    with pytest.raises(MonteCarloError, match="not requested"):
        r.at(3)


def test_six_point_reports_nan_for_too_narrow_layers():
    r = _quiet(net=nnft.MLP("tanh", depth=2, width=3, n_out=1), x=X1, samples=200, seed=0)
    assert np.isfinite(r.six_point.value[0]) and np.all(np.isnan(r.six_point.value[1:]))
    assert np.isnan(r.four_point_cross.value).all() and "neurons" in r.six_point.note


def test_fit_inverse_width_recovers_known_coefficients():
    n = np.array([4.0, 8, 16, 32, 64])
    y = 2.0 - 3.0 / n + 5.0 / n**2
    fit = fit_inverse_width(n, y, np.full(5, 1e-3), order=2)
    assert np.allclose(fit.coef, [2.0, -3.0, 5.0], atol=1e-9)
    assert fit(8.0) == pytest.approx(y[1])
    assert fit.zscore(slope=-3.0)["slope"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(MonteCarloError, match="at least 3"):
        fit_inverse_width(n[:2], y[:2], np.ones(2), order=2)


@pytest.mark.slow
def test_inverse_width_fit_of_monte_carlo_recovers_linear_slope():
    """κ4/(3K²) = (1 + 2/n)² − 1 = 4/n + 4/n² for two hidden layers: an order-2 fit recovers 4 and 4."""
    ws = [4, 6, 8, 12, 16, 24]
    vals, errs = [], []
    for w in ws:
        net = nnft.MLP("linear", depth=3, width=w, C_b=0.0, C_W=1.0, n_out=w)
        r = _quiet(net=net, x=X1, samples=30_000, seed=w, statistics=("G", "four_point"))
        vals.append(r.four_point_same.value.item() / (3 * K1_LIN**2))
        errs.append(r.four_point_same.stderr.item() / (3 * K1_LIN**2))
    fit = fit_inverse_width(ws, vals, errs, order=2)
    assert abs(fit.zscore(slope=4.0, intercept=0.0)["slope"]) < 4
    assert abs(fit.zscore(intercept=0.0)["intercept"]) < 4


# ----------------------------------------------------------------------------- issue 12: overflow, groups, at()
def test_overflowing_activation_raises_divergence_error_naming_the_layer():
    """exp(z²) overflows float64 in the sampled activations: a DivergenceError, not NaN estimates."""
    with pytest.raises(DivergenceError, match=r"overflow.*layer \d.*reduce C_W.*bounded activation"):
        estimate(nnft.MLP("exp(z**2)", depth=3, width=4), np.ones((1, 8)), samples=200, seed=0)


@pytest.mark.parametrize("statistics", [("G", "four_point"), ("ntk",)])
def test_exploding_monomial_is_a_divergence_error_not_linalg_error(statistics):
    """monomial(3) with C_W = 5 explodes with depth; the conditional sampler used to hit LinAlgError in eigh."""
    x = 10 * np.random.default_rng(0).standard_normal((3, 4))
    with pytest.raises(DivergenceError, match="overflow"):
        estimate(nnft.MLP("monomial(3)", depth=8, width=8, C_W=5), x, samples=200, statistics=statistics)


def test_overflow_in_moment_products_is_caught():
    """Finite preactivations (≈1e90) whose fourth powers overflow: the estimates are refused, not inf/NaN."""
    x = 1e90 * np.random.default_rng(0).standard_normal((3, 4))
    with pytest.raises(DivergenceError, match="not finite"):
        estimate(nnft.MLP("monomial(1)", depth=2, width=8), x, samples=200)


def test_one_group_is_refused_upfront():
    """groups=1 gave NaN standard errors; the jackknife needs two groups, so it is an error."""
    with pytest.raises(MonteCarloError, match="groups must be >= 2"):
        estimate(nnft.MLP("tanh", depth=2, width=3), X1, samples=100, groups=1)


def test_at_returns_attributes_and_keeps_mapping_access():
    r = _quiet(net=nnft.MLP("tanh", depth=2, width=4), x=X1, samples=200, seed=0, layers=(1, 2),
               statistics=("G", "four_point"))
    one = r.at(1)
    assert one.G is one["G"] and one.layer == 1
    assert np.array_equal(r.at(2).G.value, r.G.value)
    assert set(one) == {"G", "four_point_same", "four_point_cross"} and "G" in one and len(one) == 3
    with pytest.raises(AttributeError, match="six_point was not estimated"):
        one.six_point  # noqa: B018


def test_monte_carlo_memory_is_checked_before_sampling(monkeypatch):
    """P⁴ statistics kept per jackknife group: a run that cannot fit is refused before any network is drawn."""
    import nnft.numeric.montecarlo as mc

    def boom(*args, **kwargs):
        raise AssertionError("sampled before checking memory")

    monkeypatch.setattr(mc, "_run_groups", boom)
    monkeypatch.setenv("NNFT_MEMORY_LIMIT", "64M")
    x = np.random.default_rng(0).standard_normal((20, 3))  # 64 groups × P⁴ arrays ≈ 400 MiB
    with pytest.raises(nnft.errors.ResourceError, match=r"P = 20 inputs, 64 groups.*statistics='G'"):
        estimate(nnft.MLP("tanh", depth=2, width=8), x, samples=100)
    monkeypatch.undo()
    monkeypatch.setenv("NNFT_MEMORY_LIMIT", "64M")
    r = _quiet(net=nnft.MLP("tanh", depth=2, width=8), x=x, samples=100, statistics="G")  # P² only: fits
    assert r.G.value.shape == (20, 20)
