"""Tests of the NTK-preactivation statistics of nnft.montecarlo (ntk_preact_same/_cross/_offdiag).

With ΔΘ̂ = Θ̂ − E[Θ̂] at the output layer (m neurons):
- ntk_preact_same[a,b,c,d]    = E[ΔΘ̂_{ii;ab} z_{i;c} z_{i;d}];
- ntk_preact_cross[a,b,c,d]   = E[ΔΘ̂_{ii;ab} z_{k;c} z_{k;d}], i ≠ k;
- ntk_preact_offdiag[a,b,c,d] = E[Θ̂_{ik;ab} z_{i;c} z_{k;d}], i ≠ k.
References used: explicit loops over neurons and over distinct networks (brute force, reconstructing the
networks of a run from its documented seeding), the O(m) invariance of the output-layer law (exact in
expectation at any width), and the deterministic first-layer NTK (all ΔΘ̂ correlations vanish exactly).
"""

import math
import warnings

import numpy as np
import pytest

import nnft
import nnft.numeric.montecarlo as mc
from nnft.montecarlo import NoisyEstimateWarning, empirical_ntk, estimate
from nnft.numeric.mc_estimators import _estimators
from nnft.numeric.mc_features import _ntk_features

PREACT = ("ntk_preact_same", "ntk_preact_cross", "ntk_preact_offdiag")


def _quiet(**kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoisyEstimateWarning)
        return estimate(**kw)


def _swap_cd(a: np.ndarray) -> np.ndarray:
    return np.transpose(a, (0, 1, 3, 2))


# ----------------------------------------------------------------------------- per-network features
def test_features_match_loops_over_neurons():
    rng = np.random.default_rng(0)
    B, m, P = 2, 3, 2
    theta = rng.standard_normal((B, m, m, P, P))
    z = rng.standard_normal((B, m, P))
    f = _ntk_features(theta, z)
    for b in range(B):
        th, zz = theta[b], z[b]
        t = sum(th[i, i] for i in range(m)) / m
        a = sum(np.outer(zz[i], zz[i]) for i in range(m)) / m
        same = sum(np.einsum("ab,c,d->abcd", th[i, i], zz[i], zz[i]) for i in range(m)) / m
        pairs = [(i, k) for i in range(m) for k in range(m) if i != k]
        off = sum(np.einsum("ab,c,d->abcd", th[i, k], zz[i], zz[k]) for i, k in pairs) / len(pairs)
        np.testing.assert_allclose(f["a"][b], a, rtol=1e-13)
        np.testing.assert_allclose(f["ta"][b], np.einsum("ab,cd->abcd", t, a), rtol=1e-13)
        np.testing.assert_allclose(f["tzsame"][b], same, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(f["tzoff"][b], off, rtol=1e-13, atol=1e-14)


def test_features_of_one_neuron_have_no_distinct_pairs():
    rng = np.random.default_rng(1)
    f = _ntk_features(rng.standard_normal((3, 1, 1, 2, 2)), rng.standard_normal((3, 1, 2)))
    assert "tzoff" not in f and "toff" not in f
    np.testing.assert_allclose(f["tzsame"], f["ta"], rtol=1e-14)  # m = 1: mean_i Θ̂_ii z_i z_i = t ⊗ a


# ----------------------------------------------------------------------------- brute force, end to end
def _networks_of_run(net, x, samples, seed, groups):
    """The (W, b) of every network of estimate(net, x, samples, seed, groups=groups), group by group.

    Group g draws ``SeedSequence(seed).spawn(groups)[g]`` normals network after network; the explicit
    sampler reads them per layer as W (n_out × n_in, row-major) then b, in units √(C_W/n_in), √C_b.
    """
    n = (x.shape[1], *net.widths, net.n_out)
    per = sum(n[i + 1] * n[i] + n[i + 1] for i in range(net.depth))
    sizes = [samples // groups + (1 if g < samples % groups else 0) for g in range(groups)]
    out = []
    for g, child in enumerate(np.random.SeedSequence(seed).spawn(groups)):
        eps = np.random.Generator(np.random.PCG64(child)).standard_normal((sizes[g], per))
        nets = []
        for e in eps:
            off, params = 0, []
            for i in range(net.depth):
                W = e[off : off + n[i + 1] * n[i]].reshape(n[i + 1], n[i]) * math.sqrt(net.C_W[i] / n[i])
                off += n[i + 1] * n[i]
                b = e[off : off + n[i + 1]] * math.sqrt(net.C_b[i])
                off += n[i + 1]
                params.append((W, b))
            nets.append(params)
        out.append(nets)
    return out


def _tanh_forward(params, x):
    h = x.T
    for i, (W, b) in enumerate(params):
        h = W @ (np.tanh(h) if i > 0 else h) + b[:, None]
    return h  # (m, P)


def _brute(thetas, zs):
    """The three estimators by explicit loops over neurons and over ordered pairs of distinct networks."""
    N = len(thetas)
    m, P = zs[0].shape
    same, cross, off = [], [], []
    t_list, a_list = [], []
    for th, z in zip(thetas, zs, strict=True):
        s = c = o = np.zeros((P, P, P, P))
        for i in range(m):
            for k in range(m):
                if i == k:
                    s = s + np.einsum("ab,c,d->abcd", th[i, i], z[i], z[i]) / m
                else:
                    c = c + np.einsum("ab,c,d->abcd", th[i, i], z[k], z[k]) / (m * (m - 1))
                    o = o + np.einsum("ab,c,d->abcd", th[i, k], z[i], z[k]) / (m * (m - 1))
        same.append(s)
        cross.append(c)
        off.append(o)
        t_list.append(np.mean([th[i, i] for i in range(m)], axis=0))
        a_list.append(np.mean([np.outer(z[i], z[i]) for i in range(m)], axis=0))
    U = sum(np.einsum("ab,cd->abcd", t_list[p], a_list[q]) for p in range(N) for q in range(N) if p != q)
    U = U / (N * (N - 1))
    return {
        "ntk_preact_same": np.mean(same, axis=0) - U,
        "ntk_preact_cross": np.mean(cross, axis=0) - U,
        "ntk_preact_offdiag": np.mean(off, axis=0),
    }


def test_estimates_and_jackknife_errors_match_brute_force():
    net = nnft.MLP("tanh", depth=2, width=4, C_b=0.2, C_W=1.5, n_out=3, lambda_b=0.7, lambda_W=1.3)
    x = np.random.default_rng(2).standard_normal((2, 3))
    samples, seed, groups = 9, 3, 3
    r = _quiet(net=net, x=x, samples=samples, seed=seed, groups=groups, statistics="ntk", batch_size=2)
    per_group = [
        [(empirical_ntk(net, x, p), _tanh_forward(p, x)) for p in nets]
        for nets in _networks_of_run(net, x, samples, seed, groups)
    ]
    # the reconstruction is right: ntk_mean and G from the same networks agree
    allnets = [tz for grp in per_group for tz in grp]
    th_mean = np.mean([np.mean([th[i, i] for i in range(3)], axis=0) for th, _ in allnets], axis=0)
    np.testing.assert_allclose(r.ntk_mean.value, th_mean, rtol=1e-12)

    full = _brute([th for th, _ in allnets], [z for _, z in allnets])
    reps = []
    for g in range(groups):
        keep = [tz for h, grp in enumerate(per_group) if h != g for tz in grp]
        reps.append(_brute([th for th, _ in keep], [z for _, z in keep]))
    for name in PREACT:
        stat = getattr(r, name)
        scale = np.max(np.abs(full[name]))
        np.testing.assert_allclose(stat.value, full[name], rtol=1e-9, atol=1e-12 * scale, err_msg=name)
        rr = np.stack([rep[name] for rep in reps])
        err = np.sqrt((groups - 1) / groups * np.sum((rr - rr.mean(axis=0)) ** 2, axis=0))
        np.testing.assert_allclose(stat.stderr, err, rtol=1e-7, atol=1e-10 * scale, err_msg=name)


# ----------------------------------------------------------------------------- O(m) identities
def _jackknife_of(fn, parts, plan):
    """Estimate and delete-one-group jackknife error of fn(estimates of the output layer)."""
    total = {k: sum(p[k] for p in parts) for k in parts[0]}
    L = plan.depth
    val = fn(_estimators(total, plan)[L])
    reps = np.stack([fn(_estimators({k: total[k] - p[k] for k in total}, plan)[L]) for p in parts])
    G = len(parts)
    return val, np.sqrt((G - 1) / G * np.sum((reps - reps.mean(axis=0)) ** 2, axis=0))


def test_o_m_identities_hold_within_errors(monkeypatch):
    """same = cross + offdiag + offdiag[a,b,d,c], for the NTK covariance and the NTK-preactivation statistics."""
    seen = {}
    orig = mc._jackknife

    def spy(parts, plan):
        seen["parts"], seen["plan"] = parts, plan
        return orig(parts, plan)

    monkeypatch.setattr(mc, "_jackknife", spy)
    net = nnft.MLP("tanh", depth=3, width=32, C_b=0.1, C_W=1.6, n_out=3)
    x = np.random.default_rng(4).standard_normal((2, 3))
    r = _quiet(net=net, x=x, samples=40000, seed=5, statistics="ntk", groups=32)
    parts, plan = seen["parts"], seen["plan"]

    for same, cross, off in (("ntk_var", "ntk_cov_cross", "ntk_offdiag"), PREACT):
        # the terms are resolved (the identity is not 0 = 0)
        assert np.any(getattr(r, same).value > 6 * getattr(r, same).stderr), same
        assert np.any(np.abs(getattr(r, off).value) > 6 * getattr(r, off).stderr), off

        def diff(e, same=same, cross=cross, off=off):
            return e[same] - e[cross] - e[off] - _swap_cd(e[off])

        d, err = _jackknife_of(diff, parts, plan)
        assert np.all(err > 0)
        assert np.max(np.abs(d / err)) < 4, (same, d / err)

        def wrong(e, same=same, cross=cross, off=off):  # dropping a Wick-like term is detected
            return e[same] - e[cross] - e[off]

        d, err = _jackknife_of(wrong, parts, plan)
        assert np.max(np.abs(d / err)) > 6, same


# ----------------------------------------------------------------------------- exact zero, layout
def test_first_layer_ntk_has_no_preactivation_correlations():
    """Depth 1: Θ̂_{ik} = δ_ik Θ is deterministic, so every estimate is 0 up to rounding (unbiased U-statistic)."""
    net = nnft.MLP("tanh", depth=1, C_b=0.3, C_W=1.2, n_out=3, lambda_b=0.5, lambda_W=0.9)
    x = np.random.default_rng(6).standard_normal((2, 4))
    r = _quiet(net=net, x=x, samples=200, seed=7, statistics="ntk", groups=8)
    K1 = 0.3 + 1.2 * x @ x.T / 4
    scale = np.max(np.abs(r.ntk_mean.value)) * np.max(np.abs(K1))  # of Θ̂ ⊗ zz
    for name in PREACT:
        assert np.max(np.abs(getattr(r, name).value)) < 1e-12 * scale, name
        assert np.max(np.abs(getattr(r, name).stderr)) < 1e-12 * scale, name
    assert np.max(np.abs(r.ntk_var.value)) < 1e-12 * np.max(np.abs(r.ntk_mean.value)) ** 2


def test_layout_and_index_symmetries():
    P = 3
    net = nnft.MLP("tanh", depth=2, width=5, C_b=0.1, C_W=1.4, n_out=2)
    x = np.random.default_rng(8).standard_normal((P, 3))
    r = _quiet(net=net, x=x, samples=200, seed=9, statistics="ntk", groups=4)
    for name in PREACT:
        s = getattr(r, name)
        assert s.value.shape == s.stderr.shape == (P,) * 4, name
        assert s.description and np.all(np.isfinite(s.value)) and np.all(np.isfinite(s.stderr)), name
    for name in ("ntk_preact_same", "ntk_preact_cross"):
        v = getattr(r, name).value
        tol = 1e-12 * np.max(np.abs(v))
        np.testing.assert_allclose(v, np.transpose(v, (1, 0, 2, 3)), rtol=1e-10, atol=tol)  # Θ̂_{ii;ab} = Θ̂_{ii;ba}
        np.testing.assert_allclose(v, _swap_cd(v), rtol=1e-10, atol=tol)
    v = r.ntk_preact_offdiag.value  # Θ̂_{ik;ab} = Θ̂_{ki;ba}: [a,b,c,d] = [b,a,d,c]
    np.testing.assert_allclose(v, np.transpose(v, (1, 0, 3, 2)), rtol=1e-10, atol=1e-12 * np.max(np.abs(v)))


def test_one_output_neuron_has_only_the_same_neuron_statistic():
    net = nnft.MLP("tanh", depth=2, width=4, n_out=1)
    x = np.random.default_rng(10).standard_normal((2, 3))
    r = _quiet(net=net, x=x, samples=50, seed=1, statistics="ntk", groups=4)
    keys = set(r.at(2))
    assert "ntk_preact_same" in keys
    assert not keys & {"ntk_preact_cross", "ntk_preact_offdiag", "ntk_cov_cross", "ntk_offdiag"}
    assert np.all(np.isfinite(r.ntk_preact_same.value))


def test_bit_identical_for_any_batch_size():
    net = nnft.MLP("tanh", depth=2, width=5, C_b=0.1, C_W=1.5, n_out=3)
    x = np.random.default_rng(11).standard_normal((2, 3))
    runs = [
        _quiet(net=net, x=x, samples=37, seed=2, groups=3, statistics="ntk", batch_size=bs, workers=w)
        for bs, w in [(None, 1), (1, 2), (5, 1)]
    ]
    for run in runs[1:]:
        for name in PREACT:
            for f in ("value", "stderr"):
                assert getattr(getattr(run, name), f).tobytes() == getattr(getattr(runs[0], name), f).tobytes()


@pytest.mark.parametrize("name", PREACT)
def test_descriptions_are_registered(name):
    from nnft.numeric.mc_result import _DESCRIPTIONS

    assert "Θ̂" in _DESCRIPTIONS[name] and "z_" in _DESCRIPTIONS[name]
