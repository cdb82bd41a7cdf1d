"""Turn named sympy expressions into the source of a real Python module (numpy or numba backend).

One :class:`FunctionSpec` is a function of some argument symbols returning a tuple of outputs; all
outputs of a function share one joint common-subexpression elimination (``sympy.cse``), so the
arc-cosine angle of the NNGP map is computed once for K and Θ. Unevaluated Gaussian averages
(:class:`nnft.gaussian.Expectation`) become module-level integrand functions plus a quadrature call
into the runtime (one or two variables: :mod:`nnft.numeric.quadrature`; more: the tensor rule of
:mod:`nnft.numeric.quadrature_nd`). Generated modules import numpy, scipy, numba and ``nnft.runtime`` — never
sympy. numba itself is imported only when the numba backend is used (through
:mod:`nnft.codegen.numba_backend`), so this module and the numpy backend work without it.

Numpy backend: every function is vectorised by broadcasting. Numba backend: a scalar ``njit`` kernel
plus a ``parallel=True`` driver looping over arrays by *kind*: ``"row"`` arguments vary with the first
sample index (1-D, length R), ``"col"`` with the second (1-D, length C), ``"entry"`` with both (2-D
(R, C), or 1-D (R,) when no argument is a column), ``"scalar"`` are numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType

import numpy
import scipy
import sympy as sp

from nnft.activations import z
from nnft.codegen.cache import cached_module
from nnft.codegen.inplace import emit_function
from nnft.codegen.printers import NumbaPrinter, NumpyPrinter
from nnft.gaussian import Expectation

BACKENDS = ("numpy", "numba")


@dataclass
class FunctionSpec:
    """A generated function ``name(*args) -> tuple(outputs.values())``."""

    name: str
    outputs: dict[str, sp.Expr]
    args: tuple[sp.Symbol, ...]
    kinds: dict[str, str] = field(default_factory=dict)

    def kind(self, arg: sp.Symbol) -> str:
        return self.kinds.get(arg.name, "entry")


def _ident(s: sp.Symbol) -> str:
    name = s.name
    if not name.isidentifier():
        raise ValueError(f"argument symbol {name!r} is not a valid Python identifier")
    return name


def _integrand_source(printer: NumpyPrinter, fname: str, expr: sp.Expr, variables: Sequence[sp.Symbol]) -> str:
    vs = ", ".join(_ident(v) for v in variables)
    if not expr.free_symbols & set(variables):
        body = f"numpy.full(numpy.shape({_ident(variables[0])}), float({printer.doprint(expr)}))"
    else:
        body = printer.doprint(expr)
    return f"def {fname}({vs}):\n    with numpy.errstate(all='ignore'):\n        return {body}\n"


def _lift_expectations(spec: FunctionSpec, printer: NumpyPrinter, prefix: str):
    """Replace Expectation nodes by placeholder symbols; return (outputs, pre-lines, helper sources)."""
    nodes: dict[Expectation, sp.Symbol] = {}
    for e in spec.outputs.values():
        for node in sp.preorder_traversal(e):
            if isinstance(node, Expectation) and node not in nodes:
                nodes[node] = sp.Symbol(f"_E{prefix}{len(nodes)}")
    outputs = {k: v.xreplace(nodes) for k, v in spec.outputs.items()}
    helpers: list[str] = []
    pre: list[str] = []
    for node, sym in nodes.items():
        base = sym.name.lstrip("_")
        cov = ", ".join(printer.doprint(c) for c in node.cov)
        kinks = node.kinks()
        if len(node.variables) == 1:
            helpers.append(_integrand_source(printer, f"_f_{base}", node.integrand.subs(node.variables[0], z), [z]))
            pre.append(f"{sym.name} = _rt.gauss1(_f_{base}, {cov}, {kinks[0]!r})")
            continue
        if len(node.variables) > 2:  # n-variable tensor quadrature (nnft.numeric.quadrature_nd)
            helpers.append(_integrand_source(printer, f"_f_{base}", node.integrand, list(node.variables)))
            pre.append(f"{sym.name} = _rt.gauss_nd_upper(_f_{base}, {len(node.variables)}, {cov})")
            continue
        sep = node.separable()
        if sep is not None:
            helpers.append(_integrand_source(printer, f"_fa_{base}", sep[0], [z]))
            helpers.append(_integrand_source(printer, f"_fb_{base}", sep[1], [z]))
            pre.append(f"{sym.name} = _rt.gauss2_product(_fa_{base}, _fb_{base}, {cov}, {kinks[0]!r}, {kinks[1]!r})")
        else:
            helpers.append(_integrand_source(printer, f"_f_{base}", node.integrand, list(node.variables)))
            pre.append(f"{sym.name} = _rt.gauss2(_f_{base}, {cov}, {kinks[0]!r}, {kinks[1]!r})")
    return outputs, pre, helpers


def _cse(outputs: dict[str, sp.Expr]):
    repl, reduced = sp.cse(list(outputs.values()), symbols=sp.numbered_symbols("_x"), order="none")
    return repl, reduced


def _numpy_function(spec: FunctionSpec, index: int) -> tuple[str, list[str]]:
    """A vectorised numpy function computed through reused buffers (:mod:`nnft.codegen.inplace`)."""
    printer = NumpyPrinter()
    outputs, pre, helpers = _lift_expectations(spec, printer, f"{index}_")
    pre_kinds = {}
    for line in pre:
        sym = sp.Symbol(line.split(" = ")[0])
        pre_kinds[sym] = "entry"
    names = ", ".join(repr(k) for k in outputs)
    src = emit_function(spec.name, spec.args, spec.kinds, list(outputs.values()), pre=pre, pre_kinds=pre_kinds,
                        docstring=f"Outputs ({names}); generated, see the module docstring.")
    src += f"\n\n{spec.name}_1d = {spec.name}\n"
    return src, helpers


def _numba_function(spec: FunctionSpec) -> str:
    printer = NumbaPrinter()
    repl, reduced = _cse(spec.outputs)
    args = [_ident(a) for a in spec.args]
    kinds = {a: spec.kind(s) for a, s in zip(args, spec.args, strict=True)}
    for a, k in kinds.items():
        if k not in ("row", "col", "entry", "scalar"):
            raise ValueError(f"argument {a}: unknown kind {k!r}")
    two_d = any(k == "col" for k in kinds.values())
    kern = ["@numba.njit(cache=True, nogil=True, inline='always')", f"def _k_{spec.name}({', '.join(args)}):"]
    kern += [f"    {s.name} = {printer.doprint(e)}" for s, e in repl]
    kern.append(f"    return ({', '.join('float(' + printer.doprint(e) + ')' for e in reduced)},)")
    n_out = len(reduced)
    entry = [a for a, k in kinds.items() if k == "entry"]
    rows = [a for a, k in kinds.items() if k == "row"]
    cols = [a for a, k in kinds.items() if k == "col"]
    outs = [f"o{k}" for k in range(n_out)]
    # the 2-D driver writes into caller-provided outputs: fresh output pages cost more than the arithmetic
    drv = ["@numba.njit(cache=True, parallel=True, nogil=True)",
           f"def _d_{spec.name}({', '.join(args + outs) if two_d else ', '.join(args)}):"]
    if two_d:
        drv.append(f"    R = {outs[0]}.shape[0]")
        drv.append(f"    C = {outs[0]}.shape[1]")
        drv.append("    for i in numba.prange(R):")
        drv.append("        for j in range(C):")
        call = []
        for a in args:
            call.append({"row": f"{a}[i]", "col": f"{a}[j]", "entry": f"{a}[i, j]", "scalar": a}[kinds[a]])
        drv.append(f"            t = _k_{spec.name}({', '.join(call)})")
        drv += [f"            o{k}[i, j] = t[{k}]" for k in range(n_out)]
    else:
        ref = (entry + rows)[0] if (entry + rows) else None
        drv.append(f"    R = {ref}.shape[0]" if ref else "    R = 1")
        drv += [f"    o{k} = numpy.empty(R)" for k in range(n_out)]
        drv.append("    for i in numba.prange(R):")
        call = [a if kinds[a] == "scalar" else f"{a}[i]" for a in args]
        drv.append(f"        t = _k_{spec.name}({', '.join(call)})")
        drv += [f"        o{k}[i] = t[{k}]" for k in range(n_out)]
    drv.append(f"    return ({', '.join(f'o{k}' for k in range(n_out))},)")
    # a 1-D driver over the same scalar kernel (every array argument indexed by one sample index):
    # used to evaluate an off-diagonal map on the diagonal with bit-identical arithmetic
    d1 = ["@numba.njit(cache=True, parallel=True, nogil=True)", f"def _d1_{spec.name}({', '.join(args)}):"]
    arr = [a for a in args if kinds[a] != "scalar"]
    d1.append(f"    R = {arr[0]}.shape[0]" if arr else "    R = 1")
    d1 += [f"    o{k} = numpy.empty(R)" for k in range(n_out)]
    d1.append("    for i in numba.prange(R):")
    d1.append(f"        t = _k_{spec.name}({', '.join(a if kinds[a] == 'scalar' else f'{a}[i]' for a in args)})")
    d1 += [f"        o{k}[i] = t[{k}]" for k in range(n_out)]
    d1.append(f"    return ({', '.join(f'o{k}' for k in range(n_out))},)")
    drv = drv + [""] + [""] + d1
    conv = []
    for a in args:
        if kinds[a] == "scalar":
            conv.append(f"float({a})")
        else:
            conv.append(f"numpy.ascontiguousarray({a}, dtype=numpy.float64)")
    conv1 = [c if kinds[a] == "scalar" else f"numpy.ascontiguousarray(numpy.ravel({a}), dtype=numpy.float64)"
             for a, c in zip(args, conv, strict=True)]
    if two_d:
        r = f"numpy.shape({entry[0]})[0]" if entry else f"numpy.shape({rows[0]})[0]"
        c = f"numpy.shape({entry[0]})[1]" if entry else f"numpy.shape({cols[0]})[0]"
        body = ["    if out is None:",
                f"        out = tuple(numpy.empty(({r}, {c})) for _ in range({n_out}))",
                f"    _d_{spec.name}({', '.join(conv)}, *out)",
                "    return tuple(out)"]
    else:
        body = [f"    return _d_{spec.name}({', '.join(conv)})"]
    wrapper = [
        f"def {spec.name}({', '.join(args)}, out=None):",
        f'    """Outputs {tuple(spec.outputs)}; numba driver over {"rows x columns" if two_d else "entries"}'
        f' (``out``: optional preallocated output arrays, reused by the caller)."""',
        *body,
        "",
        "",
        f"def {spec.name}_1d({', '.join(args)}):",
        f'    """Outputs {tuple(spec.outputs)} elementwise over 1-D arrays (same scalar kernel)."""',
        f"    return _d1_{spec.name}({', '.join(conv1)})",
    ]
    return "\n".join(kern) + "\n\n\n" + "\n".join(drv) + "\n\n\n" + "\n".join(wrapper) + "\n"


_EXACT = 2**53


def _tame_constants(spec: FunctionSpec) -> FunctionSpec:
    """Exact rationals beyond float precision become 40-digit Floats and their products are combined.

    A parameter such as a = 1e-300 (kept as the exact rational 10⁻³⁰⁰) gives closed forms with terms like
    ``(10⁶⁰⁰ + …)·5·10⁻⁶⁰¹``, whose pieces overflow float64 although the product is 0.5; expanding with
    high-precision Float coefficients combines them before printing. Only touched when such constants occur.
    """
    def big(e: sp.Expr) -> dict:
        return {r: sp.Float(r, 40) for r in e.atoms(sp.Rational) if max(abs(r.p), abs(r.q)) > _EXACT}

    if not any(big(e) for e in spec.outputs.values()):
        return spec
    outputs = {k: sp.expand(e.xreplace(big(e))) if big(e) else e for k, e in spec.outputs.items()}
    return FunctionSpec(spec.name, outputs, spec.args, dict(spec.kinds))


def module_source(functions: Sequence[FunctionSpec], backend: str = "numpy", header: str = "") -> str:
    """Source text of a module defining ``functions`` for ``backend`` ("numpy" or "numba")."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    versions = f"sympy {sp.__version__}, numpy {numpy.__version__}, scipy {scipy.__version__}"
    if backend == "numba":
        from nnft.codegen.numba_backend import numba_version

        versions += f", numba {numba_version()}"
    head = header or (
        '"""Generated by nnft.codegen.module: do not edit; it is regenerated on demand from the symbolic '
        f'derivation.\n\n{versions}.\n"""\n'
    )
    functions = [_tame_constants(spec) for spec in functions]
    body: list[str] = []
    helpers: list[str] = []
    imports = ["import math", "", "import numpy", "import scipy.special"]
    if backend == "numpy":
        imports += ["", "from nnft import runtime as _rt"]
        for i, spec in enumerate(functions):
            src, h = _numpy_function(spec, i)
            body.append(src)
            helpers += h
    else:
        imports = ["import math", "", "import numba", "import numpy", "", "from nnft import runtime_numba as _rt"]
        for spec in functions:
            body.append(_numba_function(spec))
    parts = [head, "\n".join(imports), "", "", *[h + "\n" for h in helpers], *[b + "\n" for b in body]]
    text = "\n".join(parts).rstrip() + "\n"
    return text.replace("\n\n\n\n\n", "\n\n\n")


def compile_module(name: str, functions: Sequence[FunctionSpec], backend: str = "numpy",
                   key: str | None = None) -> ModuleType:
    """Import (generating and caching on disk if needed) the module of ``functions``.

    ``key`` identifies the symbolic input (e.g. the activation's ``srepr`` and the map name) so that a
    warm start skips the symbolic work; when ``None`` the printed source itself is the key.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    on_import = None
    parts: tuple[str, ...] = (backend,)
    if backend == "numba":
        from nnft.codegen.numba_backend import guard_disk_cache, numba_version

        parts += (f"numba={numba_version()}",)  # raises a clear ImportError when numba is missing
        on_import = guard_disk_cache
    if key is None:
        src = module_source(functions, backend)
        return cached_module(name, (*parts, src), lambda: src, on_import=on_import)
    return cached_module(name, (*parts, key), lambda: module_source(functions, backend), on_import=on_import)


def compile_function(outputs: dict[str, sp.Expr], args: tuple[sp.Symbol, ...], name: str = "f",
                     backend: str = "numpy") -> ModuleType:
    """Compile one vectorised function named after each output... convenience for small expressions.

    Returns the module; each output ``k`` is also exposed as a one-output function ``module.k``.
    """
    specs = [FunctionSpec(k, {k: v}, args) for k, v in outputs.items()]
    mod = compile_module(_safe_name(name), specs, backend)
    return _Unpacked(mod, list(outputs))


class _Unpacked:
    """Expose one-output generated functions as plain callables returning an array."""

    def __init__(self, mod: ModuleType, names: list[str]) -> None:
        self.module = mod
        for n in names:
            fn = getattr(mod, n)
            setattr(self, n, _first(fn))


def _first(fn):
    def call(*a):
        out = fn(*a)[0]
        shape = numpy.broadcast_shapes(*(numpy.shape(x) for x in a)) if a else ()
        return numpy.broadcast_to(numpy.asarray(out, dtype=numpy.float64), shape).copy()

    call.__doc__ = fn.__doc__
    return call


def _safe_name(name: str) -> str:
    out = "".join(ch if ch.isalnum() else "_" for ch in name)
    return out.strip("_") or "f"


__all__ = ["BACKENDS", "FunctionSpec", "compile_function", "compile_module", "module_source"]
