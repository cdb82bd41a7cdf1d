"""The diagram engine and the matched couplings of the effective action.

Independent routes:
- the zero-dimensional O(m) model ``p(φ) ∝ exp(−|φ|²/2 − λ|φ|⁴/8)`` (our γ4 = −λ, g = 1), whose exact series is
  computed here from the Gaussian moments ``E|φ|^{2k} = m(m+2)…(m+2k−2)`` (no diagrams): log Z, ⟨φ₁²⟩ and the
  connected four-point functions as polynomials in m, to second order in λ; the sextic vertex at first order;
- brute-force counts of Wick pairings (written here, no graphs) against multiplicity and symmetry factors;
- one sample: the matched γ2, γ4 used as an action (its first-order expanded weight) and integrated numerically in
  m = 1, 2, 3 dimensions (radial quadrature) give back G and the connected four-point function up to O(1/n²);
- several samples: the matched couplings fed back through the diagram einsums (forward, with G and γ4) give K1
  and V to 1e-12 — matching and forward evaluation are separate code paths (amputation vs contraction).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import sympy as sp
from scipy import integrate

import nnft
from nnft.eft.action import Action
from nnft.eft.diagrams import coupling, diagrams, g0, m
from nnft.eft.matching import match, matched_couplings
from nnft.errors import InputError

lam = sp.Symbol("lambda")


def _moment(k: int) -> sp.Expr:
    """E|φ|^{2k} for φ ~ N(0, 1_m)."""
    out = sp.Integer(1)
    for j in range(k):
        out *= m + 2 * j
    return out


EIGHTH = sp.Rational(1, 8)


def _exact(order: int, power: int = 4, c: sp.Rational = EIGHTH):
    """Exact series of log Z, ⟨φ₁²⟩, ⟨φ₁⁴⟩_c, ⟨φ₁²φ₂²⟩_c for weight exp(−λ c |φ|^{power})."""
    def avg(r2k_extra: int) -> sp.Expr:  # E[|φ|^{2 r} e^{−λ c |φ|^p}] expanded
        return sum(((-lam * c) ** j / sp.factorial(j)) * _moment(r2k_extra + j * power // 2) for j in range(order + 1))

    Z = avg(0)
    logZ = sp.series(sp.log(Z), lam, 0, order + 1).removeO()
    r2 = sp.series(avg(1) / Z, lam, 0, order + 1).removeO()
    r4 = sp.series(avg(2) / Z, lam, 0, order + 1).removeO()
    phi2 = sp.expand(r2 / m)
    phi4 = sp.expand(3 * r4 / (m * (m + 2)))
    phi22 = sp.expand(r4 / (m * (m + 2)))
    c4 = sp.expand(sp.series(phi4 - 3 * phi2**2, lam, 0, order + 1).removeO())
    c22 = sp.expand(sp.series(phi22 - phi2**2, lam, 0, order + 1).removeO())
    return sp.expand(logZ), phi2, c4, c22


def _diagram_series(order: int, k: int = 2):
    a = Action()
    sub = {g0: 1, coupling[k]: -lam}  # γ_{2k} = −λ
    logZ = sum((diagrams(0, tuple([k] * q))[i].scalar() for q in range(1, order + 1)
                for i in range(len(diagrams(0, tuple([k] * q))))), sp.S.Zero)
    if k == 2:
        two = a.correlator(2, order).scalar()
        four = a.correlator(4, order).by_pattern()
    else:
        two = sum((d.scalar() for q in range(order + 1) for d in
                   (diagrams(2, tuple([3] * q)) if q else diagrams(2, ()))), sp.S.Zero)
        four = {}
        for q in range(1, order + 1):
            for d in diagrams(4, tuple([3] * q)):
                four[d.neuron_pattern] = four.get(d.neuron_pattern, 0) + d.scalar()
    same = sum(four.values(), sp.S.Zero)
    cross = four.get(((0, 1), (2, 3)), sp.S.Zero)
    return tuple(sp.expand(sp.sympify(e).xreplace(sub)) for e in (logZ, two, same, cross))


@pytest.mark.parametrize("order", [1, 2])
def test_quartic_zero_dimensional_series(order):
    """log Z, ⟨φ₁²⟩, ⟨φ₁⁴⟩_c, ⟨φ₁²φ₂²⟩_c of the O(m) model agree with the diagram sums as polynomials in m."""
    for got, want in zip(_diagram_series(order), _exact(order), strict=True):
        assert sp.cancel(sp.together(got - want)) == 0, (got, want)


def test_sextic_zero_dimensional_series():
    """The sextic vertex (c_3 = 1/48) at first order: log Z and the correlators."""
    got = _diagram_series(1, k=3)
    want = _exact(1, power=6, c=sp.Rational(1, 48))
    for g, w in zip(got, want, strict=True):
        assert sp.cancel(sp.together(g - w)) == 0, (g, w)


def _brute_pairings(externals, vertices, connected):
    """Count Wick pairings by neuron pattern and loops with union–find on slot labels (no graph library)."""
    slots = [("x", e) for e in range(externals)]
    for v, k in enumerate(vertices):
        slots += [("s", v, p, t) for p in range(k) for t in range(2)]

    def pairings(s):
        if not s:
            yield []
            return
        for i in range(1, len(s)):
            for rest in pairings(s[1:i] + s[i + 1:]):
                yield [(s[0], s[i])] + rest

    counts = {}
    for pr in pairings(slots):
        parent = {}

        def find(a):
            while parent.get(a, a) != a:  # noqa: B023
                a = parent[a]  # noqa: B023
            return a

        def union(a, b):
            parent[find(a)] = find(b)  # noqa: B023

        owner = {s: (s if s[0] == "x" else ("d", s[1], s[2])) for s in slots}
        for a, b in pr:
            union(owner[a], owner[b])
        if connected:  # the full graph: also vertices join their dot pairs
            full = dict()

            def f2(a):
                while full.get(a, a) != a:  # noqa: B023
                    a = full[a]  # noqa: B023
                return a
            for a, b in pr:
                full[f2(owner[a])] = f2(owner[b])
            for v, k in enumerate(vertices):
                for p in range(1, k):
                    full[f2(("d", v, p))] = f2(("d", v, 0))
            roots = {f2(o) for o in owner.values()}
            if len(roots) != 1:
                continue
        nodes = set(owner.values())
        comps = {}
        for nd in nodes:
            comps.setdefault(find(nd), []).append(nd)
        loops = sum(1 for c in comps.values() if not any(n[0] == "x" for n in c))
        key = loops
        counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.mark.parametrize("externals, vertices", [(2, (2,)), (4, (2,)), (0, (2, 2)), (2, (2, 2)), (2, (3,))])
def test_multiplicities_match_brute_force_wick_counts(externals, vertices):
    ds = diagrams(externals, vertices)
    by_loops = {}
    for d in ds:
        by_loops[d.index_loops] = by_loops.get(d.index_loops, 0) + d.multiplicity
    assert by_loops == _brute_pairings(externals, vertices, connected=True)
    order = 1
    for k in set(vertices):
        c = vertices.count(k)
        order *= math.factorial(c) * (math.factorial(k) * 2**k) ** c
    assert all(d.multiplicity * d.symmetry_factor == order for d in ds)


def test_diagram_objects():
    ds = diagrams(2, (2,))
    assert sorted(d.index_loops for d in ds) == [0, 1]
    assert {d.symmetry_factor for d in ds} == {1, 2}
    for d in ds:
        assert d.latex() and isinstance(d.expression(), sp.Expr)
    import matplotlib

    matplotlib.use("Agg")
    ax = ds[1].draw()
    assert ax is not None
    with pytest.raises(InputError):
        diagrams(2, (2, 2, 2, 2))


def test_match_single_sample_derived():
    r = match(1)
    K, K1, V, n = sp.symbols("K K1 V n", positive=True)
    assert sp.simplify(r.gamma4 - V / (n * K**4)) == 0
    assert sp.simplify(r.gamma2 - (1 / K - K1 / (n * K**2) + (m / 2 + 1) * V / (n * K**3))) == 0
    assert r.latex().startswith(r"\begin{aligned}")
    with pytest.raises(InputError):
        match(2)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_single_input_action_integrated_gives_back_G_and_V(dim):
    """The matched action (first-order weight e^{−γ2r²/2}(1 + γ4 r⁴/8)) integrated in R^m: G, four-point to 1/n²."""
    net0 = nnft.MLP("tanh", depth=3, width=10, C_b=0.1, C_W=1.5, n_out=dim)
    x = np.array([[0.8, -0.4, 1.1]])
    K_ = float(net0.kernels(x, ntk=False).K[-1, 0, 0])
    errs = []
    for n_ in (200.0, 400.0):
        net = nnft.MLP("tanh", depth=3, width=int(n_), C_b=0.1, C_W=1.5, n_out=dim)
        e = net.eft(x, m=dim)
        g2, g4 = float(e.gamma2[0, 0]), float(e.gamma4[0, 0, 0, 0])
        c = net.cumulants(x)
        area = 2 * math.pi ** (dim / 2) / math.gamma(dim / 2)

        def mom(p, g2=g2, g4=g4, area=area):
            f = lambda r: r ** (dim - 1 + p) * math.exp(-0.5 * g2 * r * r) * (1 + g4 * r**4 / 8)  # noqa: E731
            return area * integrate.quad(f, 0, np.inf, epsabs=0, epsrel=1e-13, limit=200)[0]

        Z = mom(0)
        r2, r4 = mom(2) / Z, mom(4) / Z
        G = r2 / dim
        four_same = 3 * r4 / (dim * (dim + 2)) - 3 * G**2
        errs.append((abs(G - c.G[0, 0]) / K_, abs(four_same - c.four_point_same[0, 0, 0, 0]) / K_**2))
    for k in range(2):  # the residual is O(1/n²): halving 1/n divides it by about 4
        assert errs[1][k] < errs[0][k] / 3.0, errs
        assert errs[0][k] < 5e-4


@pytest.mark.parametrize("P", [2, 3])
def test_multi_input_round_trip(P):
    """Matched couplings fed back through the forward diagram einsums reproduce K1 and V to 1e-12."""
    rng = np.random.default_rng(P)
    x = rng.standard_normal((P, 4))
    net = nnft.MLP("erf", depth=3, width=50, C_b=0.1, C_W=1.3, n_out=6)
    K_ = net.kernels(x, ntk=False).K[-1]
    K1_ = net.nlo_metric(x)
    V_ = net.four_point(x)
    for m_ in (1.0, 6.0):
        _, _, g2_1, g4_1 = matched_couplings(K_, K1_, V_, 50.0, m_)
        a = Action()
        two = a.correlator(2, 1)
        four = a.correlator(4, 1)
        T1 = two.evaluate(K_, {2: g4_1}, m_)[((0, 1),)] - K_  # first-order diagrams (the zeroth is G itself)
        K1_back = -K_ @ g2_1 @ K_ + T1
        np.testing.assert_allclose(K1_back, K1_, rtol=0, atol=1e-12 * np.max(np.abs(K1_)) + 1e-14)
        tree = four.evaluate(K_, {2: g4_1}, m_)
        for pattern, perm in (((0, 1), (2, 3)), (0, 1, 2, 3)), ((((0, 2), (1, 3))), (0, 2, 1, 3)):
            np.testing.assert_allclose(tree[pattern], np.transpose(V_, np.argsort(perm)), rtol=0,
                                       atol=1e-12 * np.max(np.abs(V_)))


def test_eft_layers_and_errors():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4))
    net = nnft.MLP("tanh", depth=4, width=30)
    e = net.eft(x, layers="all")
    assert e.gamma4.shape == (4, 2, 2, 2, 2) and np.all(e.gamma4[0] == 0)
    np.testing.assert_allclose(e.gamma2[0], np.linalg.inv(net.kernels(x, ntk=False).K[0]))
    last = net.eft(x)
    np.testing.assert_allclose(last.gamma4, e.gamma4[-1])
    assert "EFTCouplings" in repr(last) and "<table>" in last._repr_html_()
    with pytest.raises(InputError, match="singular"):
        net.eft(np.vstack([x, x[:1]]))
    with pytest.raises(InputError, match="m must be"):
        net.eft(x, m=-1)


def test_positive_V_gives_positive_gamma4():
    x = np.array([[1.0, 0.2, 0.1]])
    e = nnft.MLP("relu", depth=3, width=20, C_W=2.0).eft(x)
    assert e.gamma4[0, 0, 0, 0] > 0


def test_einsum_count_patterns():
    for d in itertools.chain(diagrams(4, (2,)), diagrams(2, (2,))):
        spec, ops = d.einsum()
        assert spec.count(",") + 1 == len(ops)


def test_coupling_flow_plot():
    """nnft.plot.coupling_flow: n γ4 K² equals V/K² layer by layer for one input (and 0 at layer 1)."""
    import matplotlib

    matplotlib.use("Agg")
    from nnft import plot

    x = np.array([[0.9, -0.3, 0.4]])
    net = nnft.MLP("tanh", depth=5, width=40, n_out=3)
    fig = plot.coupling_flow(net, x)
    y = fig.axes[0].lines[0].get_ydata()
    V = net.four_point(x, layers="all")[:, 0, 0, 0, 0]
    K = net.kernels(x, ntk=False).K[:, 0, 0]
    np.testing.assert_allclose(y, V / K**2, rtol=1e-12, atol=1e-15)
    assert y[0] == 0.0
