"""Independent reference for single-input criticality, the four-point vertex ν and depth scales.

Deliberately shares no code with ``nnft``: it imports neither ``nnft`` nor ``sympy``. Everything that must be
exact (critical points) is computed with mpmath alone; the long depth iterations (``nu_by_iteration``,
``depth_scale_reference``) use a numpy quadrature rule defined here (numpy, plus ``scipy.special`` for erf/erfc,
imported lazily only when gelu or erf is iterated). Nothing is computed at import time; results are cached with
``functools.lru_cache``.

Conventions (Roberts–Yaida–Hanin, *The Principles of Deep Learning Theory*, PDLT):

* kernel recursion ``K_{ℓ+1} = C_b + C_W g(K_ℓ)``, ``g(K) = <σ(z)²>`` over ``z ~ N(0, K)``;
* parallel susceptibility ``χ_∥(K) = C_W dg/dK``, computed here by Gaussian integration by parts
  (``d/dK <f(z)>_K = <f(z)(z² − K)>_K / (2K²)``), i.e. ``χ_∥ = (C_W / (2K²)) <σ(z)² (z² − K)>`` — never through
  derivatives of σ;
* perpendicular susceptibility ``χ_⊥(K) = C_W <σ'(z)²>``;
* criticality: a fixed point ``K* = C_b + C_W g(K*)`` with ``χ_∥(K*) = χ_⊥(K*) = 1``;
* four-point vertex ``V_{ℓ+1} = C_W² (<σ⁴>_{K_ℓ} − <σ²>_{K_ℓ}²) + r χ_∥(K_ℓ)² V_ℓ``, ``V_1 = 0``, with
  ``r = n_ℓ / n_{ℓ−1}`` (``width_ratio``), and ``ν_ℓ = V_ℓ / (K_ℓ² ℓ)``.

Run ``python tests/criticality_reference.py`` for the self-check and a printout of all reference numbers.
"""

from __future__ import annotations

import functools
import math
import re
from typing import NamedTuple

import mpmath as mp

# --------------------------------------------------------------------------------------------------------------
# Activations (mpmath), each with its hand-written derivative
# --------------------------------------------------------------------------------------------------------------

DEFAULT_LEAK = 0.01  # slope a of leaky_relu when the name carries none (nnft's registry default too)


def linear(z):
    """σ(z) = z."""
    return mp.mpf(z)


def d_linear(z):
    """σ'(z) = 1."""
    return mp.mpf(1)


def relu(z):
    """σ(z) = max(z, 0)."""
    return mp.mpf(z) if z > 0 else mp.mpf(0)


def d_relu(z):
    """σ'(z) = Θ(z) (the value at z = 0 is immaterial under a Gaussian)."""
    return mp.mpf(1) if z > 0 else mp.mpf(0)


def leaky_relu(z, a=DEFAULT_LEAK):
    """σ(z) = z for z ≥ 0, a z for z < 0."""
    return mp.mpf(z) if z >= 0 else mp.mpf(a) * z


def d_leaky_relu(z, a=DEFAULT_LEAK):
    """σ'(z) = 1 for z > 0, a for z < 0."""
    return mp.mpf(1) if z > 0 else mp.mpf(a)


def tanh(z):
    """σ(z) = tanh z."""
    return mp.tanh(z)


def d_tanh(z):
    """σ'(z) = sech² z = 1 − tanh² z."""
    return mp.sech(z) ** 2


def sin(z):
    """σ(z) = sin z."""
    return mp.sin(z)


def d_sin(z):
    """σ'(z) = cos z."""
    return mp.cos(z)


def erf_act(z):
    """σ(z) = erf z (plain erf, no rescaling)."""
    return mp.erf(z)


def d_erf_act(z):
    """σ'(z) = (2/√π) e^{−z²}."""
    return 2 / mp.sqrt(mp.pi) * mp.exp(-z * z)


def gelu(z):
    """σ(z) = z Φ(z) = (z/2)(1 + erf(z/√2)), Φ the standard normal CDF (evaluated as erfc(−z/√2)/2)."""
    return z * mp.ncdf(z)


def d_gelu(z):
    """σ'(z) = Φ(z) + z φ(z), φ(z) = e^{−z²/2}/√(2π)."""
    return mp.ncdf(z) + z * mp.npdf(z)


def swish(z):
    """σ(z) = z / (1 + e^{−z}) = z s(z), s the logistic sigmoid (also called silu)."""
    return z / (1 + mp.exp(-z))


def d_swish(z):
    """σ'(z) = s(z) + z s(z)(1 − s(z)), s(z) = 1/(1 + e^{−z})."""
    s = 1 / (1 + mp.exp(-z))
    return s + z * s * (1 - s)


ACTIVATIONS = {
    "linear": (linear, d_linear),
    "relu": (relu, d_relu),
    "leaky_relu": (leaky_relu, d_leaky_relu),
    "tanh": (tanh, d_tanh),
    "sin": (sin, d_sin),
    "erf": (erf_act, d_erf_act),
    "gelu": (gelu, d_gelu),
    "swish": (swish, d_swish),
}
ALIASES = {"silu": "swish", "identity": "linear", "leaky": "leaky_relu"}
#: Activations with σ(λz) = λσ(z) (λ > 0): χ_∥ = χ_⊥ for every K, so criticality fixes only C_W.
SCALE_INVARIANT = ("linear", "relu", "leaky_relu")

_NAME_RE = re.compile(r"^\s*([a-z_]+)\s*(?:\(\s*(?:a\s*=\s*)?([-+0-9.eE]+)\s*\))?\s*$")


def parse_name(name):
    """``"tanh"`` -> ``("tanh", None)``; ``"leaky_relu(0.1)"`` / ``"leaky_relu(a=0.1)"`` -> ``("leaky_relu", 0.1)``."""
    m = _NAME_RE.match(name)
    if not m:
        raise ValueError(f"unrecognised activation name {name!r}")
    base = ALIASES.get(m.group(1), m.group(1))
    if base not in ACTIVATIONS:
        raise ValueError(f"unknown activation {base!r}; known: {sorted(ACTIVATIONS)}")
    a = m.group(2)
    if a is not None and base != "leaky_relu":
        raise ValueError(f"activation {base!r} takes no parameter")
    if base == "leaky_relu":
        return base, float(a) if a is not None else DEFAULT_LEAK
    return base, None


def activation(name):
    """The mpmath pair ``(σ, σ')`` for a registry name (``leaky_relu(a)`` carries its slope)."""
    base, a = parse_name(name)
    f, df = ACTIVATIONS[base]
    if base == "leaky_relu":
        return functools.partial(f, a=a), functools.partial(df, a=a)
    return f, df


# --------------------------------------------------------------------------------------------------------------
# Gaussian expectations (mpmath)
# --------------------------------------------------------------------------------------------------------------


def gauss(f, K, dps=30):
    """<f(z)> for z ~ N(0, K) at ``dps`` working digits.

    ``<f(z)>_K = ∫ f(√K t) e^{−t²/2}/√(2π) dt`` by ``mpmath.quad`` over ``(−∞, 0, ∞)`` (the split at 0 keeps kinks
    of relu-like activations on an interval end). ``K = 0`` gives ``f(0)``.
    """
    with mp.workdps(dps):
        K = mp.mpf(K)
        if K < 0:
            raise ValueError("variance K must be >= 0")
        if K == 0:
            return +f(mp.mpf(0))
        s = mp.sqrt(K)
        val = mp.quad(lambda t: f(s * t) * mp.exp(-t * t / 2), [-mp.inf, 0, mp.inf])
        return val / mp.sqrt(2 * mp.pi)


def g_mp(name, K, dps=30):
    """g(K) = <σ(z)²>_K."""
    f, _ = activation(name)
    return gauss(lambda z: f(z) ** 2, K, dps)


def chi_par_mp(name, C_W, K, dps=30):
    """χ_∥(K) = C_W dg/dK = (C_W / (2K²)) <σ(z)² (z² − K)>_K (Gaussian integration by parts)."""
    f, _ = activation(name)
    with mp.workdps(dps):
        K = mp.mpf(K)
        return mp.mpf(C_W) * gauss(lambda z: f(z) ** 2 * (z * z - K), K, dps) / (2 * K * K)


def chi_perp_mp(name, C_W, K, dps=30):
    """χ_⊥(K) = C_W <σ'(z)²>_K."""
    _, df = activation(name)
    with mp.workdps(dps):
        return mp.mpf(C_W) * gauss(lambda z: df(z) ** 2, K, dps)


def criticality_residuals(name, C_b, C_W, K, dps=30):
    """The three criticality conditions as residuals ``(K − C_b − C_W g(K), χ_∥(K) − 1, χ_⊥(K) − 1)``."""
    with mp.workdps(dps):
        C_b, C_W, K = mp.mpf(C_b), mp.mpf(C_W), mp.mpf(K)
        return (
            K - C_b - C_W * g_mp(name, K, dps),
            chi_par_mp(name, C_W, K, dps) - 1,
            chi_perp_mp(name, C_W, K, dps) - 1,
        )


# --------------------------------------------------------------------------------------------------------------
# Critical points
# --------------------------------------------------------------------------------------------------------------


class CriticalPoint(NamedTuple):
    """A critical point ``(C_b, C_W, K_star)`` (mpf values); unpacks as a 3-tuple."""

    C_b: mp.mpf
    C_W: mp.mpf
    K_star: mp.mpf

    @property
    def physical(self):
        """C_b ≥ 0 and C_W > 0 (realisable as variances)."""
        return self.C_b >= 0 and self.C_W > 0


def _balance_mp(name, K, dps):
    """F(K) = χ_∥/χ_⊥ − 1 = <σ²(z² − K)>_K / (2K² <σ'²>_K) − 1, independent of C_W; its zeros are the K*."""
    f, df = activation(name)
    with mp.workdps(dps):
        K = mp.mpf(K)
        num = gauss(lambda z: f(z) ** 2 * (z * z - K), K, dps) / (2 * K * K)
        return num / gauss(lambda z: df(z) ** 2, K, dps) - 1


def _point_from_K(name, K, dps):
    """From a root K* of F: C_W = 1/<σ'²>_{K*}, C_b = K* − C_W g(K*)."""
    _, df = activation(name)
    with mp.workdps(dps):
        K = mp.mpf(K)
        C_W = 1 / gauss(lambda z: df(z) ** 2, K, dps)
        C_b = K - C_W * g_mp(name, K, dps)
        return CriticalPoint(+C_b, +C_W, +K)


def _refine_root(name, a, b, dps):
    """Zero of F in the bracket [a, b]: Anderson (bracketing) at dps + 5, then secant polish at dps + 5."""
    with mp.workdps(dps + 5):
        F = functools.partial(_balance_mp, name, dps=dps + 5)
        x = mp.findroot(F, (mp.mpf(a), mp.mpf(b)), solver="anderson", verify=False)
        x = mp.findroot(F, (x, x * (1 + mp.mpf(10) ** (-dps // 2))), solver="secant", verify=False)
        return x


@functools.lru_cache(maxsize=1024)
def critical_points(name, dps=30, K_max=200.0, n_grid=2000):
    """All critical points with K* in (0, K_max], sorted by K*, as :class:`CriticalPoint` ``(C_b, C_W, K*)``.

    The condition χ_∥(K) = χ_⊥(K) does not involve C_W; its positive roots K* are located by a sign scan of
    ``F(K) = <σ²(z² − K)>_K / (2K² <σ'²>_K) − 1`` on a log grid of ``n_grid`` points in [1e-3, K_max] (float
    quadrature of :func:`gauss_np`), then refined with ``mpmath.findroot`` on the mpmath F at ``dps`` (+5 guard)
    digits. Then ``C_W = 1/<σ'²>_{K*}`` and ``C_b = K* − C_W g(K*)``. Each point says via ``.physical`` whether
    C_b ≥ 0 and C_W > 0. (K → 0 is a degenerate zero of F for any σ with σ(0) = 0, σ'(0) ≠ 0; it is not listed.)
    Scale-invariant activations (F ≡ 0) are rejected.
    """
    base, _ = parse_name(name)
    if base in SCALE_INVARIANT:
        raise ValueError(f"{name}: χ_∥ = χ_⊥ for all K (scale invariant); criticality is C_W only")
    import numpy as np

    Ks = np.geomspace(1e-3, K_max, n_grid)
    F = np.array([_balance_np(name, K) for K in Ks])
    pts = []
    for i in range(n_grid - 1):
        if F[i] == 0.0:
            pts.append(_point_from_K(name, _refine_root(name, Ks[i] * 0.999, Ks[i] * 1.001, dps), dps))
        elif F[i] * F[i + 1] < 0:
            pts.append(_point_from_K(name, _refine_root(name, Ks[i], Ks[i + 1], dps), dps))
    return tuple(pts)


@functools.lru_cache(maxsize=1024)
def critical_point(name, dps=30, K_guess=None):
    """The critical ``(C_b, C_W, K*)`` with K* > 0 (mpf values, :class:`CriticalPoint`).

    With ``K_guess``: Newton/secant from it on ``χ_∥(K)/χ_⊥(K) − 1 = 0``; without: the smallest-K* physical
    (C_b ≥ 0, C_W > 0) point of :func:`critical_points`. What these equations give (dps = 30, residuals < 1e-30):

    * gelu:  C_b = 0.172922390756067, C_W = 1.98305825743755, K* = 3.56155281280883 (= (3 + √17)/2 to 40 digits,
      observed numerically; C_b and C_W agree with the published 0.17292, 1.98305, the published K* does not);
    * swish: C_b = 0.555143170721530, C_W = 1.98800467826949, K* = 14.3201736180258 (a printed C_b = 0.0555…
      does not satisfy the equations; 0.5551… does).

    By construction the fixed-point and χ_⊥ residuals vanish up to rounding; χ_∥ − 1 is the real test.
    """
    if K_guess is not None:
        with mp.workdps(dps + 5):
            F = functools.partial(_balance_mp, name, dps=dps + 5)
            K0 = mp.mpf(K_guess)
            K = mp.findroot(F, (K0, K0 * (1 + mp.mpf("1e-6"))), solver="secant", verify=False)
        return _point_from_K(name, K, dps)
    for p in critical_points(name, dps):
        if p.physical:
            return p
    raise ValueError(f"{name}: no physical critical point with K* in (0, 200]")


# --------------------------------------------------------------------------------------------------------------
# Float quadrature (numpy) for long iterations
# --------------------------------------------------------------------------------------------------------------

GL_NODES = 128  # Gauss–Legendre nodes per half line
GL_CUTOFF = 14.0  # |t| ≤ 14 (the N(0, 1) tail beyond carries < 1e-44)


@functools.lru_cache(maxsize=1024)
def _rule(n=GL_NODES, L=GL_CUTOFF):
    """Nodes t_i and weights w_i with Σ w_i h(t_i) ≈ ∫ h(t) φ(t) dt: Gauss–Legendre on [−L, 0] and [0, L].

    Splitting at 0 makes the rule exact-order for piecewise-smooth σ with a kink at 0 (relu, leaky relu).
    Weights are normalised to Σ w = 1. Relative accuracy ~1e-15 for tanh, relu, gelu, swish, erf at any K and for
    sin up to K ≈ 15.
    """
    import numpy as np

    x, w = np.polynomial.legendre.leggauss(n)
    t = (x + 1) * (L / 2)
    w = w * (L / 2) * np.exp(-t * t / 2)
    t = np.concatenate([-t[::-1], t])
    w = np.concatenate([w[::-1], w])
    t.setflags(write=False)
    w = w / w.sum()
    w.setflags(write=False)
    return t, w


@functools.lru_cache(maxsize=1024)
def np_activation(name):
    """Vectorised numpy pair ``(σ, σ')``, the same formulas as the mpmath definitions above."""
    import numpy as np

    base, a = parse_name(name)
    if base == "linear":
        return (lambda z: z), (lambda z: np.ones_like(z))
    if base == "relu":
        return (lambda z: np.maximum(z, 0.0)), (lambda z: (z > 0).astype(float))
    if base == "leaky_relu":
        return (lambda z: np.where(z >= 0, z, a * z)), (lambda z: np.where(z > 0, 1.0, a))
    if base == "tanh":
        return np.tanh, (lambda z: 1.0 / np.cosh(z) ** 2)
    if base == "sin":
        return np.sin, np.cos
    if base == "swish":
        def sig(z):
            return 0.5 * (1.0 + np.tanh(z / 2))  # logistic, overflow-free

        return (lambda z: z * sig(z)), (lambda z: sig(z) + z * sig(z) * (1 - sig(z)))
    from scipy.special import erf, erfc

    if base == "erf":
        return erf, (lambda z: 2 / math.sqrt(math.pi) * np.exp(-z * z))
    if base == "gelu":
        def Phi(z):
            return 0.5 * erfc(-z / math.sqrt(2))

        return (lambda z: z * Phi(z)), (lambda z: Phi(z) + z * np.exp(-z * z / 2) / math.sqrt(2 * math.pi))
    raise ValueError(name)  # pragma: no cover


def gauss_np(f, K):
    """<f(z)> for z ~ N(0, K) in double precision with the split Gauss–Legendre rule :func:`_rule`."""
    t, w = _rule()
    return float(w @ f(math.sqrt(K) * t))


def _moments_np(name, K):
    """(<σ²>, <σ⁴>, <σ² z²>, <σ'²>) at variance K (float)."""
    t, w = _rule()
    f, df = np_activation(name)
    z = math.sqrt(K) * t
    s2 = f(z) ** 2
    return float(w @ s2), float(w @ (s2 * s2)), float(w @ (s2 * z * z)), float(w @ (df(z) ** 2))


def _chi_par_np(C_W, K, s2, s2z2):
    """χ_∥ = C_W (<σ² z²> − K <σ²>) / (2K²)."""
    return C_W * (s2z2 - K * s2) / (2 * K * K)


def _balance_np(name, K):
    s2, _, s2z2, dd = _moments_np(name, K)
    return (s2z2 - K * s2) / (2 * K * K * dd) - 1


# --------------------------------------------------------------------------------------------------------------
# ν by iteration
# --------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def nu_by_iteration(name, C_b, C_W, K0, depth, width_ratio=1):
    """Iterate the single-input K and V recursions for ℓ = 1..depth; returns ``(K, V, nu)`` tuples of floats.

    ``K_1 = K0``, ``K_{ℓ+1} = C_b + C_W <σ²>_{K_ℓ}``;
    ``V_1 = 0``, ``V_{ℓ+1} = C_W² (<σ⁴>_{K_ℓ} − <σ²>_{K_ℓ}²) + r χ_∥(K_ℓ)² V_ℓ`` with r = ``width_ratio``
    (= n_ℓ/n_{ℓ−1}, constant) and ``χ_∥ = (C_W/(2K²)) <σ²(z² − K)>``; ``nu_ℓ = V_ℓ / (K_ℓ² ℓ)``.
    Double-precision split Gauss–Legendre quadrature (:func:`_rule`). Known limits at criticality:
    ν → 2/3 for tanh and sin at (0, 1) (slowly, with log corrections), 5 for relu at (0, 2), 2 for linear at (0, 1);
    for relu and linear exactly ``ν_ℓ = 5(ℓ−1)/ℓ`` and ``2(ℓ−1)/ℓ``.
    """
    Ks, Vs, nus = [], [], []
    K, V = float(K0), 0.0
    for ell in range(1, depth + 1):
        Ks.append(K)
        Vs.append(V)
        nus.append(V / (K * K * ell))
        if ell == depth:
            break
        s2, s4, s2z2, _ = _moments_np(name, K)
        chi = _chi_par_np(C_W, K, s2, s2z2)
        V = C_W * C_W * (s4 - s2 * s2) + width_ratio * chi * chi * V
        K = C_b + C_W * s2
    return tuple(Ks), tuple(Vs), tuple(nus)


# --------------------------------------------------------------------------------------------------------------
# Depth scales off criticality
# --------------------------------------------------------------------------------------------------------------


def fixed_point_np(name, C_b, C_W, K0=1.0, tol=1e-15, max_iter=1_000_000):
    """Stable fixed point K* of K -> C_b + C_W g(K): iterate from K0, then Newton-polish with slope χ_∥."""
    K = float(K0)
    for _ in range(max_iter):
        s2, _, _, _ = _moments_np(name, K)
        K_new = C_b + C_W * s2
        if abs(K_new - K) <= tol * max(abs(K), 1e-300):
            K = K_new
            break
        K = K_new
    else:
        raise RuntimeError(f"{name} at (C_b, C_W) = ({C_b}, {C_W}): K iteration did not converge")
    for _ in range(3):
        s2, _, s2z2, _ = _moments_np(name, K)
        chi = _chi_par_np(C_W, K, s2, s2z2)
        K -= (K - C_b - C_W * s2) / (1 - chi)
    return K


def _bivariate_np(f1, f2, K, K12):
    """<f1(z1) f2(z2)> for (z1, z2) Gaussian with variances K, K and covariance K12.

    Product rule of :func:`_rule` in Cholesky coordinates: z1 = √K u, z2 = √K (ρ u + √(1 − ρ²) v), ρ = K12/K.
    """
    t, w = _rule()
    rho = K12 / K
    s = math.sqrt(K)
    u, v = t[:, None], t[None, :]
    z1 = s * u
    z2 = s * (rho * u + math.sqrt(max(1.0 - rho * rho, 0.0)) * v)
    return float(w @ (f1(z1) * f2(z2)) @ w)


def correlation_map_np(name, C_b, C_W, K, K12):
    """K12 -> C_b + C_W <σ(z1)σ(z2)> at equal diagonal K, and its slope C_W <σ'(z1)σ'(z2)> (Price's theorem)."""
    f, df = np_activation(name)
    return C_b + C_W * _bivariate_np(f, f, K, K12), C_W * _bivariate_np(df, df, K, K12)


@functools.lru_cache(maxsize=1024)
def _depth_scale_items(name, C_b, C_W, K0):
    K = fixed_point_np(name, C_b, C_W, K0)
    s2, _, s2z2, dd = _moments_np(name, K)
    chi_par = _chi_par_np(C_W, K, s2, s2z2)
    chi_perp = C_W * dd
    out = {
        "K_star": K,
        "chi_par": chi_par,
        "xi_par": -1 / math.log(chi_par),
        "chi_perp": chi_perp,
    }
    if chi_perp < 1:
        out.update(phase="ordered", rho_star=1.0, K12_star=K, c_star=chi_perp, xi_c=-1 / math.log(chi_perp))
    elif chi_perp > 1:
        # the attracting off-diagonal fixed point: iterate the correlation map from ρ = 0, then Newton-polish
        K12 = 0.0
        for _ in range(100_000):
            m, _ = correlation_map_np(name, C_b, C_W, K, K12)
            if abs(m - K12) <= 1e-14 * K:
                K12 = m
                break
            K12 = m
        else:
            raise RuntimeError("correlation map did not converge")
        for _ in range(3):
            m, c = correlation_map_np(name, C_b, C_W, K, K12)
            K12 -= (m - K12) / (c - 1)
        m, c = correlation_map_np(name, C_b, C_W, K, K12)
        out.update(phase="chaotic", rho_star=K12 / K, K12_star=K12, c_star=c, xi_c=-1 / math.log(abs(c)),
                   map_residual=m - K12)
    else:  # pragma: no cover
        out.update(phase="critical", rho_star=1.0, K12_star=K, c_star=1.0, xi_c=math.inf)
    return tuple(out.items())


def depth_scale_reference(name, C_b, C_W, K0=1.0):
    """Off-criticality depth scales at the stable fixed point K* (float).

    Returns a dict: ``K_star``; ``chi_par`` = χ_∥(K*) and ``xi_par = −1/ln χ_∥(K*)``; ``chi_perp`` = χ_⊥(K*);
    ``phase`` 'ordered' (χ_⊥ < 1) or 'chaotic' (χ_⊥ > 1). Two-input picture with both diagonal entries at K*:
    the map ``K12 -> C_b + C_W <σ(z1)σ(z2)>`` over the bivariate Gaussian with variances K* and covariance K12;
    its attracting fixed point is ``rho_star = K12*/K*`` (1 in the ordered phase, < 1 in the chaotic phase) with
    slope ``c_star = C_W <σ'(z1)σ'(z2)>`` there (= χ_⊥ at ρ = 1) and ``xi_c = −1/ln c_star``.
    """
    return dict(_depth_scale_items(name, float(C_b), float(C_W), float(K0)))


# --------------------------------------------------------------------------------------------------------------
# Self-check
# --------------------------------------------------------------------------------------------------------------


def self_check(dps=30, tol=1e-25):
    """Verify the reference against itself and exact facts; raise AssertionError on failure, return a summary.

    * every critical point of gelu and swish satisfies the three equations to ``tol`` at ``dps`` and ``dps + 10``
      digits, and the gelu K* equals (3 + √17)/2 to ``tol``;
    * χ_∥ by integration by parts agrees with a numerical derivative ``C_W dg/dK`` (mpmath.diff);
    * ν for relu at (0, 2) and linear at (0, 1) is exactly 5(ℓ−1)/ℓ and 2(ℓ−1)/ℓ;
    * the float and mpmath quadratures agree;
    * tanh at (0.05, 0.8) is ordered and at (0.05, 2.0) chaotic with 0 < ρ* < 1 and a fixed-point residual ~ 0.
    """

    def check(cond, msg):
        if not cond:
            raise AssertionError(msg)

    summary = {}
    for name in ("gelu", "swish"):
        pts = critical_points(name, dps)
        check(len(pts) >= 1, f"{name}: no critical point")
        res = [criticality_residuals(name, *p, dps=dps) for p in pts]
        for p, r in zip(pts, res, strict=True):
            check(max(abs(x) for x in r) < tol, f"{name}: residuals {r} at {p}")
            r_hi = criticality_residuals(name, *p, dps=dps + 10)  # finer quadrature: the roots are converged
            check(max(abs(x) for x in r_hi) < tol, f"{name}: residuals at dps {dps + 10}: {r_hi} at {p}")
        p = critical_point(name, dps)
        with mp.workdps(dps):
            d = mp.diff(lambda K, n=name: g_mp(n, K, dps), p.K_star, h=mp.mpf("1e-10"))  # central difference
            check(abs(p.C_W * d - 1) < mp.mpf(10) ** (-dps // 2), f"{name}: IBP χ_∥ vs mp.diff: {p.C_W * d}")
        summary[name] = (pts, res)
    with mp.workdps(dps):  # numerically observed closed form of the gelu critical K*
        check(abs(critical_point("gelu", dps).K_star - (3 + mp.sqrt(17)) / 2) < tol, "gelu K* != (3 + √17)/2")
    for name, C_W, nu in (("relu", 2.0, 5.0), ("linear", 1.0, 2.0)):
        _, _, nus = nu_by_iteration(name, 0.0, C_W, 1.0, 50)
        for ell, x in enumerate(nus, 1):
            check(abs(x - nu * (ell - 1) / ell) < 1e-12, f"{name}: ν_{ell} = {x}")
    for name in ("tanh", "gelu", "swish", "relu", "sin"):
        for K in (0.01, 1.0, 4.0):
            a = _moments_np(name, K)[0]
            b = float(g_mp(name, K, 20))
            check(abs(a - b) <= 1e-13 * abs(b), f"{name}: float vs mpmath g({K}): {a} {b}")
    o = depth_scale_reference("tanh", 0.05, 0.8)
    c = depth_scale_reference("tanh", 0.05, 2.0)
    check(o["phase"] == "ordered" and c["phase"] == "chaotic", "tanh phases")
    check(0 < c["rho_star"] < 1 and abs(c["map_residual"]) < 1e-12 and c["c_star"] < 1, f"tanh chaotic: {c}")
    summary["tanh_ordered"], summary["tanh_chaotic"] = o, c
    return summary


if __name__ == "__main__":
    import time

    t0 = time.time()
    summary = self_check()
    print(f"self-check passed ({time.time() - t0:.1f} s)\n")

    print("Critical points (dps = 30), all roots K* in (0, 200] of χ_∥ = χ_⊥:")
    for name in ("gelu", "swish"):
        pts, res = summary[name]
        for p, r in zip(pts, res, strict=True):
            print(f"  {name:6s} C_b = {mp.nstr(p.C_b, 15):>18s}  C_W = {mp.nstr(p.C_W, 15):>18s}  "
                  f"K* = {mp.nstr(p.K_star, 15):>18s}  physical (C_b>=0, C_W>0): {p.physical}")
            print(f"         residuals: fixed point {mp.nstr(r[0], 3)}, χ_∥−1 {mp.nstr(r[1], 3)}, "
                  f"χ_⊥−1 {mp.nstr(r[2], 3)}")

    print("\nν_ℓ = V_ℓ / (K_ℓ² ℓ) by iteration (K_1 = 1, V_1 = 0, width ratio 1):")
    for name, C_b, C_W, target in (("tanh", 0.0, 1.0, "2/3"), ("sin", 0.0, 1.0, "2/3"),
                                   ("relu", 0.0, 2.0, "5"), ("linear", 0.0, 1.0, "2")):
        for depth in (100, 1000):
            t1 = time.time()
            Ks, Vs, nus = nu_by_iteration(name, C_b, C_W, 1.0, depth)
            print(f"  {name:6s} (C_b, C_W) = ({C_b}, {C_W}) depth {depth:4d}: K = {Ks[-1]:.12g}  V = {Vs[-1]:.12g}  "
                  f"ν = {nus[-1]:.12g}  (limit {target}; {time.time() - t1:.3f} s)")

    print("\nDepth scales off criticality (tanh, K_0 = 1):")
    for C_b, C_W in ((0.05, 0.8), (0.05, 2.0)):
        d = depth_scale_reference("tanh", C_b, C_W)
        print(f"  (C_b, C_W) = ({C_b}, {C_W}):")
        for k, v in d.items():
            print(f"    {k:12s} = {v:.15g}" if isinstance(v, float) else f"    {k:12s} = {v}")
