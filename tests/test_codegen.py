"""Code generation: printer traps, joint CSE, real modules without sympy, and the on-disk cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import nnft
from nnft.activations import z
from nnft.codegen import cache
from nnft.codegen.module import FunctionSpec, compile_module, module_source
from nnft.codegen.printers import NumbaPrinter, NumpyPrinter, latex
from nnft.functions import SafeAcos, Sigmoid, Softplus, corr
from nnft.gaussian import Kaa, Kab, Kbb

# --------------------------------------------------------------------------- printers


def test_numpy_printer_avoids_scalar_math_erf():
    """erf prints as the vectorised scipy.special.erf, never math.erf."""
    out = NumpyPrinter().doprint(sp.erf(z))
    assert out == "scipy.special.erf(z)"


def test_numpy_printer_piecewise_is_where_not_select():
    """Piecewise prints as nested numpy.where (no eager numpy.select)."""
    out = NumpyPrinter().doprint(nnft.activation("leaky_relu", a=0.1).expr)
    assert "numpy.where" in out and "select" not in out


def test_numba_printer_piecewise_is_lazy_conditional():
    """The numba printer emits a lazy conditional expression and math functions."""
    out = NumbaPrinter().doprint(sp.Piecewise((sp.exp(z), z < 0), (z, True)))
    assert " if " in out and "else" in out and "math.exp" in out


def test_safe_functions_print_as_runtime_calls():
    """Delicate closed forms print as calls to the hand-written runtime (numpy _rt.x, numba _rt.x_s)."""
    e = SafeAcos(corr(Kab, Kaa, Kbb))
    # the correlation is clipped by _rt.corr, so arccos needs no second clip in numpy
    assert NumpyPrinter().doprint(e) == "numpy.arccos(_rt.corr(K_ab, _rt.geomean(K_aa, K_bb)))"
    assert NumbaPrinter().doprint(e) == "_rt.acos_clip_s(_rt.corr_s(K_ab, _rt.geomean_s(K_aa, K_bb)))"
    assert NumpyPrinter().doprint(SafeAcos(Kab)) == "_rt.acos_clip(K_ab)"
    assert "_rt.sigmoid" in NumpyPrinter().doprint(Sigmoid(z))
    assert "_rt.softplus" in NumpyPrinter().doprint(Softplus(z))


def test_latex_uses_greek_sample_indices():
    """LaTeX names K_aa, K_ab as K_{αα}, K_{αβ} (CONVENTIONS.md)."""
    assert latex(Kab + Kaa) in (r"K_{\alpha\alpha} + K_{\alpha\beta}", r"K_{\alpha\beta} + K_{\alpha\alpha}")


# --------------------------------------------------------------------------- runtime numerics


def test_runtime_guards():
    """Correlation is clipped and 0/0 gives 0; sigmoid/softplus do not overflow."""
    from nnft import runtime as rt

    assert rt.corr(1.0 + 1e-15, 1.0) == 1.0
    assert rt.corr(0.0, 0.0) == 0.0
    assert rt.corr(3.0, np.sqrt(3.0 * 3.0)) == 1.0
    c = rt.corr(np.array([[0.0, 2.0], [-5.0, 1.0]]), np.array([[0.0], [2.0]]))
    np.testing.assert_array_equal(c, [[0.0, 0.0], [-1.0, 0.5]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        assert rt.sigmoid(np.array([-1000.0]))[0] == 0.0
        assert rt.softplus(np.array([1000.0]))[0] == 1000.0
    assert np.isfinite(rt.acos_clip(1 + 1e-15))


# --------------------------------------------------------------------------- modules


def _specs():
    a, b = sp.symbols("a b", real=True)
    shared = sp.sqrt(a**2 + b**2)
    return [FunctionSpec("f", {"u": sp.sin(shared) + shared, "v": sp.cos(shared) * shared}, (a, b))], (a, b)


def test_joint_cse_computes_shared_subexpression_once():
    """Both outputs of one function share one CSE: sqrt(a**2 + b**2) appears once in the source."""
    specs, _ = _specs()
    src = module_source(specs, "numpy")
    assert src.count("numpy.sqrt(") == 1


def test_generated_module_imports_and_runs_without_sympy(tmp_path):
    """A generated module imports and evaluates in a process where importing sympy fails."""
    m = nnft.MLP("relu", depth=2).recursion("ntk").compile("numpy")
    path = Path(m.__file__)
    assert "import sympy" not in path.read_text()
    code = textwrap.dedent(f"""
        import sys, importlib.util
        sys.modules['sympy'] = None  # any import of sympy now raises ImportError
        spec = importlib.util.spec_from_file_location('gen', {str(path)!r})
        mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
        k, t = mod.offdiag(1.0, 0.5, 2.0, 0.7, 0.1, 2.0, 0.1, 2.0)
        print(repr(float(k)), repr(float(t)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    k, t = (float(v) for v in out.stdout.split())
    ref_k, ref_t = m.offdiag(1.0, 0.5, 2.0, 0.7, 0.1, 2.0, 0.1, 2.0)
    assert k == ref_k and t == ref_t


def test_cache_location_follows_environment_variable(tmp_path, monkeypatch):
    """NNFT_CACHE_DIR chooses where generated modules are written."""
    monkeypatch.setenv("NNFT_CACHE_DIR", str(tmp_path / "c"))
    cache.clear_memory_cache()
    specs, _ = _specs()
    mod = compile_module("envtest", specs, "numpy")
    assert Path(mod.__file__).parent == tmp_path / "c"
    u, v = mod.f(np.array([3.0]), np.array([4.0]))
    np.testing.assert_allclose(u, np.sin(5.0) + 5.0)
    cache.clear_memory_cache()


def test_corrupt_cache_entry_is_regenerated(tmp_path, monkeypatch):
    """A truncated or edited cache file fails its checksum and is rewritten, not imported."""
    monkeypatch.setenv("NNFT_CACHE_DIR", str(tmp_path))
    cache.clear_memory_cache()
    specs, _ = _specs()
    mod = compile_module("corrupt", specs, "numpy")
    path = Path(mod.__file__)
    good = path.read_text()
    path.write_text(good.replace("numpy.sin", "numpy.tan"))  # checksum no longer matches
    cache.clear_memory_cache()
    mod2 = compile_module("corrupt", specs, "numpy")
    assert path.read_text() == good
    np.testing.assert_allclose(mod2.f(3.0, 4.0)[0], np.sin(5.0) + 5.0)
    path.write_text(good[: len(good) // 2])  # truncated
    cache.clear_memory_cache()
    compile_module("corrupt", specs, "numpy")
    assert path.read_text() == good
    cache.clear_memory_cache()


_WORKER = """
import sys, numpy as np, nnft
net = nnft.MLP({act!r}, depth=3, C_W=1.5)
K = net.nngp(np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]))
print(repr(float(K[0, 1])))
"""


def test_two_processes_compiling_at_once(tmp_path):
    """Two processes that generate the same module into an empty cache both succeed and agree."""
    env = {**os.environ, "NNFT_CACHE_DIR": str(tmp_path)}
    code = _WORKER.format(act="erf")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert outs[0][0] == outs[1][0]
    assert not list(tmp_path.glob("*.tmp"))


def test_warm_start_reuses_cache(tmp_path):
    """The second process finds the module on disk (same file, no rewrite)."""
    env = {**os.environ, "NNFT_CACHE_DIR": str(tmp_path)}
    code = _WORKER.format(act="relu")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    files = {p: p.stat().st_mtime_ns for p in tmp_path.glob("nnft_generated_*.py")}
    assert files
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("nnft_generated_*.py")} == files


def test_unknown_backend_is_refused():
    """An unknown backend name raises with the list of backends."""
    specs, _ = _specs()
    with pytest.raises(ValueError, match="numpy"):
        module_source(specs, "cuda")


# --------------------------------------------------------------------------- buffered numpy emitter

_EMIT_CASES = ["relu", "erf", "abs", "leaky_relu(0.3)", "sin", "cos", "exp", "linear", "monomial(3)", "step",
               "z*exp(-z**2/2) + cos(2*z)", "2*erf(z/2) - 1/3"]


@pytest.mark.parametrize("act", _EMIT_CASES)
def test_buffered_numpy_matches_plain_sympy_evaluation(act, rng):
    """The buffered (out=) numpy code equals a plain sympy lambdify of the same map, row×col and 1-D."""
    from nnft.functions import unsafe
    from nnft.recursions import one_layer_map

    a = nnft.activation(act)
    m = one_layer_map("nngp" if a.has_distributional_derivative else "ntk", a)
    mod = m.compile("numpy")
    R, C = 5, 4
    kaa = rng.uniform(0.2, 2.0, (R, 1))
    kbb = rng.uniform(0.2, 2.0, (1, C))
    kab = rng.uniform(-0.9, 0.9, (R, C)) * np.sqrt(kaa * kbb)
    kab[0, 0] = np.sqrt(kaa[0, 0] * kbb[0, 0])  # c = 1 exactly
    th = rng.uniform(0.1, 3.0, (R, C))
    params = (0.1, 1.3, 0.2, 0.7)
    names = [s.name for s in m.offdiag_args]
    vals = {"K_aa": kaa, "K_ab": kab, "K_bb": kbb, "Theta_ab": th, "C_b": params[0], "C_W": params[1],
            "lambda_b": params[2], "lambda_W": params[3]}
    got = mod.offdiag(*(vals[n] for n in names))
    for out, expr in zip(got, m.offdiag.values(), strict=True):
        f = sp.lambdify(m.offdiag_args, unsafe(expr), "scipy")
        with np.errstate(invalid="ignore"):
            ref = np.broadcast_to(f(*(vals[n] for n in names)), (R, C))
        ok = np.isfinite(ref)
        np.testing.assert_allclose(np.broadcast_to(out, (R, C))[ok], ref[ok], rtol=1e-12, atol=1e-14)
    # 1-D use (the diagonal path) gives the same numbers as the 2-D entries
    one = mod.offdiag_1d(*(np.ravel(np.broadcast_to(vals[n], (R, C))) if n in ("K_aa", "K_ab", "K_bb", "Theta_ab")
                           else vals[n] for n in names))
    for o1, o2 in zip(one, got, strict=True):
        np.testing.assert_allclose(np.ravel(np.broadcast_to(o1, (R * C,))), np.ravel(np.broadcast_to(o2, (R, C))),
                                   rtol=1e-14)


def test_buffered_numpy_reuses_buffers():
    """The ReLU NTK map needs only a handful of (R, C) buffers for its ~20 operations."""
    from nnft.recursions import one_layer_map

    src = module_source(one_layer_map("ntk", nnft.activation("relu")).function_specs()[:1], "numpy")
    assert src.count("numpy.empty(_shape_entry)") <= 5
    assert src.count(", out=") >= 15


def test_numba_runtime_arccos_arcsin_are_accurate():
    """The vectorisable polynomial arccos/arcsin of the numba runtime agree with 30-digit values to 1e-15."""
    import mpmath as mp

    from nnft.runtime_numba import acos_clip_s, asin_clip_s

    mp.mp.dps = 30
    xs = np.concatenate([np.linspace(-1, 1, 401), 1 - np.logspace(-16, -1, 30), -1 + np.logspace(-16, -1, 30),
                         [0.5, -0.5, 0.5 + 1e-16, 1e-300]])
    for x in xs:
        ra, rs = float(mp.acos(mp.mpf(x))), float(mp.asin(mp.mpf(x)))
        assert abs(acos_clip_s(x) - ra) <= 1e-15 * max(abs(ra), 1e-300) + 1e-300, x
        assert abs(asin_clip_s(x) - rs) <= 1e-15 * abs(rs) + 1e-300, x
    assert acos_clip_s(1.0 + 1e-15) == 0.0 and asin_clip_s(-1.0 - 1e-15) == -np.pi / 2


@pytest.mark.parametrize("expr", ["-z - z**2", "1 - z - z**2", "-z*exp(-z**2) - z**3 + 2", "2 - 3*z",
                                  "-(z**2) / (1 + z**2)", "-1/(2 + z**2) - 1/(3 + z**2)",
                                  "z*(1 - z)*(2 - z)", "exp(-z**2)*(1 - z) - sin(z)*cos(z)"])
def test_buffered_numpy_chains_with_negative_and_reciprocal_terms(expr):
    """Sums whose terms all subtract, and products of reciprocals, evaluate like sympy (buffer aliasing)."""
    a = nnft.activation(expr)
    t = np.linspace(-2.5, 2.5, 11)
    ref = sp.lambdify(z, a.expr, "numpy")(t)
    np.testing.assert_allclose(a(t), ref, rtol=1e-13, atol=1e-14)


def test_extreme_exact_parameters_print_as_finite_code():
    """leaky_relu(1e-300) keeps a = 10⁻³⁰⁰ exact; its closed forms hold 10⁶⁰⁰·5·10⁻⁶⁰¹-type products.

    Printed as Python ints they overflowed (raw OverflowError, found by the property test); combined in
    high precision first, the kernels equal relu's (a → 0) to rounding.
    """
    x = np.array([[1.0, 0.0], [0.6, 0.8], [-0.3, 0.2]])
    tiny, relu = nnft.MLP("leaky_relu(1e-300)", depth=3), nnft.MLP("relu", depth=3)
    np.testing.assert_allclose(tiny.ntk(x), relu.ntk(x), rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(tiny.nngp(x), relu.nngp(x), rtol=1e-14, atol=1e-16)


def test_asin_gap_is_accurate_where_the_ratio_rounds():
    """asin(num/r) from (num, r, gap = r² − num²) agrees with 40-digit arcsin to ~eps, also at |t| → 1, where
    arcsin of the rounded ratio is off by √eps (numpy and numba runtimes)."""
    import mpmath as mp

    from nnft.runtime import asin_gap
    from nnft.runtime_numba import asin_gap_s

    mp.mp.dps = 40
    cases = []
    for r in (1.0, 3.0, 1e8, 1e150):
        for u in (0.0, 1e-30, 1e-18, 1e-12, 1e-3, 0.3, 0.6, 1.0, 1.7, 2.0):  # u = 1 − t (t from 1 down to −1)
            t = mp.mpf(1) - mp.mpf(u)
            num = t * r
            gap = mp.mpf(r) ** 2 - num ** 2
            cases.append((float(num), r, float(gap), float(mp.asin(mp.mpf(float(num)) / r)) if gap == 0 else
                          float(mp.asin(t))))
            cases.append((-float(num), r, float(gap), -cases[-1][3]))
    for num, r, gap, want in cases:
        for got in (asin_gap(num, r, gap), asin_gap_s(num, r, gap)):
            assert abs(got - want) <= 4e-16 * max(abs(want), 1e-300) + 1e-300, (num, r, gap, got, want)
    # the plain ratio loses √eps near 1: the case the gap exists for
    num, r = 1e8 * (1 - 1e-12), 1e8
    assert abs(float(np.arcsin(num / r)) - float(mp.asin(mp.mpf(1) - mp.mpf("1e-12")))) > 1e-13
