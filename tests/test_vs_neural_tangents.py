"""Check nnft's NNGP and NTK against neural-tangents (stored), exact diagonal maps and plain recursions.

Four references, none of which shares code with nnft:

1. ``tests/data/nt_reference.npz``: neural-tangents 0.6.5's analytic kernels for 19 activations, two
   (C_b, C_W) settings each, depths 1, 2, 4, 16 (written by ``bench/nt_reference.py``). Compared **off
   the diagonal** to 1e-10, relative to the Cauchy–Schwarz scale sqrt(K_aa K_bb) (entries near zero, as
   for odd activations at orthogonal inputs, have no useful elementwise relative error).
2. An exact single-input recursion written here (closed forms of g(K) = ⟨σ²⟩_K and h(K) = ⟨σ'²⟩_K):
   used **on the diagonal and at duplicate inputs**, where neural-tangents' relu-type NTK is 1e-8 to
   1e-7 off (it forms the angle with arctan2(sqrt(K_aa K_bb − K_ab²), K_ab)).
3. A plain numpy float64 P×P recursion for relu and erf, checked to 1e-12 on a random input set.
4. A 50-digit mpmath recursion for one pair of inputs (relu family and sign): at the nearly parallel
   pair, where those maps are not smooth and every float64 kernel-space recursion (neural-tangents'
   included) loses digits, and at exactly antiparallel inputs.

The conventions are those of CONVENTIONS.md: depth L counts weight layers (L − 1 activations), NTK
parameterisation with λ_b = C_b, λ_W = C_W; neural-tangents' ``Dense(W_std=sqrt(C_W), b_std=sqrt(C_b),
parameterization='ntk')``. A slow, optional test recomputes part of the stored file with the live
neural-tangents venv (``NNFT_NT_PYTHON``, default ``/work/ntvenv/bin/python``) to show it is current.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import nnft

DATA = Path(__file__).resolve().parent / "data" / "nt_reference.npz"
SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "nt_reference.py"
NT_PYTHON = Path(os.environ.get("NNFT_NT_PYTHON", "/work/ntvenv/bin/python"))

TOL_NT = 1e-10  # nnft vs neural-tangents, off the diagonal
TOL_EXACT = 1e-12  # nnft vs the exact recursions written here, for maps nnft evaluates in closed form
TOL_QUAD = 1e-10  # the same for maps nnft evaluates by quadrature: about 1e-12 per layer


def _load() -> dict[str, np.ndarray]:
    with np.load(DATA, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


REF = _load()
N_CASES = len(REF["case_name"])


def _case_id(i: int) -> str:
    return f"{REF['case_name'][i]}-Cb{REF['case_C_b'][i]:g}-CW{REF['case_C_W'][i]:g}-L{REF['case_depth'][i]}"


CASE_IDS = [_case_id(i) for i in range(N_CASES)]
NTK_CASES = [i for i in range(N_CASES) if REF["case_has_ntk"][i]]
#: Activations nnft evaluates by 2-d quadrature (no closed form): seconds per deep case, so their
#: depth-16 cases run with the slow tests only. Empty since gelu got its closed form.
QUADRATURE_ACTIVATIONS: set[str] = set()


def _params(indices: list[int]) -> list:
    """pytest params for the cases, the deep quadrature ones marked slow."""
    return [
        pytest.param(i, id=CASE_IDS[i], marks=[pytest.mark.slow] if (
            str(REF["case_name"][i]) in QUADRATURE_ACTIVATIONS and REF["case_depth"][i] > 4) else [])
        for i in indices
    ]

# ----------------------------------------------------------------------------------------------
# Reference 2: exact single-input maps, g(K) = <σ(z)²>, h(K) = <σ'(z)²> for z ~ N(0, K)
# ----------------------------------------------------------------------------------------------


def _double_factorial(n: int) -> int:
    return math.prod(range(n, 0, -2)) if n > 0 else 1


def diagonal_maps(family: str, p: np.ndarray) -> tuple[Callable[[float], float], Callable[[float], float]]:
    """Return (g, h) for a closed-form family: g(K) = ⟨σ²⟩_K and h(K) = ⟨σ'²⟩_K (single input)."""
    pi = math.pi
    if family == "abrelu":  # a·min(z,0) + b·max(z,0)
        a, b = p[0], p[1]
        m = (a * a + b * b) / 2
        return (lambda K: m * K), (lambda K: m)
    if family == "erf":  # a·erf(b z) + c
        a, b, c = p
        return (
            lambda K: a * a * (2 / pi) * math.asin(2 * b * b * K / (1 + 2 * b * b * K)) + c * c,
            lambda K: a * a * b * b * (4 / pi) / math.sqrt(1 + 4 * b * b * K),
        )
    if family == "sin":  # a·sin(b z + c)
        a, b, c = p
        return (
            lambda K: a * a / 2 * (1 - math.exp(-2 * b * b * K) * math.cos(2 * c)),
            lambda K: a * a * b * b / 2 * (1 + math.exp(-2 * b * b * K) * math.cos(2 * c)),
        )
    if family == "exp":  # a·exp(b z)
        a, b = p[0], p[1]
        return (
            lambda K: a * a * math.exp(2 * b * b * K),
            lambda K: a * a * b * b * math.exp(2 * b * b * K),
        )
    if family == "gaussian":  # a·exp(b z²)
        a, b = p[0], p[1]
        return (
            lambda K: a * a / math.sqrt(1 - 4 * b * K),
            lambda K: 4 * a * a * b * b * K / (1 - 4 * b * K) ** 1.5,
        )
    if family == "gelu":  # z Φ(z)
        def g(K: float) -> float:
            s = math.asin(K / (1 + K))
            return K / 4 + K * s / (2 * pi) + K * K / (pi * (1 + K) * math.sqrt(1 + 2 * K))

        def h(K: float) -> float:
            s = math.asin(K / (1 + K))
            r = math.sqrt(1 + 2 * K)
            return 0.25 + s / (2 * pi) + K / (pi * (1 + K) * r) + K / (2 * pi * r**3)

        return g, h
    if family == "sign":
        return (lambda K: 1.0), (lambda K: math.nan)
    if family == "monomial":  # z^k
        k = int(p[0])
        return (
            lambda K: _double_factorial(2 * k - 1) * K**k,
            lambda K: k * k * _double_factorial(2 * k - 3) * K ** (k - 1),
        )
    if family == "polynomial":  # c0 + c1 z + c2 z²
        c0, c1, c2 = p
        return (
            lambda K: c0 * c0 + (c1 * c1 + 2 * c0 * c2) * K + 3 * c2 * c2 * K * K,
            lambda K: c1 * c1 + 4 * c2 * c2 * K,
        )
    raise ValueError(f"no diagonal map for family {family!r}")


def exact_diagonal(x: np.ndarray, family: str, p: np.ndarray, C_b: float, C_W: float, depth: int):
    """Return (K_aa, Θ_aa) of the output layer for each input, by the scalar single-input recursion."""
    g, h = diagonal_maps(family, p)
    n0 = x.shape[1]
    Ks, Ts = [], []
    for row in x:
        K = C_b + C_W * math.fsum(row * row) / n0
        T = K
        for _ in range(depth - 1):
            K, T = C_b + C_W * g(K), C_b + C_W * g(K) + C_W * h(K) * T
        Ks.append(K)
        Ts.append(T)
    return np.array(Ks), np.array(Ts)


# ----------------------------------------------------------------------------------------------
# Reference 3: plain numpy P×P recursion for relu and erf
# ----------------------------------------------------------------------------------------------


def numpy_reference(x: np.ndarray, act: str, C_b: float, C_W: float, depth: int):
    """Return (K, Θ) of the output layer for relu or erf by a direct float64 numpy recursion."""
    K = C_b + C_W * (x @ x.T) / x.shape[1]
    T = K.copy()
    for _ in range(depth - 1):
        d = np.diag(K).copy()
        if act == "relu":
            norm = np.sqrt(np.outer(d, d))  # sqrt(k·k) == k, so c == 1 exactly on the diagonal
            c = np.clip(K / norm, -1.0, 1.0)
            th = np.arccos(c)
            ss = norm * (np.sqrt(1 - c * c) + (np.pi - th) * c) / (2 * np.pi)
            dd = (np.pi - th) / (2 * np.pi)
        elif act == "erf":
            q = np.outer(1 + 2 * d, 1 + 2 * d)
            ss = (2 / np.pi) * np.arcsin(np.clip(2 * K / np.sqrt(q), -1.0, 1.0))
            dd = (4 / np.pi) / np.sqrt(q - 4 * K * K)
        else:
            raise ValueError(act)
        K = C_b + C_W * ss
        T = K + C_W * dd * T
    return K, T


# ----------------------------------------------------------------------------------------------
# Reference 4: 50-digit recursion for one pair of inputs, for the kinked families (abrelu, sign)
# ----------------------------------------------------------------------------------------------

#: Families whose two-input map is not smooth at c = 1 (σ or σ' jumps): at a nearly parallel pair
#: (angle θ ≈ 1e-6) a float64 recursion in kernel space knows the angle only to about eps/θ per
#: layer, for any implementation. Their (which, family) pairs are checked there against a 50-digit
#: recursion instead, at a conditioning bound computed from how one ulp of rounding per layer propagates
#: (see ``ill_conditioned_tolerance``; with C_b > 0 the pair is well conditioned and the bound is TOL_NT).
ILL_AT_PARALLEL = {("ntk", "abrelu"), ("nngp", "sign"), ("ntk", "sign")}


def mp_pair(xa: np.ndarray, xb: np.ndarray, family: str, p: np.ndarray, C_b: float, C_W: float, depth: int,
            kick: tuple[int, str] | None = None):
    """Return (K_ab, Θ_ab, K_aa, K_bb, Θ_aa, Θ_bb) of the output layer to 50 digits (abrelu or sign).

    ``kick = (ℓ, "K" or "Theta")`` adds one float64 ulp of the Cauchy–Schwarz scale to that off-diagonal
    entry of layer ℓ (1 ≤ ℓ < L) before the next layer, to measure how rounding there propagates.
    """
    import mpmath as mp

    with mp.workdps(50):
        f = [mp.mpf(float(v)) for v in xa]
        g = [mp.mpf(float(v)) for v in xb]
        cb, cw, n0 = mp.mpf(float(C_b)), mp.mpf(float(C_W)), len(f)

        def dot(u, v):
            return mp.fsum(s * t for s, t in zip(u, v, strict=True))

        Kaa, Kbb, Kab = (cb + cw * dot(u, v) / n0 for u, v in ((f, f), (g, g), (f, g)))
        Taa, Tbb, Tab = Kaa, Kbb, Kab
        ulp = mp.mpf(float(np.finfo(float).eps))
        for ell in range(1, depth):
            if kick == (ell, "K"):
                Kab += ulp * mp.sqrt(Kaa * Kbb)
            elif kick == (ell, "Theta"):
                Tab += ulp * mp.sqrt(Taa * Tbb)
            r = mp.sqrt(Kaa * Kbb)
            th = mp.acos(Kab / r)
            if family == "abrelu":
                a, b = mp.mpf(float(p[0])), mp.mpf(float(p[1]))
                dd = ((a * a + b * b) * (mp.pi - th) + 2 * a * b * th) / (2 * mp.pi)
                ss = r * ((a - b) ** 2 * mp.sin(th) / (2 * mp.pi) + dd * mp.cos(th))
                m = (a * a + b * b) / 2
                saa, sbb, daa = m * Kaa, m * Kbb, m
            elif family == "sign":
                ss, dd, saa, sbb, daa = 1 - 2 * th / mp.pi, mp.nan, mp.mpf(1), mp.mpf(1), mp.nan
            else:
                raise ValueError(family)
            Kab, Kaa, Kbb = cb + cw * ss, cb + cw * saa, cb + cw * sbb
            Tab, Taa, Tbb = Kab + cw * dd * Tab, Kaa + cw * daa * Taa, Kbb + cw * daa * Tbb
        return tuple(float(v) for v in (Kab, Tab, Kaa, Kbb, Taa, Tbb))


def _pair_args(i: int) -> tuple:
    a, b = REF["near_parallel_pairs"][0]
    return (REF["x"][a], REF["x"][b], str(REF["case_family"][i]), REF["case_params"][i],
            REF["case_C_b"][i], REF["case_C_W"][i], int(REF["case_depth"][i]))


@functools.cache
def _mp_pair(i: int, kick: tuple[int, str] | None = None) -> tuple[float, ...]:
    return mp_pair(*_pair_args(i), kick=kick)


#: Ulps of rounding per layer allowed by the conditioning bound below. The bound sums the effects of
#: the layers' roundings linearly, which overestimates their random-walk sum: a plain arccos recursion
#: lands 10–100× inside it, neural-tangents' arctan2 form 4–10× inside.
ROUNDINGS_PER_LAYER = 2


@functools.cache
def ill_conditioned_tolerance(i: int) -> tuple[float, float]:
    """Return the (NNGP, NTK) error bounds at the near-parallel pair of case i, from propagated rounding.

    TOL_NT plus ROUNDINGS_PER_LAYER times the summed effect on the output of one ulp added to K_ab or
    Θ_ab at each layer ℓ < L (computed to 50 digits): what any float64 recursion in kernel space must
    expect, since it cannot know the angle between nearly parallel inputs better than eps/θ.
    """
    Kab, Tab, Kaa, Kbb, Taa, Tbb = _mp_pair(i)
    sK = sT = 0.0
    for ell in range(1, int(REF["case_depth"][i])):
        for which in ("K", "Theta"):
            k = _mp_pair(i, (ell, which))
            sK += abs(k[0] - Kab) / math.sqrt(Kaa * Kbb)
            sT += abs(k[1] - Tab) / math.sqrt(Taa * Tbb) if REF["case_has_ntk"][i] else 0.0
    return TOL_NT + ROUNDINGS_PER_LAYER * sK, TOL_NT + ROUNDINGS_PER_LAYER * sT


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _scaled_error(got: np.ndarray, want: np.ndarray, diag: np.ndarray) -> np.ndarray:
    """Return |got − want| / sqrt(d_a d_b), the error relative to the Cauchy–Schwarz bound of the entry."""
    scale = np.sqrt(np.outer(np.abs(diag), np.abs(diag)))
    return np.abs(np.asarray(got, dtype=np.float64) - want) / scale


def _off_diagonal_mask(P: int, duplicates: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    mask = ~np.eye(P, dtype=bool)
    for a, b in (*duplicates, *(() if exclude is None else exclude)):
        mask[a, b] = mask[b, a] = False
    return mask


def _case_mask(i: int, which: str) -> np.ndarray:
    """Return the entries of case i compared with neural-tangents (off-diagonal, well-conditioned)."""
    ill = (which, str(REF["case_family"][i])) in ILL_AT_PARALLEL
    return _off_diagonal_mask(12, REF["duplicate_pairs"], REF["near_parallel_pairs"] if ill else None)


def _worst(err: np.ndarray, mask: np.ndarray) -> str:
    e = np.where(mask, err, -1.0)
    a, b = np.unravel_index(np.argmax(e), e.shape)
    return f"max scaled error {e[a, b]:.3e} at ({a}, {b})"


def _net(i: int) -> nnft.MLP:
    return nnft.MLP(
        activation=str(REF["case_nnft"][i]),
        depth=int(REF["case_depth"][i]),
        width=512,
        C_b=float(REF["case_C_b"][i]),
        C_W=float(REF["case_C_W"][i]),
        n_out=1,
    )


@functools.cache
def _nnft_nngp(i: int) -> np.ndarray:
    out = np.asarray(_net(i).nngp(REF["x"]))
    assert out.dtype == np.float64 and out.shape == REF["K"][i].shape
    return out


@functools.cache
def _nnft_ntk(i: int) -> np.ndarray:
    out = np.asarray(_net(i).ntk(REF["x"]))
    assert out.dtype == np.float64 and out.shape == REF["Theta"][i].shape
    return out


@functools.cache
def _diag_tol(i: int, which: str) -> float:
    """TOL_EXACT where nnft has the one-layer map in closed form, TOL_QUAD where it integrates numerically."""
    return TOL_EXACT if _net(i).recursion(which).closed else TOL_QUAD


@functools.cache
def _exact_diag(i: int) -> tuple[np.ndarray, np.ndarray]:
    return exact_diagonal(
        REF["x"], str(REF["case_family"][i]), REF["case_params"][i],
        float(REF["case_C_b"][i]), float(REF["case_C_W"][i]), int(REF["case_depth"][i]),
    )


# ----------------------------------------------------------------------------------------------
# the stored file and the references themselves (no nnft involved)
# ----------------------------------------------------------------------------------------------


def test_reference_file_layout():
    """The stored file has the inputs, geometry and cases that the tests below rely on."""
    x = REF["x"]
    assert x.dtype == np.float64 and x.shape == (12, 5)
    for a, b in REF["duplicate_pairs"]:
        assert np.array_equal(x[a], x[b])
    for a, b in REF["antiparallel_pairs"]:
        assert np.array_equal(x[a], -x[b])
    for a, b in REF["near_parallel_pairs"]:
        c = x[a] @ x[b] / (np.linalg.norm(x[a]) * np.linalg.norm(x[b]))
        assert c > 1 - 1e-11 and not np.array_equal(x[a], x[b])
    assert np.all(np.linalg.norm(x, axis=1) > 0)
    assert REF["K"].dtype == np.float64 and REF["K"].shape == (N_CASES, 12, 12)
    assert np.all(np.isfinite(REF["K"]))
    assert np.all(np.isfinite(REF["Theta"][NTK_CASES]))
    assert set(REF["case_depth"]) == {1, 2, 4, 16}
    assert str(REF["meta_neural_tangents"]) == "0.6.5"
    for name in ("relu", "erf", "sin", "gelu", "exp", "gaussian", "abs", "sign"):
        assert name in set(REF["case_name"])


@pytest.mark.parametrize("family,p", [
    ("erf", (1.0, 1.0, 0.0)), ("erf", (2.0, 0.5, 0.3)), ("sin", (1.5, 2.0, 1 / 3)), ("exp", (0.5, 0.7, 0)),
    ("gaussian", (1.0, -1.0, 0)), ("gelu", ()), ("monomial", (3.0,)), ("polynomial", (0.1, 1.0, 0.5)),
])
def test_diagonal_maps_vs_quadrature(family, p):
    """The closed-form single-input maps agree with high-order Gauss–Hermite quadrature."""
    from math import erf as merf
    from math import sqrt

    import numpy.polynomial.hermite_e as H

    t, w = H.hermegauss(200)
    w = w / w.sum()
    sig = {
        "erf": lambda z: p[0] * np.vectorize(merf)(p[1] * z) + p[2],
        "sin": lambda z: p[0] * np.sin(p[1] * z + p[2]),
        "exp": lambda z: p[0] * np.exp(p[1] * z),
        "gaussian": lambda z: p[0] * np.exp(p[1] * z * z),
        "gelu": lambda z: z * 0.5 * (1 + np.vectorize(merf)(z / sqrt(2))),
        "monomial": lambda z: z ** int(p[0]),
        "polynomial": lambda z: p[0] + p[1] * z + p[2] * z * z,
    }[family]
    g, h = diagonal_maps(family, np.array(p, dtype=float))
    for K in (0.05, 0.3, 1.0, 2.7):
        z = sqrt(K) * t
        eps = 1e-5
        dsig = (sig(z + eps) - sig(z - eps)) / (2 * eps)
        assert g(K) == pytest.approx(w @ sig(z) ** 2, rel=1e-11)
        assert h(K) == pytest.approx(w @ dsig**2, rel=1e-8)  # finite-difference σ'


def test_diagonal_recursion_vs_stored_nt_diagonal():
    """The exact diagonal recursion reproduces neural-tangents' diagonal (loosely for relu-type NTK)."""
    for i in range(N_CASES):
        Kd, Td = _exact_diag(i)
        assert np.allclose(np.diag(REF["K"][i]), Kd, rtol=1e-12, atol=0), _case_id(i)
        if REF["case_has_ntk"][i]:
            rtol = 1e-6 if REF["case_family"][i] == "abrelu" else 1e-12
            assert np.allclose(np.diag(REF["Theta"][i]), Td, rtol=rtol, atol=0), _case_id(i)


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_numpy_reference_vs_stored_nt(act):
    """The plain numpy recursion agrees with neural-tangents off the diagonal (it validates the oracle)."""
    x = REF["x"]
    for i in np.flatnonzero(REF["case_name"] == act):
        K, T = numpy_reference(x, act, REF["case_C_b"][i], REF["case_C_W"][i], REF["case_depth"][i])
        eK = _scaled_error(K, REF["K"][i], np.diag(K))
        eT = _scaled_error(T, REF["Theta"][i], np.diag(T))
        mK, mT = _case_mask(i, "nngp"), _case_mask(i, "ntk")
        assert eK[mK].max() <= TOL_NT, f"{_case_id(i)} NNGP: {_worst(eK, mK)}"
        assert eT[mT].max() <= TOL_NT, f"{_case_id(i)} NTK: {_worst(eT, mT)}"
        Kd, Td = _exact_diag(i)
        assert np.allclose(np.diag(K), Kd, rtol=TOL_EXACT, atol=0)
        assert np.allclose(np.diag(T), Td, rtol=TOL_EXACT, atol=0)


ILL_CASES = [
    i for i in range(N_CASES) if str(REF["case_family"][i]) in ("abrelu", "sign") and REF["case_depth"][i] > 1
]


def _pair_errors(i: int, K: np.ndarray, T: np.ndarray | None) -> tuple[float, float]:
    a, b = REF["near_parallel_pairs"][0]
    Kab, Tab, Kaa, Kbb, Taa, Tbb = _mp_pair(i)
    eK = abs(K[a, b] - Kab) / math.sqrt(Kaa * Kbb)
    eT = abs(T[a, b] - Tab) / math.sqrt(Taa * Tbb) if T is not None and REF["case_has_ntk"][i] else 0.0
    return eK, eT


def test_stored_nt_at_near_parallel_pair_vs_high_precision():
    """neural-tangents is within the conditioning bound at the near-parallel pair of kinked activations."""
    worst = 0.0
    for i in ILL_CASES:
        tK, tT = ill_conditioned_tolerance(i)
        eK, eT = _pair_errors(i, REF["K"][i], REF["Theta"][i])
        assert eK <= tK and eT <= tT, f"{_case_id(i)}: NT error {eK:.2e} / {eT:.2e} > {tK:.2e} / {tT:.2e}"
        worst = max(worst, eT)
    assert worst > 1e-10, "expected neural-tangents' relu NTK to be visibly off here (FACTS.md)"


# ----------------------------------------------------------------------------------------------
# nnft against the references
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("i", _params(list(range(N_CASES))))
def test_nngp_vs_neural_tangents_off_diagonal(i):
    """nnft's output NNGP equals neural-tangents' off the diagonal to 1e-10 (Cauchy–Schwarz scaled)."""
    got, want = _nnft_nngp(i), REF["K"][i]
    mask = _case_mask(i, "nngp")
    err = _scaled_error(got, want, _exact_diag(i)[0])
    assert err[mask].max() <= TOL_NT, f"{_case_id(i)} ({REF['case_nt'][i]}): {_worst(err, mask)}"


@pytest.mark.parametrize("i", _params(NTK_CASES))
def test_ntk_vs_neural_tangents_off_diagonal(i):
    """nnft's output NTK equals neural-tangents' off the diagonal to 1e-10 (Cauchy–Schwarz scaled)."""
    got, want = _nnft_ntk(i), REF["Theta"][i]
    mask = _case_mask(i, "ntk")
    err = _scaled_error(got, want, _exact_diag(i)[1])
    assert err[mask].max() <= TOL_NT, f"{_case_id(i)} ({REF['case_nt'][i]}): {_worst(err, mask)}"


@pytest.mark.parametrize("i", _params(list(range(N_CASES))))
def test_diagonal_and_duplicates_vs_exact_recursion(i):
    """On the diagonal and at duplicate inputs nnft equals the exact single-input recursion to 1e-12."""
    Kd, Td = _exact_diag(i)
    K, tol = _nnft_nngp(i), _diag_tol(i, "nngp")
    assert np.allclose(np.diag(K), Kd, rtol=tol, atol=0), (
        f"{_case_id(i)} NNGP diagonal: max rel err {np.max(np.abs(np.diag(K) / Kd - 1)):.3e}"
    )
    for a, b in REF["duplicate_pairs"]:
        assert K[a, b] == pytest.approx(Kd[a], rel=tol, abs=0), f"{_case_id(i)} NNGP at ({a},{b})"
    if not REF["case_has_ntk"][i]:
        return
    T, tol = _nnft_ntk(i), _diag_tol(i, "ntk")
    assert np.allclose(np.diag(T), Td, rtol=tol, atol=0), (
        f"{_case_id(i)} NTK diagonal: max rel err {np.max(np.abs(np.diag(T) / Td - 1)):.3e}"
    )
    for a, b in REF["duplicate_pairs"]:
        assert T[a, b] == pytest.approx(Td[a], rel=tol, abs=0), f"{_case_id(i)} NTK at ({a},{b})"


@pytest.mark.parametrize("name", ["relu", "erf", "sin", "gelu"])
def test_kernels_of_every_layer_vs_neural_tangents(name):
    """``net.kernels(x)`` of a depth-16 net gives, at layer ℓ, neural-tangents' depth-ℓ output kernels."""
    for setting in range(2):
        rows = [i for i in np.flatnonzero(REF["case_name"] == name)
                if (REF["case_C_b"][i] == 0) == (setting == 0)]
        i16 = next(i for i in rows if REF["case_depth"][i] == 16)
        ks = _net(i16).kernels(REF["x"])
        K, T = np.asarray(ks.K), np.asarray(ks.Theta)
        assert K.shape == (16, 12, 12) and T.shape == (16, 12, 12)
        for i in rows:
            L = REF["case_depth"][i]
            Kd, Td = _exact_diag(i)
            eK = _scaled_error(K[L - 1], REF["K"][i], Kd)
            eT = _scaled_error(T[L - 1], REF["Theta"][i], Td)
            mK, mT = _case_mask(i, "nngp"), _case_mask(i, "ntk")
            assert eK[mK].max() <= TOL_NT, f"{_case_id(i)} kernels().K: {_worst(eK, mK)}"
            assert eT[mT].max() <= TOL_NT, f"{_case_id(i)} kernels().Theta: {_worst(eT, mT)}"
            assert np.allclose(np.diag(K[L - 1]), Kd, rtol=_diag_tol(i, "nngp"), atol=0)
            assert np.allclose(np.diag(T[L - 1]), Td, rtol=_diag_tol(i, "ntk"), atol=0)


@pytest.mark.parametrize("i", ILL_CASES, ids=[CASE_IDS[i] for i in ILL_CASES])
def test_near_parallel_pair_vs_high_precision(i):
    """At the near-parallel pair, kinked activations match a 50-digit recursion to the conditioning bound."""
    tK, tT = ill_conditioned_tolerance(i)
    T = _nnft_ntk(i) if REF["case_has_ntk"][i] else None
    eK, eT = _pair_errors(i, _nnft_nngp(i), T)
    assert eK <= tK, f"{_case_id(i)} NNGP at near-parallel pair: {eK:.3e} > {tK:.3e}"
    assert eT <= tT, f"{_case_id(i)} NTK at near-parallel pair: {eT:.3e} > {tT:.3e}"


#: (P, n_0) shapes for which OpenBLAS' gemm on this machine (SkylakeX kernels) rounds x_a·x_a differently
#: at different positions of the Gram matrix for the inputs below, so identical or negated rows do not
#: give |c| == 1 exactly unless the engine takes care; on other machines they are just more shapes.
GEMM_SHAPES = [(12, 5), (13, 64), (18, 64), (22, 7), (38, 64)]


@pytest.mark.parametrize("P,n0", GEMM_SHAPES)
def test_duplicate_and_antiparallel_inputs_any_shape(P, n0):
    """Duplicated rows give the exact diagonal, and negated rows the 50-digit value, for kinked σ."""
    rng = np.random.default_rng(P * 100 + n0)
    x = rng.standard_normal((P, n0))
    m = min(4, P // 4)
    x[P - m:] = x[:m]  # duplicates: (i, P - m + i)
    x[P - 2 * m:P - m] = -x[m:2 * m]  # exactly antiparallel: (m + i, P - 2m + i)
    for name, p, C_W in (("relu", (0.0, 1.0), 2.0), ("abs", (-1.0, 1.0), 1.0), ("leaky_relu(0.1)", (0.1, 1.0), 1.98)):
        p = np.array(p)
        net = nnft.MLP(activation=name, depth=4, C_b=0.0, C_W=C_W)
        K, T = np.asarray(net.nngp(x)), np.asarray(net.ntk(x))
        Kd, Td = exact_diagonal(x[:m], "abrelu", p, 0.0, C_W, 4)
        for i in range(m):
            a, b = i, P - m + i
            assert K[a, b] == pytest.approx(Kd[i], rel=TOL_EXACT, abs=0), f"{name} NNGP at duplicate ({a},{b})"
            assert T[a, b] == pytest.approx(Td[i], rel=TOL_EXACT, abs=0), (
                f"{name} NTK at duplicate ({a},{b}): rel err {abs(T[a, b] / Td[i] - 1):.3e}"
            )
            a, b = m + i, P - 2 * m + i
            Kab, Tab, Kaa, Kbb, Taa, Tbb = mp_pair(x[a], x[b], "abrelu", p, 0.0, C_W, 4)
            eK = abs(K[a, b] - Kab) / math.sqrt(Kaa * Kbb)
            eT = abs(T[a, b] - Tab) / math.sqrt(Taa * Tbb)
            assert eK <= TOL_NT, f"{name} NNGP at antiparallel pair ({a},{b}): scaled error {eK:.3e}"
            assert eT <= TOL_NT, f"{name} NTK at antiparallel pair ({a},{b}): scaled error {eT:.3e}"


def test_sign_ntk_is_undefined():
    """nnft refuses the NTK of sign (σ' is a Dirac delta), where neural-tangents silently returns zero."""
    i = int(np.flatnonzero(REF["case_name"] == "sign")[0])
    assert np.all(REF["Theta"][i] != REF["Theta"][i])  # stored as NaN: not compared
    with pytest.raises(ValueError, match="undefined"):
        _net(i).ntk(REF["x"])


def _random_inputs(seed: int = 7, P: int = 16, n0: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((P, n0))
    return x * rng.uniform(0.3, 2.5, size=(P, 1))


@pytest.mark.parametrize("act", ["relu", "erf"])
@pytest.mark.parametrize("C_b,C_W", [(0.0, 2.0), (0.2, 1.3)])
@pytest.mark.parametrize("depth", [1, 2, 3, 6])
def test_vs_plain_numpy_recursion(act, C_b, C_W, depth):
    """nnft equals a direct numpy float64 recursion on random inputs to 1e-12, diagonal included."""
    x = _random_inputs()
    K, T = numpy_reference(x, act, C_b, C_W, depth)
    net = nnft.MLP(activation=act, depth=depth, C_b=C_b, C_W=C_W)
    eK = _scaled_error(net.nngp(x), K, np.diag(K))
    eT = _scaled_error(net.ntk(x), T, np.diag(T))
    assert eK.max() <= TOL_EXACT, f"NNGP: {_worst(eK, np.ones_like(eK, dtype=bool))}"
    assert eT.max() <= TOL_EXACT, f"NTK: {_worst(eT, np.ones_like(eT, dtype=bool))}"


# ----------------------------------------------------------------------------------------------
# the stored file is current (needs the neural-tangents venv; slow)
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not NT_PYTHON.exists(), reason=f"no neural-tangents venv at {NT_PYTHON}")
def test_stored_reference_is_fresh(tmp_path):
    """Recomputing relu and erf with the live neural-tangents venv reproduces the stored arrays."""
    out = tmp_path / "live.npz"
    proc = subprocess.run(
        [str(NT_PYTHON), str(SCRIPT), "--out", str(out), "--only", "relu,erf"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
    assert proc.returncode == 0, "bench/nt_reference.py failed under the neural-tangents venv"
    with np.load(out, allow_pickle=False) as f:
        live = {k: f[k] for k in f.files}
    assert np.array_equal(live["x"], REF["x"])
    assert str(live["meta_neural_tangents"]) == str(REF["meta_neural_tangents"])
    stored = {
        (str(REF["case_name"][i]), REF["case_C_b"][i], REF["case_C_W"][i], int(REF["case_depth"][i])): i
        for i in range(N_CASES)
    }
    assert len(live["case_name"]) == 16
    for j in range(len(live["case_name"])):
        key = (str(live["case_name"][j]), live["case_C_b"][j], live["case_C_W"][j],
               int(live["case_depth"][j]))
        i = stored[key]
        np.testing.assert_allclose(live["K"][j], REF["K"][i], rtol=1e-14, atol=0, err_msg=str(key))
        np.testing.assert_allclose(live["Theta"][j], REF["Theta"][i], rtol=1e-14, atol=0, err_msg=str(key))
