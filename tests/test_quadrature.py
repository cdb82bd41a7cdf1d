"""Tests of nnft.numeric.quadrature against closed forms and mpmath references computed here, not by nnft."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import erf, ndtr, owens_t

from nnft.numeric.quadrature import DEFAULT_ORDER, gauss1, gauss2, gauss2_product

RTOL = 1e-10
ATOL = 1e-12

# ----------------------------------------------------------------------------------------- activations


def relu(z):
    return np.maximum(z, 0.0)


def step(z):  # Θ(0) = 1/2
    return np.where(z > 0, 1.0, np.where(z < 0, 0.0, 0.5))


def leaky(z, a=0.1):
    return np.where(z > 0, z, a * z)


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def softplus(z):
    return np.logaddexp(0.0, z)


def gelu(z):
    return 0.5 * z * (1.0 + erf(z / math.sqrt(2.0)))


def swish(z):
    return z * sigmoid(z)


def pw(z):  # a user Piecewise: tanh below 0.7, a parabola above (kink, not a jump, at 0.7)
    return np.where(z < 0.7, np.tanh(z), math.tanh(0.7) + 0.3 * (z - 0.7) + (z - 0.7) ** 2)


# ----------------------------------------------------------------------------------------- closed forms


def _angle(Kaa, Kab, Kbb):
    c = np.clip(Kab / np.sqrt(Kaa * Kbb), -1.0, 1.0)
    return c, np.arctan2(np.sqrt((1.0 - c) * (1.0 + c)), c)  # accurate at c → ±1


def ex_relu(Kaa, Kab, Kbb):
    c, th = _angle(Kaa, Kab, Kbb)
    return np.sqrt(Kaa * Kbb) / (2 * np.pi) * (np.sin(th) + (np.pi - th) * c)


def ex_step(Kaa, Kab, Kbb):
    c, th = _angle(Kaa, Kab, Kbb)
    return (np.pi - th) / (2 * np.pi)


def ex_abs(Kaa, Kab, Kbb):
    c, th = _angle(Kaa, Kab, Kbb)
    return 2 / np.pi * np.sqrt(Kaa * Kbb) * (np.sin(th) + c * (np.pi / 2 - th))


def ex_leaky(Kaa, Kab, Kbb, a=0.1):
    # leaky = (1+a)/2 z + (1-a)/2 |z|; the cross terms ⟨z |z'|⟩ vanish by symmetry
    return (1 + a) ** 2 / 4 * Kab + (1 - a) ** 2 / 4 * ex_abs(Kaa, Kab, Kbb)


def ex_erf(Kaa, Kab, Kbb):
    return 2 / np.pi * np.arcsin(2 * Kab / np.sqrt((1 + 2 * Kaa) * (1 + 2 * Kbb)))


def ex_sin(Kaa, Kab, Kbb):
    return 0.5 * (np.exp(Kab - (Kaa + Kbb) / 2) - np.exp(-Kab - (Kaa + Kbb) / 2))


def ex_exp(Kaa, Kab, Kbb):
    return np.exp((Kaa + Kbb) / 2 + Kab)


def ex_step_shift(K, Kab, a=0.7):
    """P(z_a > a, z_b > a) for equal variances K: 1 − Φ(h) − 2 T(h, √((1−ρ)/(1+ρ))), h = a/√K."""
    rho = np.clip(Kab / K, -1.0, 1.0)
    h = a / np.sqrt(K)
    with np.errstate(divide="ignore"):
        alpha = np.sqrt((1 - rho) / (1 + rho))
    T = np.where(np.isinf(alpha), np.where(h > 0, 0.0, 0.5), owens_t(h, np.where(np.isinf(alpha), 0, alpha)))
    # ρ = −1: the events z > a and −z > a are disjoint for a > 0
    return np.where(rho == -1.0, 0.0, 1 - ndtr(h) - 2 * T)


def close(got, want, rtol=RTOL, atol=ATOL):
    got, want = np.asarray(got), np.asarray(want)
    err = np.abs(got - want)
    ok = (err <= rtol * np.abs(want)) | (err <= atol)
    worst = np.max(err / np.maximum(np.abs(want), atol / rtol))
    assert ok.all(), f"{(~ok).sum()} of {ok.size} entries off; worst relative error {worst:.2e}"


# ----------------------------------------------------------------------------------------- grids

VARS = np.array([1e-6, 1e-3, 0.05, 0.3, 1.0, 3.0, 30.0, 1e3])
CORRS = np.array([-1.0, -1 + 1e-12, -0.95, -0.7, -0.3, 0.0, 0.2, 0.6, 0.75, 0.99, 1 - 1e-6, 1 - 1e-12, 1.0])


def grid(vars_=VARS, corrs=CORRS):
    Kaa, Kbb, c = (a.ravel() for a in np.meshgrid(vars_, vars_, corrs, indexing="ij"))
    return Kaa, c * np.sqrt(Kaa * Kbb), Kbb


# ----------------------------------------------------------------------------------------- 2-D closed forms

CASES = [
    ("relu", relu, (0.0,), ex_relu, VARS),
    ("step", step, (0.0,), ex_step, VARS),
    ("abs", np.abs, (0.0,), ex_abs, VARS),
    ("leaky", leaky, (0.0,), ex_leaky, VARS),
    ("erf", erf, (), ex_erf, VARS),
    ("sin", np.sin, (), ex_sin, VARS[VARS <= 30]),
    ("exp", np.exp, (), ex_exp, VARS[VARS <= 1]),
]


@pytest.mark.parametrize("name,f,kinks,exact,vars_", CASES, ids=[c[0] for c in CASES])
def test_product_closed_forms(name, f, kinks, exact, vars_):
    Kaa, Kab, Kbb = grid(vars_)
    got = gauss2_product(f, f, Kaa, Kab, Kbb, kinks, kinks)
    assert np.isfinite(got).all()
    close(got, exact(Kaa, Kab, Kbb))


@pytest.mark.parametrize("name,f,kinks,exact,vars_", CASES[:5], ids=[c[0] for c in CASES[:5]])
def test_gauss2_closed_forms(name, f, kinks, exact, vars_):
    Kaa, Kab, Kbb = grid(vars_[::2])
    got = gauss2(lambda x, y: f(x) * f(y), Kaa, Kab, Kbb, kinks, kinks)
    close(got, exact(Kaa, Kab, Kbb))


def test_jump_at_arbitrary_point():
    """⟨Θ(z_a − 0.7) Θ(z_b − 0.7)⟩ with Owen's T, equal variances, all correlations."""
    K, c = (a.ravel() for a in np.meshgrid(VARS, CORRS, indexing="ij"))
    Kab = c * K

    def sh(z):
        return step(z - 0.7)

    close(gauss2_product(sh, sh, K, Kab, K, (0.7,), (0.7,)), ex_step_shift(K, Kab))
    close(gauss2(lambda x, y: sh(x) * sh(y), K, Kab, K, (0.7,), (0.7,)), ex_step_shift(K, Kab))


def test_mixed_kinks_one_side():
    """Only f_b kinked (the variables are exchanged internally): ⟨z_a relu(z_b)⟩ = K_ab/2."""
    Kaa, Kab, Kbb = grid(VARS[::2])
    close(gauss2_product(lambda z: z, relu, Kaa, Kab, Kbb, (), (0.0,)), Kab / 2)
    close(gauss2(lambda x, y: x * relu(y), Kaa, Kab, Kbb, (), (0.0,)), Kab / 2)


# ----------------------------------------------------------------------------------------- 1-D


def _mp_gauss1(f, K, kinks=()):
    mp.mp.dps = 25
    s = mp.sqrt(mp.mpf(K))
    pts = sorted({mp.mpf(0), *(mp.mpf(k) / s for k in kinks)} | {mp.mpf(d) / s for d in (-2, -0.5, 0.5, 2)})
    return float(mp.quad(lambda x: mp.npdf(x) * f(s * x), [-mp.inf, *pts, mp.inf]))


MP = {
    "tanh": (np.tanh, mp.tanh, ()),
    "sigmoid": (sigmoid, lambda z: 1 / (1 + mp.exp(-z)), ()),
    "softplus": (softplus, lambda z: mp.log1p(mp.exp(z)) if z < 40 else z + mp.log1p(mp.exp(-z)), ()),
    "gelu": (gelu, lambda z: z * (1 + mp.erf(z / mp.sqrt(2))) / 2, ()),
    "swish": (swish, lambda z: z / (1 + mp.exp(-z)), ()),
    "pw": (pw, lambda z: mp.tanh(z) if z < 0.7 else mp.tanh(0.7) + 0.3 * (z - 0.7) + (z - 0.7) ** 2, (0.7,)),
}


@pytest.mark.parametrize("name", list(MP))
def test_gauss1_mpmath(name):
    f, fm, kinks = MP[name]
    Ks = np.array([1e-6, 0.01, 0.5, 2.0, 10.0, 1e3])
    got = gauss1(lambda z: f(z) ** 2, Ks, kinks)
    want = np.array([_mp_gauss1(lambda z: fm(z) ** 2, K, kinks) for K in Ks])
    close(got, want)


def test_gauss1_closed_forms():
    K = np.concatenate([VARS, [0.0]])
    s = np.sqrt(K)
    close(gauss1(relu, K, (0.0,)), s / math.sqrt(2 * math.pi))
    close(gauss1(lambda z: relu(z) ** 2, K, (0.0,)), K / 2)
    close(gauss1(step, K, (0.0,)), np.full_like(K, 0.5))  # K = 0: Θ(0) = 1/2
    close(gauss1(np.cos, K[K <= 30]), np.exp(-K[K <= 30] / 2))
    close(gauss1(lambda z: erf(z) ** 2, K), 2 / np.pi * np.arcsin(2 * K / (1 + 2 * K)))
    # E[(z − a)_+] = s φ(a/s) − a (1 − Φ(a/s)): a kink at 0.7
    a, Kp = 0.7, K[K > 0]
    sp_ = np.sqrt(Kp)
    want = sp_ * np.exp(-0.5 * (a / sp_) ** 2) / math.sqrt(2 * math.pi) - a * ndtr(-a / sp_)
    close(gauss1(lambda z: relu(z - a), Kp, (a,)), want)


def test_zero_variance_evaluates_at_zero():
    assert gauss1(lambda z: np.cos(z) + 2, 0.0) == pytest.approx(3.0, rel=1e-15)
    assert gauss1(lambda z: np.cos(z) + 2, 0.0, (0.0,)) == pytest.approx(3.0, rel=1e-15)
    # K_aa = 0: z_a ≡ 0 whatever K_ab says; f(0, z_b) averaged over z_b
    got = gauss2(lambda x, y: (x + 1.5) * y**2, 0.0, 0.3, 2.0, (0.0,), (0.0,))
    assert got == pytest.approx(3.0, rel=1e-12)
    got = gauss2_product(step, relu, np.zeros(3), 0.0, np.array([0.0, 1.0, 4.0]), (0.0,), (0.0,))
    close(got, 0.5 * np.array([0.0, 1.0, 2.0]) / math.sqrt(2 * math.pi))


# ----------------------------------------------------------------------------------------- 2-D mpmath
# Computed once by nested mpmath.quad (Gauss-Legendre, 20 digits, both integrals split at the feature
# points and graded around them; see _mp_gauss2). Regenerate with `pytest -m slow`.

REF2 = {
    ("tanh", 1.0, 0.6 * 1.5, 2.25): 0.257844898284848725,
    ("tanh", 0.5, -0.45, 0.5): -0.244434050941912536,
    ("tanh", 30.0, 29.0, 30.0): 0.781223465726496906,
    ("tanh", 0.2, 0.05, 4.0): 0.0155545715213244265,
    ("sigmoid", 1.0, 0.6 * 1.5, 2.25): 0.283154200152103184,
    ("sigmoid", 0.5, -0.45, 0.5): 0.227186958800103108,
    ("sigmoid", 30.0, 29.0, 30.0): 0.419813887282707119,
    ("sigmoid", 0.2, 0.05, 4.0): 0.251806562087152887,
    ("softplus", 1.0, 0.6 * 1.5, 2.25): 0.985499930073842445,
    ("softplus", 0.5, -0.45, 0.5): 0.458520299626019466,
    ("gelu", 1.0, 0.6 * 1.5, 2.25): 0.416408319415341744,
    ("gelu", 0.5, -0.45, 0.5): -0.0553635900642859526,
    ("gelu", 30.0, 29.0, 30.0): 14.4785231602570945,
}


def _mp_gauss2(f, Kaa, Kab, Kbb):
    mp.mp.dps = 20
    sa, sb = mp.sqrt(Kaa), mp.sqrt(Kbb)
    c = mp.mpf(Kab) / mp.sqrt(mp.mpf(Kaa) * Kbb)
    t = sb * mp.sqrt(1 - c * c)

    def splits(center, scale):
        pts = {mp.mpf(-12), mp.mpf(12)}
        for d in (0, 0.5, 1, 2, 4, 8):
            for sg in (-1, 1):
                p = center + sg * d * scale
                if -12 < p < 12:
                    pts.add(p)
        return sorted(pts)

    def inner(u):
        return mp.quad(
            lambda w: mp.npdf(w) * f(c * sb * u + t * w), splits(-c * sb * u / t, 1 / t), method="gauss-legendre"
        )

    return mp.quad(lambda u: mp.npdf(u) * f(sa * u) * inner(u), splits(0, 1 / max(sa, sb)), method="gauss-legendre")


@pytest.mark.parametrize("key", sorted(REF2))
def test_product_mpmath(key):
    name, Kaa, Kab, Kbb = key
    f = MP[name][0]
    close(gauss2_product(f, f, Kaa, Kab, Kbb), REF2[key])
    close(gauss2(lambda x, y: f(x) * f(y), Kaa, Kab, Kbb), REF2[key])


@pytest.mark.slow
def test_reference_values_reproduce():
    key = ("tanh", 1.0, 0.6 * 1.5, 2.25)
    assert float(_mp_gauss2(MP["tanh"][1], *key[1:])) == pytest.approx(REF2[key], rel=1e-14)


# ----------------------------------------------------------------------------------------- properties

_var = st.one_of(st.sampled_from([0.0, 1e-6, 1e3]), st.floats(1e-6, 1e3))
_corr = st.one_of(st.sampled_from([-1.0, 1.0, 1 - 1e-12, -1 + 1e-12, 0.0]), st.floats(-1.0, 1.0))
_funcs = st.sampled_from([("relu", relu, (0.0,)), ("tanh", np.tanh, ()), ("step", step, (0.0,)), ("pw", pw, (0.7,))])


@settings(max_examples=30, deadline=None)
@given(Kaa=_var, Kbb=_var, c=_corr, fa=_funcs, fb=_funcs)
def test_random_covariances_finite_and_symmetric(Kaa, Kbb, c, fa, fb):
    Kab = c * math.sqrt(Kaa * Kbb)
    (_, f, ka), (_, g, kb) = fa, fb
    r1 = gauss2(lambda x, y: f(x) * g(y), Kaa, Kab, Kbb, ka, kb)
    r2 = gauss2(lambda x, y: f(y) * g(x), Kbb, Kab, Kaa, kb, ka)
    r3 = gauss2_product(f, g, Kaa, Kab, Kbb, ka, kb)
    assert np.isfinite([r1, r2, r3]).all()
    scale = math.sqrt(gauss1(lambda z: f(z) ** 2, Kaa, ka) * gauss1(lambda z: g(z) ** 2, Kbb, kb))
    assert abs(r1 - r2) <= 1e-10 * scale + 1e-13
    assert abs(r1 - r3) <= 1e-10 * scale + 1e-13


def test_clipping_non_psd_and_shapes():
    # |K_ab| slightly above √(K_aa K_bb) (rounding) is clipped to c = 1
    got = gauss2_product(relu, relu, 2.0, 2.0 * (1 + 1e-13), 2.0, (0.0,), (0.0,))
    assert got == pytest.approx(1.0, rel=1e-12)
    out = gauss2_product(np.tanh, np.tanh, np.ones((3, 1)), 0.5, np.ones((1, 4)))
    assert out.shape == (3, 4)
    assert gauss1(np.tanh, 1.0).shape == ()
    assert gauss2(lambda x, y: x * y, np.ones((2, 2, 2)), 0.3, 1.0).shape == (2, 2, 2)


def test_invalid_input():
    with pytest.raises(ValueError, match="variance"):
        gauss1(np.tanh, [1.0, -1e-3])
    with pytest.raises(ValueError, match="variance"):
        gauss2_product(np.tanh, np.tanh, 1.0, 0.0, -1.0)
    with pytest.raises(ValueError, match="broadcast"):
        gauss2_product(np.tanh, np.tanh, np.ones(3), np.ones(4), 1.0)
    with pytest.raises(ValueError, match="finite"):
        gauss2(lambda x, y: x, 1.0, np.nan, 1.0)
    with pytest.raises(ValueError, match="order"):
        gauss1(np.tanh, 1.0, order=1)


def test_low_order_is_detectably_worse():
    """The default order is needed: order 5 misses 1e-10 on the relu grid (so the tests above can fail)."""
    Kaa, Kab, Kbb = grid(VARS[::2])
    err = np.abs(gauss2_product(relu, relu, Kaa, Kab, Kbb, (0.0,), (0.0,), order=5) - ex_relu(Kaa, Kab, Kbb))
    assert np.max(err / np.maximum(ex_relu(Kaa, Kab, Kbb), 1e-2)) > 1e-8
    assert DEFAULT_ORDER == 10


@pytest.mark.parametrize("K", [0.5, 1.0, 2.0, 10.0, 100.0])
def test_tanh_ntk_diagonal_integrand_to_1e12(K):
    """⟨tanh′(z)⁴⟩-type diagonal ⟨sech²(z_a) sech²(z_b)⟩ at c = 1 (the NTK diagonal) within 1e-12 of 30-digit mpmath.

    Issue 12 item 10: it was 2.6–6.9e-11 off (a 1.5-wide central panel against the 4th-order poles at ±iπ/2).
    """
    mp.mp.dps = 30
    s = mp.sqrt(K)
    ref = mp.quad(lambda x: mp.sech(s * x) ** 4 * mp.npdf(x), [-mp.inf, -3, -1, -0.25, 0, 0.25, 1, 3, mp.inf])
    d = lambda z: 1 - np.tanh(z) ** 2  # noqa: E731
    got = gauss2_product(d, d, K, K, K)
    assert abs(got - float(ref)) <= 1e-12 * float(ref)
    assert abs(gauss1(lambda z: d(z) ** 2, K) - float(ref)) <= 1e-12 * float(ref)
