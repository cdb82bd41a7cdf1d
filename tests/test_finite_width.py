"""The 1/n corrections V and K1: exact finite-width results, independent quadrature, the symbolic recursions.

Independent routes used here (none shares code with the engine's evaluator):
- exact finite-width products for deep linear (``Π(1 + 2/n_ℓ)``) and relu (``Π(1 + 5/n_ℓ)``) networks,
  whose first-order expansions fix V and K1 = 0 for one input (PDLT §3.3, §5.5 / CONVENTIONS.md);
- deep linear networks with several inputs, where Wick's theorem gives
  ``V^{(L)}_{(αβ)(γδ)} = n_{L-1} Σ_ℓ (1/n_ℓ)(K_αγ K_βδ + K_αδ K_βγ)`` (C_W = 1, C_b = 0; FACTS.md);
- two layers, where ``V^{(2)} = C_W²(⟨σσσσ⟩ − ⟨σσ⟩⟨σσ⟩)`` is checked against a trapezoid rule written here;
- the symbolic pattern equations of ``net.recursion("V")`` / ``("K1")`` evaluated entry by entry against
  the vectorised stencils on random symmetric V and K1.
The Monte Carlo checks live in tests/test_finite_width_mc.py.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import sympy as sp

import nnft
from nnft.errors import ActivationError, InputError, NetworkError, ResourceError
from nnft.finite_width import GaussianLayerWarning, PackedVertex


def _first_order(widths, c):
    return sum(c / n for n in widths)


@pytest.mark.parametrize("act, cw, c", [("linear", 1.0, 2.0), ("relu", 2.0, 5.0), ("linear", 0.7, 2.0)])
@pytest.mark.parametrize("widths", [[5], [7, 13, 5], [3, 11, 2, 9, 4]])
def test_exact_products_single_input(act, cw, c, widths):
    """E[z⁴]/(3E[z²]²) = Π(1 + c/n_ℓ): the engine's 1/n term equals its first-order expansion; K1 = 0."""
    net = nnft.MLP(act, depth=len(widths) + 1, width=widths, C_b=0.0, C_W=cw)
    x = np.array([[0.7, -0.3, 1.1]])
    V = net.four_point(x, layers="all")[:, 0, 0, 0, 0]
    K1 = net.nlo_metric(x, layers="all")[:, 0, 0]
    K = net.kernels(x, ntk=False).K[:, 0, 0]
    for ell in range(2, len(widths) + 2):
        n_prev = widths[ell - 2]
        pred = _first_order(widths[: ell - 1], c)
        assert V[ell - 1] / n_prev / K[ell - 1] ** 2 == pytest.approx(pred, rel=1e-12, abs=1e-14)
    assert np.max(np.abs(K1)) <= 1e-13 * np.max(K)


def test_relu_criticality_linear_growth():
    """relu at criticality (C_W = 2, C_b = 0), equal widths: V^{(ℓ)}/(K^{(ℓ)})² = 5(ℓ − 1) exactly."""
    net = nnft.MLP("relu", depth=12, width=64, C_b=0.0, C_W=2.0)
    x = np.array([[1.3, -0.2]])
    V = net.four_point(x, layers="all")[:, 0, 0, 0, 0]
    K = net.kernels(x, ntk=False).K[:, 0, 0]
    np.testing.assert_allclose(V / K**2, 5.0 * np.arange(12), rtol=1e-13, atol=1e-13)


def test_tanh_criticality_slope_two_thirds():
    """tanh at its critical point (C_b = 0, C_W = 1): V/K² grows linearly with slope → 2/3 (PDLT §5.3)."""
    net = nnft.MLP("tanh", depth=201, width=100, C_b=0.0, C_W=1.0)
    x = np.array([[1.0, 0.5]])
    V = net.four_point(x, layers="all")[:, 0, 0, 0, 0]
    K = net.kernels(x, ntk=False).K[:, 0, 0]
    slope = np.diff(V / K**2)
    assert abs(slope[-1] - 2 / 3) < 0.01
    assert abs(slope[20] - 2 / 3) > abs(slope[-1] - 2 / 3)  # approached from below, not reached at once


def test_deep_linear_multi_input_wick():
    """Deep linear, several inputs: V_{(αβ)(γδ)} = n_{L-1} Σ_ℓ (K_αγ K_βδ + K_αδ K_βγ)/n_ℓ (not 2 K_αβ K_γδ)."""
    widths = [6, 9, 4]
    net = nnft.MLP("linear", depth=4, width=widths, C_b=0.0, C_W=1.0)
    x = np.random.default_rng(3).standard_normal((3, 5))
    V = net.four_point(x)
    K = net.nngp(x)
    pred = widths[-1] * sum(1 / n for n in widths) * (np.einsum("ac,bd->abcd", K, K) + np.einsum("ad,bc->abcd", K, K))
    np.testing.assert_allclose(V, pred, rtol=1e-12, atol=1e-13)
    wrong = widths[-1] * sum(1 / n for n in widths) * 2 * np.einsum("ab,cd->abcd", K, K)
    assert np.max(np.abs(V - wrong)) > 1e-2  # the two-input check can tell the pairings apart


def _trapezoid_average(f, K, h=0.08, cut=9.0):
    """⟨f(z)⟩ over N(0, K), k ≤ 3 variables: tensor trapezoid in whitened (Cholesky) coordinates."""
    k = K.shape[0]
    t = np.arange(-cut, cut + h / 2, h)
    w = np.exp(-t**2 / 2)
    w /= w.sum()
    L = np.linalg.cholesky(K + 1e-300 * np.eye(k))
    grids = np.meshgrid(*([t] * k), indexing="ij")
    u = np.stack([g.ravel() for g in grids])
    z = L @ u
    weight = np.ones(1)
    for _ in range(k):
        weight = np.multiply.outer(weight, w)
    return float(np.sum(weight.ravel()[: z.shape[1]] * f(*z)))


@pytest.mark.parametrize("act, fn", [("tanh", np.tanh), ("swish", lambda t: t / (1 + np.exp(-t)))])
def test_two_layers_every_pattern_against_quadrature(act, fn):
    """L = 2: V^{(2)} = C_W²(⟨σ_aσ_bσ_cσ_d⟩ − ⟨σ_aσ_b⟩⟨σ_cσ_d⟩) for every entry with P = 3 (1e-10)."""
    cw = 1.3
    x = np.random.default_rng(1).standard_normal((3, 4))
    net = nnft.MLP(act, depth=2, width=[50], C_b=0.1, C_W=cw)
    V = net.four_point(x)
    K = net.kernels(x, ntk=False).K[0]
    cache = {}

    def avg(idx):
        key = tuple(sorted(idx))
        if key not in cache:
            distinct = sorted(set(idx))
            counts = [idx.count(i) for i in distinct]

            def f(*zs):
                return np.prod([fn(z) ** c for z, c in zip(zs, counts, strict=True)], axis=0)

            cache[key] = _trapezoid_average(f, K[np.ix_(distinct, distinct)])
        return cache[key]

    for a, b, c, d in itertools.product(range(3), repeat=4):
        pred = cw**2 * (avg([a, b, c, d]) - avg([a, b]) * avg([c, d]))
        assert V[a, b, c, d] == pytest.approx(pred, abs=1e-10), (a, b, c, d)


def _random_symmetric_V(P, rng):
    A = rng.standard_normal((P, P, P, P))
    V = A
    for perm in [(1, 0, 2, 3), (0, 1, 3, 2), (2, 3, 0, 1)]:
        V = 0.5 * (V + np.transpose(V, perm))
    return V


@pytest.mark.parametrize("act", ["erf", "relu", "gelu"])
def test_symbolic_patterns_match_the_stencils(act):
    """Every coincidence pattern of the derived V and K1 equations equals the evaluator's stencil entry."""
    from nnft.numeric.finite_width import layer_terms, mixing, nlo_shift
    from nnft.recursions.base import C_W, C_b
    from nnft.recursions.finite_width_plan import finite_width_plan
    from nnft.recursions.fluctuation import K1 as K1sym
    from nnft.recursions.fluctuation import K as Ksym
    from nnft.recursions.fluctuation import V as Vsym
    from nnft.recursions.fluctuation import n_ratio

    rng = np.random.default_rng(7)
    P = 4
    x = rng.standard_normal((P, 3))
    net = nnft.MLP(act, depth=2, width=[10], C_b=0.2, C_W=1.4)
    K = net.kernels(x, ntk=False).K[0]
    Vin = _random_symmetric_V(P, rng)
    K1in = rng.standard_normal((P, P))
    K1in = K1in + K1in.T
    plan = finite_width_plan(net.activation)
    terms = layer_terms(plan, K)
    cw, r = 1.4, 0.75
    T = (r * cw * cw) * mixing(terms.D, Vin)
    N = r * cw * nlo_shift(terms.D, terms.D2, K1in, Vin)
    Vrec = net.recursion("V")
    Krec = net.recursion("K1")
    sub_params = {C_W: cw, C_b: 0.2, n_ratio: r}

    def values(assign):
        vals = dict(sub_params)
        for p in itertools.combinations_with_replacement(sorted(set(assign)), 2):
            i, j = assign[p[0]], assign[p[1]]
            vals[Ksym(p)] = K[i, j]
            vals[K1sym(p)] = K1in[i, j]
        for p in itertools.combinations_with_replacement(sorted(set(assign)), 2):
            for q in itertools.combinations_with_replacement(sorted(set(assign)), 2):
                vals[Vsym(p, q)] = Vin[assign[p[0]], assign[p[1]], assign[q[0]], assign[q[1]]]
        return vals

    checked = 0
    for pattern in Vrec.patterns:
        lab = pattern.replace("(", "").replace(")", "")
        distinct = sorted(set(lab))
        for idx in itertools.permutations(range(P), len(distinct)):
            assign = dict(zip(distinct, idx, strict=True))
            a, b, c, d = (assign[ch] for ch in lab)
            mix = sp.diff(Vrec[pattern], n_ratio)  # the equation is linear in r: the mixing term
            got = float(sp.N(mix.xreplace(values(assign)), 17)) * r
            assert got == pytest.approx(T[a, b, c, d], rel=1e-9, abs=1e-12), (pattern, idx)
            checked += 1
            break
    assert checked == 7
    for pattern in Krec.patterns:
        distinct = sorted(set(pattern))
        assign = dict(zip(distinct, range(len(distinct)), strict=True))
        a, b = (assign[ch] for ch in pattern)
        got = float(sp.N(Krec[pattern].xreplace(values(assign)), 17))
        assert got == pytest.approx(N[a, b], rel=1e-9, abs=1e-12), pattern


def test_relu_single_input_recursion_is_derived_closed_form():
    """The derived one-input V equation of relu: V' = (5/4)C_W²K² + r (C_W/2)² V."""
    from nnft.recursions.base import C_W
    from nnft.recursions.fluctuation import K as Ksym
    from nnft.recursions.fluctuation import V as Vsym
    from nnft.recursions.fluctuation import n_ratio

    rec = nnft.MLP("relu", depth=3).recursion("V")
    Kaa, Vaa = Ksym(("a", "a")), Vsym(("a", "a"), ("a", "a"))
    assert sp.simplify(rec.single - (sp.Rational(5, 4) * C_W**2 * Kaa**2 + n_ratio * C_W**2 / 4 * Vaa)) == 0
    assert len(rec.patterns) == 7
    tex = rec._repr_latex_()
    assert tex.startswith("$$") and r"V^{(\ell+1)}_{(\alpha\beta)(\gamma\delta)}" in tex
    k1 = nnft.MLP("tanh", depth=3).recursion("K1")
    assert k1.patterns == ("aa", "ab") and r"\partial^2 K'_{\alpha\beta}" in k1.latex()


def test_symmetry_duplicates_and_layer_layout():
    x = np.random.default_rng(2).standard_normal((3, 4))
    xd = np.vstack([x, x[1:2]])  # a duplicate of input 1
    net = nnft.MLP("erf", depth=4, width=[20, 30, 10], C_b=0.1, C_W=1.5)
    V = net.four_point(x, layers="all")
    assert V.shape == (4, 3, 3, 3, 3) and np.all(V[0] == 0)
    for perm in [(1, 0, 2, 3), (0, 1, 3, 2), (2, 3, 0, 1)]:
        np.testing.assert_array_equal(V[-1], np.transpose(V[-1], perm))
    Vd = net.four_point(xd)
    np.testing.assert_allclose(Vd[:3, :3, :3, :3], V[-1], rtol=1e-13)
    np.testing.assert_allclose(Vd[3, 3, 3, 3], V[-1][1, 1, 1, 1], rtol=1e-13)
    np.testing.assert_allclose(Vd[0, 3, 2, 3], V[-1][0, 1, 2, 1], rtol=1e-13)
    K1 = net.nlo_metric(x, layers="all")
    assert K1.shape == (4, 3, 3) and np.all(K1[:2] == 0) and np.any(K1[2] != 0)


def test_cumulants_layout_matches_montecarlo():
    x = np.random.default_rng(4).standard_normal((2, 3))
    net = nnft.MLP("tanh", depth=3, width=[16, 24], C_b=0.1, C_W=1.2, n_out=3)
    c = net.cumulants(x)
    V, K1 = net.four_point(x), net.nlo_metric(x)
    assert c.n == 24 and c.layer == 3
    np.testing.assert_allclose(c.G, net.nngp(x) + K1 / 24, rtol=1e-14)
    np.testing.assert_allclose(c.four_point_cross, V / 24)
    a = (0, 1, 1, 0)
    assert c.four_point_same[a] == pytest.approx((V[0, 1, 1, 0] + V[0, 1, 1, 0] + V[0, 0, 1, 1]) / 24)
    c2 = net.cumulants(x, layer=2)
    assert c2.n == 16 and c2.layer == 2
    np.testing.assert_allclose(c2.V, net.four_point(x, layers="all")[1], rtol=1e-13)
    assert "<table>" in c._repr_html_()


def test_packed_vertex_round_trip():
    x = np.random.default_rng(5).standard_normal((4, 3))
    net = nnft.MLP("erf", depth=3, width=16, C_b=0.0, C_W=1.7)
    V = net.four_point(x)
    pk = net.four_point(x, packed=True)
    assert isinstance(pk, PackedVertex)
    M = 4 * 5 // 2
    assert pk.values.shape == (M * (M + 1) // 2,) and pk.nbytes < V.nbytes / 4
    np.testing.assert_array_equal(pk.expand(), V)
    assert pk[3, 1, 0, 2] == V[3, 1, 0, 2]
    allp = net.four_point(x, layers="all", packed=True)
    np.testing.assert_array_equal(allp.expand(), net.four_point(x, layers="all"))
    with pytest.raises(InputError, match="four sample indices"):
        pk[0, 1]


def test_dask_blocks_equal_dense():
    pytest.importorskip("dask")
    x = np.random.default_rng(6).standard_normal((5, 3))
    net = nnft.MLP("erf", depth=3, width=12, C_b=0.1, C_W=1.4)
    lazy = net.four_point(x, chunks=2)
    assert lazy.chunks[0] == (2, 2, 1)
    np.testing.assert_allclose(lazy.compute(scheduler="synchronous"), net.four_point(x), rtol=1e-12, atol=1e-15)


def test_bad_requests():
    x = np.random.default_rng(0).standard_normal((3, 2))
    with pytest.raises(ActivationError, match="jumps"):
        nnft.MLP("step", depth=3).four_point(x)
    with pytest.raises(ActivationError, match="jumps"):
        nnft.MLP("sign", depth=3).recursion("V")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        V = nnft.MLP("tanh", depth=1).four_point(x)
    assert np.all(V == 0) and any(issubclass(i.category, GaussianLayerWarning) and "exactly 0" in str(i.message)
                                  for i in w)
    with pytest.raises(NetworkError, match="n = 1"):
        nnft.MLP("tanh", depth=3, width=[4, 1]).cumulants(x)
    with pytest.raises(InputError, match="order"):
        nnft.MLP("tanh", depth=3).cumulants(x, order=2)
    with pytest.raises(InputError, match="layers"):
        nnft.MLP("tanh", depth=3).four_point(x, layers="first")
    with pytest.raises(NetworkError):
        nnft.MLP("tanh", depth=3).four_point(np.array([[np.nan, 1.0]]))


def test_memory_refused_before_allocating(monkeypatch):
    monkeypatch.setenv("NNFT_MEMORY_LIMIT", "64MiB")
    x = np.random.default_rng(0).standard_normal((60, 3))
    with pytest.raises(ResourceError, match="packed=True") as e:
        nnft.MLP("erf", depth=3).four_point(x, layers="all")
    assert "chunks=" in str(e.value)
