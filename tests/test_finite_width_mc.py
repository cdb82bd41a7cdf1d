"""Monte Carlo must-show of the 1/n theory: V and K1 against seeded ensembles of finite-width networks.

For each activation (tanh at criticality C_b = 0, C_W = 1 and off it C_b = 0.1, C_W = 1.5; erf and gelu;
relu at C_W = 2, C_b = 0), depth L ∈ {3, 5} and P ∈ {1, 2, 3} inputs, networks with all hidden widths
n ∈ WIDTHS (16 … 128) and ``n_out(n) = max(64, 2n)`` output neurons are sampled by
``nnft.montecarlo.estimate`` (conditional sampler, jackknife errors over 64 groups). At each width the
connected four-point functions (same neuron and cross neuron) and G − K are estimated, K being the exact
infinite-width metric ``net.nngp``.

The fit. The statistics are exactly O(1/n) — the estimators are unbiased (U-statistics) and the
connected four-point function and G − K vanish at infinite width — so we fit

    y(n) = n · statistic(n) = c_0 + c_1/n + c_2/n²      (``fit_inverse_width(..., order=2)`` on y)

i.e. ``statistic = c_0/n + c_1/n² + c_2/n³`` with no constant term, and test that the fitted 1/n
coefficient of the statistic, c_0 = ``fit.intercept``, equals the theory: V_{(ab)(cd)} for
``four_point_cross[a,b,c,d]``, V_{(ab)(cd)} + V_{(ac)(bd)} + V_{(ad)(bc)} for ``four_point_same`` and
K1_{ab} for G − K. Why this model and not ``statistic = a + b/n + c/n²``: (i) a is known to be 0, and
leaving it free more than doubles the error of b; (ii) with a fixed, the extra 1/n³ term costs little
and is needed — for relu at L = 5 the cross-neuron function is K²(20/n + 150/n² + 500/n³ + 625/n⁴), the
exact Π(1 + 5/n) − 1 of one input; without the 1/n³ term V comes out about 1.3 standard errors low at
the precision used here, with it the bias is 0.01 SE (``test_fit_model_on_the_exact_relu_series``).
The fits' χ² is reported in the failure messages and its mean over the entries of a case must stay < 3.

Every distinct entry at that P is checked (up to the symmetries of V: (ab), (cd), (ab)↔(cd) for the
cross-neuron function, all 4! permutations for the same-neuron one, (ab) for K1): 1 + 1 + 1 entries at
P = 1, 6 + 5 + 3 at P = 2, 21 + 15 + 6 at P = 3, each within 3 standard errors.

One ensemble serves the three P of an (activation, L): it is drawn at the three inputs of X, and the
P = 1 and P = 2 cases compare the blocks of inputs {0} and {0, 1} with the theory evaluated at X[:1] and
X[:2] (separate code paths of the engine: the one-input scalar loop, the P-input stencils). The
statistic of a block does not depend on the other inputs fed to the network, so this is the same test as
a separate run at P = 1 or 2, with three times the networks for the same time (the P tests of one
(activation, L) are therefore not statistically independent).

Precision (SAMPLES = 80 000 networks per width): the four-point coefficients are measured to 1–12 %
(median relative SE per case); K1 to 12–29 % at L = 5 for tanh at criticality, erf, and gelu at P ≥ 2,
to 33–85 % in the other cases (215 % for gelu, L = 3, P = 1, where K1 is nearly 0) — n(G − K) is the
noisiest statistic, its error grows like √n — so the K1 checks at L = 3 are weak; relu has K1 = 0
exactly at one input, and that is what is tested there.

relu with P > 1 inputs: the theory's four-point moments are the exact orthant moments of
nnft.numeric.orthant_moments.

Negative controls show the tests can fail, each wrong prediction being rejected at more than 5 SE:
V with its mixing term dropped (``mixing`` of nnft.numeric.finite_width patched to 0, P = 3; for relu the
same in an independent one-input recursion); the one-input V recursion with χ_⊥² in place of χ_∥²
(the trap of FACTS.md; an independent Gauss–Hermite implementation of the one-input recursions, itself
checked against the engine); and K1 from its K-dependent propagation ``D·K1`` alone, without the
½ D²:V source (``nlo_shift`` patched), which leaves K1 ≡ 0 — rejected where K1 is resolved (L = 5).

Cost: one ensemble per (activation, L), 6 widths × SAMPLES networks, 6–25 s each on two cores; the
whole file about 3 minutes (``pytest -m slow tests/test_finite_width_mc.py``). All seeds are fixed
(``_seed``: crc32 of setting, depth and width).
"""

from __future__ import annotations

import functools
import itertools
import zlib

import numpy as np
import pytest

import nnft
from nnft.montecarlo import estimate, fit_inverse_width

WIDTHS = (16, 24, 32, 48, 64, 128)
SAMPLES = 80_000
DEPTHS = (3, 5)
Z_MAX = 3.0  # every entry: |fitted − theory| ≤ 3 standard errors
Z_WRONG = 5.0  # a wrong prediction: rejected at more than 5 standard errors

# Three inputs of n_0 = 4 with |x|²/n_0 = 1, 0.64, 1.44 and correlations −0.09, −0.07, −0.74 at layer 1.
_RAW = np.array([[1.0, 0.3, -0.5, 0.8], [-0.4, 1.1, 0.6, 0.2], [0.7, -0.9, 0.1, -0.6]])
X = _RAW / np.linalg.norm(_RAW, axis=1, keepdims=True) * np.array([[2.0], [1.6], [2.4]])

#: name → (activation, C_b, C_W)
SETTINGS = {
    "tanh-critical": ("tanh", 0.0, 1.0),
    "tanh-offcritical": ("tanh", 0.1, 1.5),
    "erf": ("erf", 0.0, 1.5),
    "gelu": ("gelu", 0.0, 2.0),
    "relu": ("relu", 0.0, 2.0),
}

def _seed(*parts) -> int:
    """A fixed seed per (setting, depth, width): crc32 of their names."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def n_out(n: int) -> int:
    """Output neurons m of the sampled networks: more output neurons cut the noise at little cost."""
    return max(64, 2 * n)


def _net(setting: str, L: int, n: int = 32) -> nnft.MLP:
    act, cb, cw = SETTINGS[setting]
    return nnft.MLP(act, depth=L, width=n, C_b=cb, C_W=cw, n_out=n_out(n))


# ---------------------------------------------------------------------------------------------- the ensembles


@functools.cache
def ensemble(setting: str, L: int) -> dict[str, np.ndarray]:
    """n·cumulant(n) and its standard error at every width, for the three inputs of X.

    Keys ``cross``, ``same`` (W, 3, 3, 3, 3) and ``G`` (W, 3, 3), each with ``<key>_err``: the values
    y(n) = n·four_point_cross, n·four_point_same and n·(G − K) of the Monte Carlo estimates.
    """
    K = _net(setting, L).nngp(X)
    out: dict[str, list] = {k: [] for k in ("cross", "same", "G", "cross_err", "same_err", "G_err")}
    for n in WIDTHS:
        r = estimate(_net(setting, L, n), X, samples=SAMPLES, seed=_seed(setting, L, n),
                     statistics=("G", "four_point"), warn_noisy=False)
        out["cross"].append(n * r.four_point_cross.value)
        out["cross_err"].append(n * r.four_point_cross.stderr)
        out["same"].append(n * r.four_point_same.value)
        out["same_err"].append(n * r.four_point_same.stderr)
        out["G"].append(n * (r.G.value - K))
        out["G_err"].append(n * r.G.stderr)
    return {k: np.array(v) for k, v in out.items()}


def cross_entries(P: int):
    """Distinct (a, b, c, d) of V_{(ab)(cd)}: a ≤ b, c ≤ d, (a, b) ≤ (c, d)."""
    pairs = [(a, b) for a in range(P) for b in range(a, P)]
    return [p + q for i, p in enumerate(pairs) for q in pairs[i:]]


def same_entries(P: int):
    """Distinct entries of the fully symmetric same-neuron function: multisets of 4 inputs."""
    return list(itertools.combinations_with_replacement(range(P), 4))


def pair_entries(P: int):
    return list(itertools.combinations_with_replacement(range(P), 2))


def predictions(V: np.ndarray, K1: np.ndarray) -> dict[str, dict[tuple, float]]:
    """The theory's 1/n coefficient of each checked entry: V, the three-pairing sum, K1."""
    P = K1.shape[0]
    same = V + np.transpose(V, (0, 2, 1, 3)) + np.transpose(V, (0, 3, 2, 1))
    return {
        "cross": {e: float(V[e]) for e in cross_entries(P)},
        "same": {e: float(same[e]) for e in same_entries(P)},
        "G": {e: float(K1[e]) for e in pair_entries(P)},
    }


@functools.cache
def fitted(setting: str, L: int, key: str, entry: tuple):
    """The fit ``y(n) = c_0 + c_1/n + c_2/n²`` of y(n) = n·cumulant(n) for one entry (module docstring)."""
    d = ensemble(setting, L)
    idx = (slice(None), *entry)
    return fit_inverse_width(WIDTHS, d[key][idx], d[f"{key}_err"][idx], order=2)


def zscores(setting: str, L: int, pred: dict[str, dict[tuple, float]]) -> dict[tuple[str, tuple], float]:
    return {(key, e): fitted(setting, L, key, e).zscore(intercept=v)["intercept"]
            for key, entries in pred.items() for e, v in entries.items()}


def _table(setting, L, pred, z) -> str:
    rows = []
    for (key, e), zz in z.items():
        f = fitted(setting, L, key, e)
        rows.append(f"  {key:5s} {e}: fit {f.intercept:+.5f} ± {f.stderr[0]:.5f}  theory {pred[key][e]:+.5f}  "
                    f"z {zz:+.2f}  χ²/dof {f.chi2:.1f}/{f.dof}")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------- the must-show


def _cases():
    for setting in SETTINGS:
        for L in DEPTHS:
            for P in (1, 2, 3):
                yield pytest.param(setting, L, P, marks=[pytest.mark.slow], id=f"{setting}-L{L}-P{P}")


@pytest.mark.parametrize("setting, L, P", list(_cases()))
def test_vertex_and_nlo_metric_against_monte_carlo(setting, L, P):
    """Fitted 1/n coefficients of both four-point functions and of G − K equal V and K1: every entry ≤ 3 SE.

    Also a χ² sanity check of the fit model: the mean χ²/dof over the entries stays below 3.
    """
    c = _net(setting, L).cumulants(X[:P])
    assert c.n == 32 and c.V.shape == (P,) * 4 and c.K1.shape == (P, P)
    np.testing.assert_allclose(c.K, _net(setting, L).nngp(X)[:P, :P], rtol=1e-10)
    pred = predictions(c.V, c.K1)
    z = zscores(setting, L, pred)
    worst = max(z, key=lambda k: abs(z[k]))
    assert all(abs(v) <= Z_MAX for v in z.values()), (
        f"{setting}, L = {L}, P = {P}: worst {worst} at z = {z[worst]:+.2f}\n{_table(setting, L, pred, z)}")
    chi2 = np.mean([fitted(setting, L, key, e).chi2 / fitted(setting, L, key, e).dof for key, e in z])
    assert chi2 < 3.0, f"mean χ²/dof {chi2:.2f}: the fit model misses a term\n{_table(setting, L, pred, z)}"


# ---------------------------------------------------------------------------------------------- the controls


def _sigma(act: str):
    """σ and σ' as numpy functions, for the independent one-input recursion."""
    from scipy.special import erf

    if act == "tanh":
        return np.tanh, lambda z: 1.0 / np.cosh(z) ** 2
    if act == "erf":
        return erf, lambda z: 2.0 / np.sqrt(np.pi) * np.exp(-z * z)
    if act == "gelu":
        def phi(z):
            return np.exp(-z * z / 2) / np.sqrt(2 * np.pi)

        def cdf(z):
            return 0.5 * (1 + erf(z / np.sqrt(2)))

        return (lambda z: z * cdf(z)), (lambda z: cdf(z) + z * phi(z))
    if act == "relu":
        return (lambda z: np.maximum(z, 0.0)), (lambda z: (z > 0).astype(float))
    raise ValueError(act)


def one_input(setting: str, L: int, *, chi: str = "par", mix: bool = True) -> tuple[float, float, float]:
    """K, V and K1 of the output layer for the input X[0], by an independent Gauss–Hermite recursion.

    ``V' = C_W²(⟨σ⁴⟩ − ⟨σ²⟩²) + χ² V`` with χ = χ_∥ = C_W g'(K) (``chi="par"``, the theory) or the wrong
    χ_⊥ = C_W⟨σ'²⟩ (``chi="perp"``), ``mix=False`` drops the χ² V term; ``K1' = χ_∥ K1 + ½ C_W g''(K) V``.
    g' and g'' come from Hermite weights: ``g^{(k)}(K) = ⟨σ²(z) He_{2k}(z/√K)⟩ / (2^k K^k)``. With an even
    number of symmetric nodes the rule is exact for relu's piecewise polynomials.
    """
    from numpy.polynomial.hermite_e import hermegauss

    act, cb, cw = SETTINGS[setting]
    sigma, dsigma = _sigma(act)
    u, w = hermegauss(160)
    w = w / w.sum()
    K = cb + cw * float(X[0] @ X[0]) / X.shape[1]
    V = K1 = 0.0
    for _ in range(1, L):
        s = sigma(np.sqrt(K) * u)
        g, m4 = w @ s**2, w @ s**4
        g1 = w @ (s**2 * (u**2 - 1)) / (2 * K)
        g2 = w @ (s**2 * (u**4 - 6 * u**2 + 3)) / (4 * K**2)
        chi_par = cw * g1
        x = chi_par if chi == "par" else cw * (w @ dsigma(np.sqrt(K) * u) ** 2)
        K1 = chi_par * K1 + 0.5 * cw * g2 * V
        V = cw**2 * (m4 - g * g) + (x**2 * V if mix else 0.0)
        K = cb + cw * g
    return float(K), float(V), float(K1)


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("L", DEPTHS)
def test_independent_one_input_recursion_matches_the_engine(setting, L):
    """The Gauss–Hermite one-input recursion of the controls reproduces the engine's K, V and K1 (1e-9)."""
    K, V, K1 = one_input(setting, L)
    c = _net(setting, L).cumulants(X[:1])
    assert K == pytest.approx(c.K[0, 0], rel=1e-10)
    assert V == pytest.approx(c.V[0, 0, 0, 0], rel=1e-9)
    assert K1 == pytest.approx(c.K1[0, 0], rel=1e-8, abs=1e-12)


def _wrong_z(setting, L, pred) -> dict:
    z = zscores(setting, L, pred)
    return {k: abs(v) for k, v in z.items()}


@pytest.mark.slow
@pytest.mark.parametrize("L", DEPTHS)
@pytest.mark.parametrize("setting", [s for s in SETTINGS if s != "relu"])
def test_control_vertex_without_mixing_is_rejected(setting, L, monkeypatch):
    """V with the mixing term T(V) dropped (engine, P = 3 stencils) fails the must-show by more than 5 SE."""
    import nnft.numeric.finite_width as fw

    c = _net(setting, L).cumulants(X)
    monkeypatch.setattr(fw, "mixing", lambda D, V: np.zeros_like(V))
    wrong = _net(setting, L).cumulants(X)
    assert np.max(np.abs(wrong.V - c.V)) > 0.1 * np.max(np.abs(c.V))
    z = _wrong_z(setting, L, predictions(wrong.V, c.K1))
    z4 = {k: v for k, v in z.items() if k[0] != "G"}
    assert z[("cross", (0, 0, 0, 0))] > Z_WRONG, z4
    assert sum(v > Z_WRONG for v in z4.values()) >= 3, z4


@pytest.mark.slow
@pytest.mark.parametrize("L", DEPTHS)
def test_control_relu_vertex_without_mixing_is_rejected(L):
    """relu, one input: V without the χ² V term (independent recursion) is rejected at more than 5 SE."""
    _, V, _ = one_input("relu", L, mix=False)
    z = _wrong_z("relu", L, predictions(np.full((1, 1, 1, 1), V), np.zeros((1, 1))))
    assert z[("cross", (0, 0, 0, 0))] > Z_WRONG and z[("same", (0, 0, 0, 0))] > Z_WRONG


@pytest.mark.slow
@pytest.mark.parametrize("L", DEPTHS)
@pytest.mark.parametrize("setting", ["tanh-critical", "tanh-offcritical", "erf"])
def test_control_chi_perp_in_the_vertex_is_rejected(setting, L):
    """One input: V mixed with χ_⊥² instead of χ_∥² (FACTS.md's trap) is rejected at more than 5 SE."""
    _, V, K1 = one_input(setting, L)
    _, wrong, _ = one_input(setting, L, chi="perp")
    assert abs(wrong / V - 1) > 0.2
    z = _wrong_z(setting, L, predictions(np.full((1, 1, 1, 1), wrong), np.full((1, 1), K1)))
    assert z[("cross", (0, 0, 0, 0))] > Z_WRONG and z[("same", (0, 0, 0, 0))] > Z_MAX, z


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["tanh-critical", "erf", "gelu"])
def test_control_nlo_metric_without_its_source_is_rejected(setting):
    """K1 from its K-dependent part D·K1 alone (no ½ D²:V source) is K1 ≡ 0: rejected at more than 5 SE.

    K1 is the noisiest statistic (n(G − K) has an error growing like √n): it is resolved this well at
    L = 5, where it has grown, not at L = 3.
    """
    import nnft.numeric.finite_width as fw

    L = 5
    c = _net(setting, L).cumulants(X)
    orig = fw.nlo_shift

    def no_source(D, D2, K1, V):
        return orig(D, {k: np.zeros_like(v) for k, v in D2.items()}, K1, V)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fw, "nlo_shift", no_source)
        wrong = _net(setting, L).cumulants(X)
    assert np.all(wrong.K1 == 0) and np.max(np.abs(c.K1)) > 0
    z = _wrong_z(setting, L, {"G": predictions(c.V, wrong.K1)["G"]})
    assert max(z.values()) > Z_WRONG, z


def test_fit_model_on_the_exact_relu_series():
    """The fit model of this file on an exact series with relu's large higher orders: bias ≪ 1 SE.

    relu, C_W = 2, one input, L = 5: ``E[z_i² z_j²]_c / K² = (1 + 5/n)⁴ − 1 = 20/n + 150/n² + 500/n³ + 625/n⁴``
    exactly. With errors as in the Monte Carlo (1.5 % of n·κ at n = 16, growing like n), y = n·κ fitted with
    ``c_0 + c_1/n + c_2/n²`` recovers 20 to < 0.1 SE; ``c_0 + c_1/n`` alone would be off by more than 1 SE.
    """
    n = np.array(WIDTHS, dtype=float)
    y = n * ((1 + 5 / n) ** 4 - 1)
    err = 0.015 * 20 * n / 16
    good = fit_inverse_width(n, y, err, order=2)
    short = fit_inverse_width(n, y, err, order=1)
    assert abs(good.zscore(intercept=20.0)["intercept"]) < 0.1
    assert abs(short.zscore(intercept=20.0)["intercept"]) > 1.0
