"""Property-based tests: whatever a user passes, nnft returns a valid kernel or one of its documented errors.

Activations (built-ins with random parameters and expressions of z generated from a small grammar),
hyper-parameters (C_b ≥ 0 and C_W > 0 including 0, subnormal and huge values, scalars or per-layer
lists), depths 1..6 and inputs (P = 1..5, n_0 = 1..4, per-row scales 1e-300 … 1e300, exact duplicates,
±x, near-duplicates a + 1e-9·|a|·e_k, zero rows) go into ``MLP(...).kernels(x)``. The property: the
call returns K and Θ that are float64 (L, P, P), finite, exactly symmetric and positive semi-definite
within tolerance, with K^{(1)} = C_b + C_W x·xᵀ/n_0 and Θ^{(ℓ)} − K^{(ℓ)} ⪰ 0 — or it raises an instance
of :class:`nnft.errors.NNFTError`. Anything else fails: a raw numpy/sympy/Python exception, a NaN or
inf, a non-PSD matrix, a numpy ``RuntimeWarning`` escaping to the user (an overflow nnft neither handled
nor reported), or a hang (a case running longer than ``NNFT_PROPERTY_TIMEOUT`` seconds, default 60).
Strings (printable junk and mutated valid expressions) go into ``nnft.activation``: the result is an
``Activation`` or an ``NNFTError``, never another exception, and parsing has no side effect (an audit
hook records file writes, process starts, network and environment changes while parsing).

PSD tolerance. The check is scale free: each matrix M is normalised to C = D^{-1/2} M D^{-1/2} with
D = diag(M) (rows with M_aa = 0 are normalised by max diag instead, so a non-zero entry in such a row
still shows; diagonals below 1e-300, which float64 cannot resolve to 1e-10, count as 1e-300),
and ``eigvalsh(C).min() ≥ −1e-10`` is required. Reason: entries are documented accurate
to ≈ 1e-12 relative (closed forms to a few ulps); an error δ per normalised entry moves eigenvalues by at
most ‖E‖₂ ≤ P·δ = 5e-12 at P = 5, and eigvalsh adds ~P·eps. 1e-10 leaves a 20× margin above that yet is
below the −4.5e-10 of the known near-parallel ReLU NTK defect. Normalising matters: with rows at 1e-150
and 1e150 in one batch a test relative to max|diag| would not see the small rows at all.

Determinism and size. The ``nnft`` hypothesis profile (tests/conftest.py) derandomises, so every CI
run draws the same cases; the counts per test below add up to ≥ 2,000. Quadrature activations (tanh,
sigmoid, softplus, swish and most generated expressions) cost 0.1–1 s per case, so they are drawn with
P ≤ 2, per-row scales within 1e±3 and C_b, C_W ≤ 4; their extreme scales (1e±300, unequal norms) are exercised by the
``slow`` test with a handful of cases. To run many more cases locally::

    NNFT_PROPERTY_EXAMPLES=100000 python3 -m pytest -q -p no:cacheprovider tests/test_properties.py

which splits the given total over the tests in the CI proportions (``HYPOTHESIS_PROFILE=nnft-random``
additionally draws fresh random cases instead of the fixed ones).
"""

from __future__ import annotations

import math
import os
import signal
import string
import subprocess
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

import nnft
from nnft.errors import NNFTError
from nnft.functions import Sigmoid, Softplus

z = sp.Symbol("z", real=True)

#: the smallest normalised eigenvalue accepted (see the module docstring)
PSD_TOL = 1e-10
#: |K^{(1)} − (C_b + C_W x·xᵀ/n_0)| allowed, relative to C_b + C_W |x_a||x_b|/n_0
FIRST_LAYER_RTOL = 1e-13
TIMEOUT = float(os.environ.get("NNFT_PROPERTY_TIMEOUT", "60"))

# ----------------------------------------------------------------------------- case counts

#: examples per test in CI (sum ≥ 2,000)
CI_EXAMPLES = {
    "closed": 1000,
    "quadrature": 30,
    "generated": 60,
    "numba": 15,
    "params": 60,
    "strings": 900,
    "extreme_quadrature": 6,
}


def n_examples(name: str) -> int:
    """CI's count for a test, or its share of ``NNFT_PROPERTY_EXAMPLES`` when that is set."""
    total = os.environ.get("NNFT_PROPERTY_EXAMPLES")
    if not total:
        return CI_EXAMPLES[name]
    return max(1, round(int(total) * CI_EXAMPLES[name] / sum(CI_EXAMPLES.values())))


def budget(name: str):
    """Hypothesis settings for a test: its example count, no deadline (the hang guard is explicit)."""
    return settings(max_examples=n_examples(name), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# ----------------------------------------------------------------------------- guards


class Hang(BaseException):
    """A case ran longer than TIMEOUT (BaseException, so that no ``except Exception`` in nnft swallows it)."""


@contextmanager
def hang_guard(seconds: float = TIMEOUT):
    """Raise :class:`Hang` in the main thread if the block runs longer than ``seconds``."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"no result and no error after {seconds:g} s: a hang (nnft should refuse or stop with a "
                   "BudgetError instead)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_guarded(fn):
    """``fn()`` under the hang guard with warnings recorded: (result or None, NNFTError or None).

    Non-nnft exceptions propagate unchanged (hypothesis then reports each distinct origin as its own
    bug); a numpy ``RuntimeWarning`` reaching the caller with a returned result fails the case.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with hang_guard(), np.errstate(over="warn", divide="warn", invalid="warn", under="ignore"):
                out = fn()
        except NNFTError as exc:
            if currently_in_test_context():
                note(f"refused: {type(exc).__name__}: {exc}")
            return None, exc
    leaked = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not leaked, (f"numpy RuntimeWarning escaped with a returned result (an overflow/invalid operation "
                        f"nnft neither handled nor reported): {[str(w.message) for w in leaked]}")
    return out, None


# ----------------------------------------------------------------------------- the kernel property


#: diagonals below this are scaled as if they were this: float64 cannot hold such K to 1e-10 relative
#: (subnormal spacing 5e-324), so their rows are checked on an absolute scale instead
TINY_DIAG = 1e-300


def _scales(d: np.ndarray) -> np.ndarray:
    """√d_a, with zero diagonals scaled by the largest one and tiny ones by √TINY_DIAG."""
    dmax = max(d.max(), TINY_DIAG)
    return np.sqrt(np.where(d > TINY_DIAG, d, np.where(d > 0, TINY_DIAG, dmax)))


def _normalised(M: np.ndarray, d: np.ndarray | None = None) -> np.ndarray:
    """D^{-1/2} M D^{-1/2} with D = diag(M) (or the given d), scaled as in :func:`_scales`."""
    s = _scales(np.diag(M).copy() if d is None else d)
    with np.errstate(all="ignore"):
        return (M / s[:, None]) / s[None, :]


def assert_psd(M: np.ndarray, what: str) -> None:
    """M is symmetric with non-negative diagonal and min eigenvalue of its normalised form ≥ −PSD_TOL."""
    assert np.array_equal(M, M.T), f"{what} is not exactly symmetric: max |M − Mᵀ| = {np.abs(M - M.T).max():.3g}"
    d = np.diag(M)
    assert np.all(d >= 0), f"{what} has a negative diagonal entry: {d}"
    C = _normalised(M)
    assert np.all(np.isfinite(C)), f"{what} violates |M_ab| ≤ √(M_aa M_bb) by orders of magnitude: {M}"
    lam = np.linalg.eigvalsh(C).min()
    assert lam >= -PSD_TOL, f"{what} is not PSD: normalised min eigenvalue {lam:.3g} < −{PSD_TOL:g}\n{M!r}"


def check_kernels(kern, net: nnft.MLP, x: np.ndarray, ntk: bool) -> None:
    """The kernel property of the module docstring for the result of ``net.kernels(x, ntk=ntk)``."""
    L, P = net.depth, x.shape[0]
    K, T = kern.K, kern.Theta
    assert isinstance(K, np.ndarray) and K.shape == (L, P, P) and K.dtype == np.float64, (type(K), K.shape)
    assert np.all(np.isfinite(K)), f"K has NaN/inf without an error:\n{K!r}"
    if ntk:
        assert isinstance(T, np.ndarray) and T.shape == (L, P, P) and T.dtype == np.float64
        assert np.all(np.isfinite(T)), f"Θ has NaN/inf without an error:\n{T!r}"
    # layer 1 is a Gram matrix: an independent product, compared entrywise on its own scale
    with np.errstate(all="ignore"):
        g = (x @ x.T) / x.shape[1]
        nrm = np.sqrt((x * x).sum(1) / x.shape[1])
        ref = net.C_b[0] + net.C_W[0] * g
        scale = net.C_b[0] + net.C_W[0] * np.outer(nrm, nrm)
    if np.all(np.isfinite(ref)) and np.all(np.isfinite(scale)):
        err = np.abs(K[0] - ref)
        assert np.all(err <= FIRST_LAYER_RTOL * scale + 1e-300), (
            f"K^(1) differs from C_b + C_W x·xᵀ/n_0: max error / scale {np.max(err / np.maximum(scale, 1e-300)):.3g}")
    for ell in range(L):
        assert_psd(K[ell], f"K^({ell + 1})")
        if ntk:
            assert_psd(T[ell], f"Θ^({ell + 1})")
            # λ = C: Θ^(ℓ) − K^(ℓ) = C_W ⟨σ'σ'⟩ ⊙ Θ^(ℓ−1) is a Schur product of PSD matrices (0 at ℓ = 1)
            lam = np.linalg.eigvalsh(_normalised(T[ell] - K[ell], np.diag(T[ell]).copy())).min()
            assert lam >= -PSD_TOL, f"Θ^({ell + 1}) − K^({ell + 1}) is not PSD (normalised min eigenvalue {lam:.3g})"


def kernel_case(act, depth, C_b, C_W, width, x, ntk, backend="numpy") -> None:
    """Build the network and compute its kernels under the guards; check the result if there is one."""

    def call():
        net = nnft.MLP(act, depth=depth, width=width, C_b=C_b, C_W=C_W)
        return net, net.kernels(x, ntk=ntk, backend=backend)

    out, err = run_guarded(call)
    if err is None:
        net, kern = out
        check_kernels(kern, net, x, ntk)


# ----------------------------------------------------------------------------- strategies

#: decimal exponents of the per-row scales; the special values sit at over/underflow edges of K, K², √K
_EXPONENTS = st.one_of(
    st.just(0),
    st.integers(-300, 300),
    st.sampled_from([-300, -250, -200, -162, -155, -154, -150, -100, -20, -8, -1, 1, 8, 20, 100, 150, 154, 155,
                     162, 200, 250, 300]),
)
_MODERATE_EXPONENTS = st.one_of(st.just(0), st.integers(-3, 3))
_ENTRY = st.floats(-4.0, 4.0, allow_nan=False, allow_infinity=False)


@st.composite
def inputs(draw, max_P: int = 5, max_n0: int = 4, exponents=_EXPONENTS) -> np.ndarray:
    """Inputs (P, n_0): fresh rows at scale 10^e, exact duplicates, opposites, near-duplicates, zero rows."""
    P = draw(st.integers(1, max_P))
    n0 = draw(st.integers(1, max_n0))
    rows: list[np.ndarray] = []
    for i in range(P):
        kind = draw(st.sampled_from(["fresh", "fresh", "fresh", "dup", "neg", "near", "zero"] if i else
                                    ["fresh", "fresh", "fresh", "zero"]))
        if kind == "fresh":
            e = draw(exponents)
            row = np.array(draw(st.lists(_ENTRY, min_size=n0, max_size=n0))) * 10.0 ** e
        elif kind == "zero":
            row = np.zeros(n0)
        else:
            base = rows[draw(st.integers(0, i - 1))]
            if kind == "dup":
                row = base.copy()
            elif kind == "neg":
                row = -base
            else:
                k = draw(st.integers(0, n0 - 1))
                step = np.abs(base).max() if np.any(base) else 1.0
                row = base.copy()
                row[k] += draw(st.sampled_from([1e-9, 2e-9, -1e-9, 1e-12, 1e-6])) * step
        rows.append(row)
    return np.array(rows, dtype=np.float64)


_C_B = st.one_of(st.just(0.0), st.floats(0.0, 4.0), st.sampled_from([5e-324, 1e-300, 1e-12, 1e12, 1e300]))
_C_W = st.one_of(st.just(1.0), st.floats(1e-3, 4.0), st.sampled_from([5e-324, 1e-300, 1e-12, 2.0, 1e12, 1e300]))
# quadrature at K ~ 1e300 runs for minutes today: moderate variances for quadrature activations in CI
_C_B_MODERATE = st.one_of(st.just(0.0), st.floats(0.0, 4.0))
_C_W_MODERATE = st.one_of(st.just(1.0), st.floats(1e-3, 4.0))


@st.composite
def hyper(draw, depth: int, moderate: bool = False):
    """(C_b, C_W, width): scalars or per-layer lists, widths an int or a list of hidden widths."""
    cb, cw = (_C_B_MODERATE, _C_W_MODERATE) if moderate else (_C_B, _C_W)
    if draw(st.integers(0, 3)) == 0:
        C_b = draw(st.lists(cb, min_size=depth, max_size=depth))
        C_W = draw(st.lists(cw, min_size=depth, max_size=depth))
    else:
        C_b, C_W = draw(cb), draw(cw)
    if draw(st.booleans()):
        width = draw(st.integers(1, 1000))
    else:
        width = draw(st.lists(st.integers(1, 1000), min_size=depth - 1, max_size=depth - 1))
    return C_b, C_W, width


# a few slopes only: each new slope is a new expression, derived and compiled afresh (~0.5 s); random slopes are
# covered without kernels by test_builtin_parameters_mean_what_they_say
_LEAK = st.sampled_from([0.01, 0.2, 0.0, 1.0, -1.0, -0.5, 3.0, 1e-300, 1e300])


@st.composite
def closed_builtins(draw):
    """A built-in activation with a closed-form Gaussian average, with random parameters, in any spelling."""
    name = draw(st.sampled_from(["relu", "leaky_relu", "abs", "linear", "erf", "sin", "cos", "exp", "monomial",
                                 "gelu", "step", "sign"]))
    if name == "leaky_relu":
        a = draw(_LEAK)
        return draw(st.sampled_from([nnft.activation("leaky_relu", a=a), f"leaky_relu({a!r})",
                                     f"leaky_relu(a={a!r})"]))
    if name == "monomial":
        k = draw(st.integers(1, 6))
        return draw(st.sampled_from([f"monomial({k})", nnft.activation("monomial", k=k)]))
    return draw(st.sampled_from([name, name.upper(), f" {name} "]))


# A small grammar of expressions of z, drawn as (sympy expression, text in nnft's input syntax) pairs.
_CONSTS = st.sampled_from([(sp.Integer(1), "1"), (sp.Integer(2), "2"), (sp.Rational(1, 2), "1/2"),
                           (sp.Integer(-1), "(-1)"), (sp.Rational(3, 10), "0.3"), (sp.Integer(0), "0")])
_LEAF = st.one_of(st.just((z, "z")), st.just((z, "z")), _CONSTS)
_UNARY = {
    "tanh": (sp.tanh, "tanh({})"), "erf": (sp.erf, "erf({})"), "exp": (sp.exp, "exp({})"),
    "sin": (sp.sin, "sin({})"), "cos": (sp.cos, "cos({})"), "relu": (lambda e: sp.Max(e, 0), "Max({}, 0)"),
    "abs": (sp.Abs, "Abs({})"), "sigmoid": (Sigmoid, "sigmoid({})"), "softplus": (Softplus, "softplus({})"),
    "neg": (lambda e: -e, "(-({}))"), "square": (lambda e: e**2, "({})**2"), "cube": (lambda e: e**3, "({})**3"),
}


def _extend(children):
    unary = st.tuples(st.sampled_from(sorted(_UNARY)), children).map(
        lambda t: (_UNARY[t[0]][0](t[1][0]), _UNARY[t[0]][1].format(t[1][1])))
    add = st.tuples(children, children).map(lambda t: (t[0][0] + t[1][0], f"({t[0][1]} + {t[1][1]})"))
    mul = st.tuples(children, children).map(lambda t: (t[0][0] * t[1][0], f"({t[0][1]})*({t[1][1]})"))
    return st.one_of(unary, unary, add, mul)


EXPRESSIONS = st.recursive(_LEAF, _extend, max_leaves=4)
QUADRATURE_BUILTINS = st.sampled_from(["tanh", "sigmoid", "softplus", "swish", "silu", "z*tanh(z)"])


def _is_closed(act) -> bool:
    """Whether nnft has a closed form for σ (so large P is cheap); False if σ is refused here already."""
    try:
        from nnft.recursions import one_layer_map

        return bool(one_layer_map("nngp", nnft.activation(act)).closed)
    except Exception:  # the kernel call itself reports (or fails on) this activation
        return False


# ----------------------------------------------------------------------------- kernel tests


@budget("closed")
@given(act=closed_builtins(), depth=st.integers(1, 6), data=st.data(), x=inputs(),
       ntk=st.sampled_from([True, True, True, False]))
@example(act="relu", depth=4, data=None, x=np.array([[0.3, -1.2], [0.3 + 1e-9, -1.2], [0.3 + 2e-9, -1.2],
                                                      [1.1, 0.4]]), ntk=True)  # issue 12 item 4
@example(act="monomial(3)", depth=8 - 2, data=None, x=10 * np.eye(2), ntk=True)
@example(act="erf", depth=2, data=None, x=np.array([[2e7], [1e8], [2e7]]), ntk=True)  # arcsine at |t| → 1: AsinGap
def test_closed_form_activations_give_valid_kernels_or_documented_errors(act, depth, data, x, ntk):
    """Built-ins with closed forms, random parameters, depths, hyper-parameters and any-scale inputs."""
    C_b, C_W, width = data.draw(hyper(depth)) if data is not None else (0.0, 2.0 if act == "relu" else 5.0, 8)
    kernel_case(act, depth, C_b, C_W, width, x, ntk)


@budget("quadrature")
@given(act=QUADRATURE_BUILTINS, depth=st.integers(1, 6), data=st.data(),
       x=inputs(max_P=2, exponents=_MODERATE_EXPONENTS))
def test_quadrature_activations_give_valid_kernels_or_documented_errors(act, depth, data, x):
    """tanh, sigmoid, softplus, swish, z·tanh z (Gaussian quadrature) on small batches at moderate scales."""
    C_b, C_W, width = data.draw(hyper(depth, moderate=True))
    kernel_case(act, depth, C_b, C_W, width, x, ntk=True)


@budget("generated")
@given(e=EXPRESSIONS, as_text=st.booleans(), depth=st.integers(1, 6), data=st.data())
@example(e=(sp.tan(z), "tan(z)"), as_text=True, depth=2, data=None)          # issue 12 item 2: poles
@example(e=(1 / (z - sp.Rational(1, 2)), "1/(z-0.5)"), as_text=True, depth=2, data=None)
@example(e=(sp.floor(z), "floor(z)"), as_text=True, depth=2, data=None)      # item 6: σ' is a delta
@example(e=(sp.exp(z**2), "exp(z**2)"), as_text=True, depth=3, data=None)    # e^{q z²}, 4qK ≥ 1
def test_generated_expressions_give_valid_kernels_or_documented_errors(e, as_text, depth, data):
    """Sums, products and compositions of tanh, erf, exp, sin, cos, relu, |·|, powers, sigmoid, softplus."""
    expr, text = e
    act = text if as_text else expr
    note(f"σ(z) = {text}")
    if data is None:
        C_b, C_W, width, x = 0.0, 1.0, 16, np.array([[0.5, -1.0], [1.5, 0.2]])
    else:
        closed = _is_closed(act)
        C_b, C_W, width = data.draw(hyper(depth, moderate=not closed))
        x = data.draw(inputs(max_P=4 if closed else 2, exponents=_EXPONENTS if closed else _MODERATE_EXPONENTS))
    kernel_case(act, depth, C_b, C_W, width, x, ntk=True)


@budget("numba")
@given(act=st.sampled_from(["relu", "erf"]), depth=st.integers(1, 4), data=st.data(), x=inputs(max_P=4))
def test_numba_backend_gives_valid_kernels_or_documented_errors(act, depth, data, x):
    """The numba backend on a small subset (compiling costs seconds per activation)."""
    C_b, C_W, width = data.draw(hyper(depth))
    kernel_case(act, depth, C_b, C_W, width, x, ntk=True, backend="numba")


@pytest.mark.slow
@budget("extreme_quadrature")
@given(act=st.sampled_from(["tanh", "sigmoid", "softplus", "swish"]), depth=st.integers(1, 4),
       C_b=st.sampled_from([0.0, 0.1]), x=inputs(max_P=2, max_n0=2))
@example(act="tanh", depth=2, C_b=0.0, x=np.array([[math.sqrt(1e155)]]))      # issue 12 item 3
@example(act="tanh", depth=2, C_b=0.1, x=np.array([[math.sqrt(1e155)]]))
@example(act="tanh", depth=2, C_b=0.0, x=np.array([[1e-200, 2e-200]]))
def test_quadrature_activations_at_extreme_scales(act, depth, C_b, x):
    """Quadrature activations with rows from 1e-300 to 1e300 (slow today: P ≤ 2 and few cases)."""
    kernel_case(act, depth, C_b, 1.0, 16, x, ntk=True)


# ----------------------------------------------------------------------------- parameters mean what they say


@budget("params")
@given(kind=st.sampled_from(["leaky_relu", "monomial"]),
       value=st.one_of(st.integers(-3, 8), st.floats(-4, 8, allow_nan=False, allow_infinity=False),
                       st.sampled_from([2.5, 1.0, 3.0, 0.5, float("nan"), float("inf"), True])),
       spelling=st.sampled_from(["kwarg", "call", "mlp"]))
def test_builtin_parameters_mean_what_they_say(kind, value, spelling):
    """leaky_relu(a) has slope a for z < 0 and monomial(k) is z**k for integer k ≥ 1; anything else is refused."""
    key = "a" if kind == "leaky_relu" else "k"

    def make():
        if spelling == "kwarg":
            return nnft.activation(kind, **{key: value})
        if spelling == "call":
            return nnft.activation(f"{kind}({value!r})")
        return nnft.MLP(f"{kind}({value!r})", depth=2).activation

    act, err = run_guarded(make)
    if err is not None:
        return
    assert isinstance(act, nnft.Activation)
    if kind == "leaky_relu":
        assert not isinstance(value, bool), "True accepted as a slope"
        assert math.isfinite(value)
        assert float(act.expr.subs(z, -2)) == pytest.approx(-2 * value, rel=1e-15, abs=1e-300)
        assert float(act.expr.subs(z, 3)) == 3.0
    else:
        assert not isinstance(value, bool) and float(value).is_integer() and value >= 1, (
            f"monomial accepted k = {value!r} and built {act.expr}")
        assert sp.simplify(act.expr - z ** int(value)) == 0


# ----------------------------------------------------------------------------- strings


class _SideEffects:
    """An audit hook (installed once per process, inert unless armed) recording effects outside Python memory."""

    EVENTS = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
              "os.remove", "os.unlink", "os.rename", "os.replace", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
              "os.truncate", "os.utime", "os.symlink", "os.link", "os.putenv", "os.unsetenv", "os.kill",
              "os.chdir", "shutil.rmtree", "shutil.copyfile", "shutil.move", "socket.connect", "socket.bind",
              "socket.getaddrinfo", "urllib.Request", "ctypes.dlopen", "webbrowser.open", "pty.spawn")
    armed = False
    seen: list = []
    installed = False

    @classmethod
    def install(cls) -> None:
        if not cls.installed:
            sys.addaudithook(cls._hook)
            cls.installed = True

    @classmethod
    def _hook(cls, event: str, args) -> None:
        if not cls.armed:
            return
        if event in cls.EVENTS:
            cls.seen.append((event, args))
        elif event == "open" and len(args) >= 2 and isinstance(args[1], str) and any(c in args[1] for c in "wax+"):
            cls.seen.append((event, args))
        elif event == "open" and len(args) >= 3 and isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR):
            cls.seen.append((event, args))

    @classmethod
    @contextmanager
    def watch(cls):
        cls.install()
        cls.seen = []
        cls.armed = True
        try:
            yield cls.seen
        finally:
            cls.armed = False


_VALID = ["tanh", "relu", "z*tanh(z)", "leaky_relu(0.1)", "monomial(3)", "Max(z, 0) + sin(z)/2", "erf(z/2)",
          "sigmoid(z)", "softplus(2*z)", "exp(-z**2)", "Abs(z)", "z**2 - 1", "gelu", "swish", "cos(3*z)",
          "Piecewise((0, z < 0), (z, True))", "leaky_relu(a=0.2)", "1/(1 + exp(-z))"]
_HOSTILE = ["__import__('os').system('touch PWNED') or z",
            "__import__('pathlib').Path('PWNED').write_text('x') and z or z",
            "open('PWNED', 'w') and z", "z.__class__.__base__.__subclasses__()", "eval('z')", "exec('1') or z",
            "lambda z: z", "[z for z in ()]", "z if __import__('sys') else z", "getattr(z, '__class__')",
            "Symbol('z')", "Function('f')(z)", "z = 1", "import os", "__builtins__", "(z).__dict__", "z;z",
            "Max(z,0)\n__import__('os')", "tanh(z) # comment", "z" * 3, "zz", "z**", "(((z", "z" + ")" * 5,
            "\x00z", "z\u200b", "ｚ", "tanh(z, 2)", "monomial(z)", "leaky_relu(0.1, 0.2)", "leaky_relu(b=1)",
            "relu(z)", "S('z')", "N(z)", "I*z", "oo*z", "nan*z", "zoo + z", "x", "0", "1", "", " ", "z/0",
            "log(z)", "sqrt(z)", "tan(z)", "gamma(z)", "zeta(z)", "Integral(z, z)", "Derivative(z**2, z)",
            "Matrix([z])", "Eq(z, 1)", "z > 0", "True", "Piecewise((z, z > 0))", "DiracDelta(z)", "1e400*z",
            "z**(1/3)", "(-1)**z", "z**z", "exp(exp(exp(z)))"]
_JUNK = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
_PRINTABLE = st.text(alphabet=string.printable, max_size=40)


@st.composite
def mutated(draw) -> str:
    """A valid or hostile expression with a few characters inserted, deleted or replaced."""
    s = list(draw(st.sampled_from(_VALID + _HOSTILE)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        pos = draw(st.integers(0, len(s)))
        ch = draw(st.sampled_from(list("z()*+-/_.,'\"=[]{}:;!@#$%^&|<>~`\\ 0123456789eE")) | st.characters())
        if op == "insert":
            s.insert(pos, ch)
        elif s and pos < len(s):
            if op == "delete":
                del s[pos]
            else:
                s[pos] = ch
    return "".join(s)


STRINGS = st.one_of(_PRINTABLE, _JUNK, mutated(), st.sampled_from(_HOSTILE + _VALID),
                    st.tuples(st.sampled_from(_VALID), _PRINTABLE).map("".join))


@budget("strings")
@given(text=STRINGS)
@example(text="__import__('pathlib').Path('PWNED').write_text('x') and z or z")  # issue 12 item 1
@example(text="tan(z)")
@example(text="0")
def test_activation_strings_parse_or_are_refused_without_side_effects(text, tmp_path_factory):
    """Any string given to nnft.activation gives an Activation or an NNFTError, and touches nothing."""
    where = tmp_path_factory.getbasetemp() / "strings"
    where.mkdir(exist_ok=True)
    before = set(os.listdir(where))
    old = os.getcwd()
    os.chdir(where)
    try:
        with _SideEffects.watch() as seen:
            out, err = run_guarded(lambda: nnft.activation(text))
    finally:
        os.chdir(old)
    assert not seen, f"parsing {text!r} had side effects: {seen[:3]}"
    assert set(os.listdir(where)) == before, f"parsing {text!r} created files: {set(os.listdir(where)) - before}"
    if err is None:
        assert isinstance(out, nnft.Activation), f"{text!r} gave {type(out).__name__}, not an Activation"
        assert out.expr.free_symbols == {nnft.activations.z}, f"{text!r} gave σ = {out.expr}"


# Strings whose evaluation would take minutes or gigabytes in C code (a signal cannot interrupt one big
# integer power): each runs in its own interpreter with a wall-clock limit.
_DOS = ["z**9**9**9", "z*factorial(10**7)", "z + 10**10**8", "Max(z, 0)*2**2**40", "z**(10**10**10)"]


@pytest.mark.slow
@pytest.mark.parametrize("text", _DOS)
def test_resource_exhausting_strings_are_refused_quickly(text, tmp_path):
    """Huge-integer expressions are refused (or parsed lazily), not evaluated for minutes."""
    code = ("import sys, nnft\nfrom nnft.errors import NNFTError\ntry:\n    nnft.activation(sys.argv[1])\n"
            "except NNFTError as e:\n    print('refused', type(e).__name__)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(nnft.__file__).resolve().parents[1])}
    try:
        run = subprocess.run([sys.executable, "-c", code, text], capture_output=True, text=True, timeout=60,
                             env=env, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"nnft.activation({text!r}) still running after 60 s")
    assert run.returncode == 0, f"nnft.activation({text!r}) crashed:\n{run.stderr[-2000:]}"


# ----------------------------------------------------------------------------- poles: finite output is not enough


@pytest.mark.parametrize("text", ["tan(z)", "1/(z - 0.5)", "1/z", "sec(z)", "1/(z**2 - 2)", "cot(z) + z"])
def test_activations_with_real_poles_are_refused(text):
    """σ with a pole on the real line has no Gaussian average: a finite K would be silently wrong (issue 12 item 2)."""
    x = np.array([[0.5, -1.0], [1.5, 0.2]])
    out, err = run_guarded(lambda: nnft.MLP(text, depth=2).kernels(x))
    assert err is not None, f"σ = {text} has a real pole but kernels() returned K = {out.K[-1].tolist()}"
