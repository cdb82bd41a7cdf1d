"""One-way imports: an AST scan of ``src/nnft`` fails when an import runs against the layering.

The intended layering, lowest first (a module may import its own layer and the layers below it):

- ``leaf``: :mod:`nnft.errors` (imports nothing from nnft);
- ``numeric``: ``nnft.numeric.*``, the runtimes the generated modules call (``nnft.runtime``,
  ``nnft.runtime_numba``) and :mod:`nnft.cumulants` — numpy only: no sympy, nothing symbolic;
- ``symbolic_leaf``: sympy definitions that code generation prints (:mod:`nnft.functions`, and the
  coming ``nnft.symbols``);
- ``codegen``: ``nnft.codegen.*`` (prints symbolic input it is handed; imports no derivation module);
- ``symbolic``: the derivations (:mod:`nnft.activations`, :mod:`nnft.gaussian`, ``nnft.recursions.*``);
- ``api``: the user-facing layer (the package ``__init__``, :mod:`nnft.network`, :mod:`nnft.montecarlo`,
  the CLI, :mod:`nnft.testing`), which hands compiled plans to ``numeric``.

So symbolic → codegen → numeric. The layer rule applies to module-level imports (those that run at
import time, including ``try:`` and class bodies); function-local (lazy) imports are reported beside
them but allowed, and ``if TYPE_CHECKING:`` imports are ignored. Two rules apply to every import,
lazy or not: numba is imported only by the numba backend modules, and the runtimes never import sympy
or a symbolic module (generated modules run without sympy; checked on generated sources too).
Dynamic imports (``importlib.import_module`` in the package ``__init__``) are not scanned.

Today's layering is not clean. :data:`ALLOWLIST` names each known violation and the issue-13 item that
will remove it; the test fails on any violation not listed AND on a listed one that has gone (remove it
from the list in the same change), so the list stays honest.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "nnft"

RANK = {"leaf": 0, "numeric": 1, "symbolic_leaf": 2, "codegen": 3, "symbolic": 4, "api": 5}
NUMBA_MODULES = {"nnft.runtime_numba", "nnft.codegen.numba_backend"}
RUNTIME_MODULES = {"nnft.runtime", "nnft.runtime_numba"}
SYMBOLIC_LIBRARIES = ("sympy", "mpmath")

# Known violations of the layer rule as of issue 13: (importer, imported) -> the issue-13 item removing it.
ALLOWLIST: dict[tuple[str, str], str] = {
    # codegen reaches up into the derivations
    ("nnft.codegen.module", "nnft.activations"):
        "one-way imports: a leaf `symbols` module (the symbol z moves there)",
    ("nnft.codegen.module", "nnft.gaussian"):
        "one-way imports: expectation lowering as a hook on the node (codegen stops naming Expectation)",
    ("nnft.codegen.book", "nnft.activations"):
        "one-way imports: codegen/book → recursions (the book moves above the derivations or takes maps)",
    ("nnft.codegen.book", "nnft.recursions"):
        "one-way imports: codegen/book → recursions (the book moves above the derivations or takes maps)",
    # numeric reaches up into the user-facing layer (which imports sympy through nnft.activations)
    ("nnft.numeric.kernels", "nnft.network"):
        "one map evaluator in numeric/ + 'numeric imports nothing symbolic (the user-facing layer hands it "
        "compiled plans)'",
    ("nnft.numeric.montecarlo", "nnft.network"):
        "one-way imports: the Monte Carlo engine as a numeric/montecarlo/ subpackage fed compiled plans",
    ("nnft.numeric.mc_result", "nnft.network"):
        "one-way imports: the Monte Carlo engine as a numeric/montecarlo/ subpackage fed compiled plans",
}


@dataclass(frozen=True)
class Import:
    """One import statement: who imports what, where, and whether it runs at module import time."""

    importer: str
    imported: str
    line: int
    lazy: bool

    def __str__(self) -> str:
        where = "lazy" if self.lazy else "module-level"
        return f"{self.importer}:{self.line} imports {self.imported} ({where})"


def layer(module: str) -> str:
    """The layer of an nnft module (a new top-level module must be placed here explicitly)."""
    if module == "nnft.errors":
        return "leaf"
    if module.startswith("nnft.numeric") or module in ("nnft.runtime", "nnft.runtime_numba", "nnft.cumulants"):
        return "numeric"
    if module in ("nnft.functions", "nnft.symbols", "nnft.parsing"):
        return "symbolic_leaf"
    if module.startswith("nnft.codegen"):
        return "codegen"
    if module in ("nnft.activations", "nnft.admissibility", "nnft.gaussian") or module.startswith(
            ("nnft.recursions", "nnft.criticality", "nnft.eft")):
        return "symbolic"
    if module in ("nnft", "nnft.network", "nnft.montecarlo", "nnft.cli", "nnft.mc_cli", "nnft.cli_io", "nnft.testing",
                  "nnft.finite_width", "nnft.ntk_finite_width", "nnft.effective_action", "nnft.plot", "nnft.sklearn") \
            or module.startswith(("nnft.cli.", "nnft.report", "nnft.inference", "nnft.proportional",
                                   "nnft.feature_learning")):
        return "api"
    raise AssertionError(f"{module} is in no layer: add it to layer() in tests/test_layering.py")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(name: str) -> bool:
    return (SRC / Path(*name.split(".")) / "__init__.py").exists()


def _resolve(importer: str, node: ast.ImportFrom) -> list[str]:
    """The modules an ``import from`` loads: ``from nnft import runtime`` is the module nnft.runtime."""
    base = node.module or ""
    if node.level:
        pkg = importer.split(".") if _is_package(importer) else importer.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join([*pkg, base] if base else pkg)
    out = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        is_mod = (SRC / Path(*sub.split("."))).with_suffix(".py").exists() or _is_package(sub)
        out.append(sub if base.startswith("nnft") and is_mod else base)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def scan_source(importer: str, source: str) -> list[Import]:
    """Every import in ``source`` with its line and whether it is function-local (lazy)."""
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.orelse:
                    visit_stmt(sub, lazy)
                continue
            visit_stmt(child, lazy)

    def visit_stmt(child: ast.AST, lazy: bool) -> None:
        if isinstance(child, ast.Import):
            found.extend(Import(importer, a.name, child.lineno, lazy) for a in child.names)
        elif isinstance(child, ast.ImportFrom):
            if child.module != "__future__":
                found.extend(Import(importer, m, child.lineno, lazy) for m in _resolve(importer, child))
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            visit(child, True)
        else:
            visit(child, lazy)

    visit(ast.parse(source), False)
    return found


def scan_package() -> list[Import]:
    out: list[Import] = []
    for path in sorted(PKG.rglob("*.py")):
        out += scan_source(module_name(path), path.read_text())
    return out


def _top(imported: str) -> str:
    return imported.split(".")[0]


def _nnft_target(imported: str) -> str | None:
    """The nnft module an import names (``nnft.recursions.base``), or None for third-party ones."""
    return imported if _top(imported) == "nnft" else None


def layer_violations(imports: list[Import], lazy: bool = False) -> dict[tuple[str, str], list[Import]]:
    """Module-level (or, with ``lazy``, function-local) imports going up the layers, or sympy into numeric."""
    bad: dict[tuple[str, str], list[Import]] = {}
    for imp in imports:
        if imp.lazy != lazy:
            continue
        src = RANK[layer(imp.importer)]
        target = _nnft_target(imp.imported)
        if target is not None and target != "nnft":
            wrong = RANK[layer(target)] > src
            key = (imp.importer, _package_of(target))
        else:
            wrong = src <= RANK["numeric"] and _top(imp.imported) in SYMBOLIC_LIBRARIES
            key = (imp.importer, _top(imp.imported))
        if wrong:
            bad.setdefault(key, []).append(imp)
    return bad


def _package_of(target: str) -> str:
    """Report ``nnft.recursions.x`` as ``nnft.recursions`` (allowlist entries name packages, not files)."""
    return "nnft.recursions" if target.startswith("nnft.recursions") else target


def always_violations(imports: list[Import]) -> list[Import]:
    """Imports wrong even when lazy: numba outside the numba backend, sympy/symbolic code in the runtimes."""
    bad = []
    for imp in imports:
        if _top(imp.imported) == "numba" and imp.importer not in NUMBA_MODULES:
            bad.append(imp)
        if imp.importer in RUNTIME_MODULES:
            target = _nnft_target(imp.imported)
            if _top(imp.imported) in SYMBOLIC_LIBRARIES or (target and RANK[layer(target)] > RANK["numeric"]):
                bad.append(imp)
    return bad


# --------------------------------------------------------------------------- the rules on src/nnft


def test_scanner_sees_the_package():
    """Sanity: the scan finds imports, tells lazy from module-level and knows every module's layer."""
    imports = scan_package()
    assert len({i.importer for i in imports}) >= 30
    assert any(i.lazy for i in imports) and any(not i.lazy for i in imports)
    assert any(i.importer == "nnft.recursions.base" and i.imported == "nnft.codegen.module" and not i.lazy
               for i in imports)
    assert any(i.importer == "nnft.network" and i.imported == "nnft.numeric.kernels" and i.lazy for i in imports)


def test_no_new_layer_violations():
    """No module-level import goes up the layering except the allowlisted ones."""
    found = layer_violations(scan_package())
    new = {k: v for k, v in found.items() if k not in ALLOWLIST}
    assert not new, "imports against the layering (symbolic → codegen → numeric):\n" + "\n".join(
        str(i) for v in new.values() for i in v)


def test_allowlist_is_honest():
    """Every allowlisted violation still exists: when one is fixed, delete its ALLOWLIST entry too."""
    found = layer_violations(scan_package())
    gone = [f"{k}: {why}" for k, why in ALLOWLIST.items() if k not in found]
    assert not gone, "fixed violations still in ALLOWLIST (remove them):\n" + "\n".join(gone)


def test_numba_only_in_numba_backend_and_runtimes_sympy_free():
    """numba is imported (even lazily) only by the numba backend; the runtimes never import sympy."""
    bad = always_violations(scan_package())
    assert not bad, "\n".join(map(str, bad))


def test_lazy_imports_are_reported():
    """Function-local imports against the layering are listed (allowed: they run only when called)."""
    lazy = layer_violations(scan_package(), lazy=True)
    report = "\n".join(str(i) for v in lazy.values() for i in v)
    print("lazy imports against the layering (allowed; see pytest -s):\n" + report)
    # informative, not a failure; but the scan must see today's: numeric/mc_activations derives σ lazily
    assert ("nnft.numeric.mc_activations", "nnft.activations") in lazy
    assert all(i.lazy for v in lazy.values() for i in v)


@pytest.mark.parametrize("backend, act", [("numpy", "tanh"), ("numpy", "relu"), ("numba", "relu")])
def test_generated_modules_import_no_sympy(backend, act):
    """Generated module sources import numpy/scipy/numba and the nnft runtimes only — never sympy."""
    from nnft.codegen.module import module_source
    from nnft.recursions import one_layer_map

    if backend == "numba":
        pytest.importorskip("numba")
    specs = one_layer_map("ntk", act).function_specs()
    imports = scan_source("nnft_generated", module_source(specs, backend))
    assert imports
    for imp in imports:
        assert _top(imp.imported) in ("math", "numpy", "scipy", "numba", "nnft"), imp
        if _top(imp.imported) == "nnft":
            assert imp.imported in RUNTIME_MODULES, imp


# --------------------------------------------------------------------------- the scanner can fail


def test_scanner_flags_constructed_violations():
    """Hand-written sources: an upward module-level import fails, the same import made lazy does not."""
    src = textwrap.dedent("""
        import sympy
        from nnft.network import MLP
        from nnft import gaussian
        try:
            import numba
        except ImportError:
            numba = None

        class Holder:
            from nnft.recursions import base

        def later():
            from nnft.activations import z
            import numba.core
            return z
    """)
    imports = scan_source("nnft.numeric.fake", src)
    bad = layer_violations(imports)
    assert set(bad) == {("nnft.numeric.fake", "sympy"), ("nnft.numeric.fake", "nnft.network"),
                        ("nnft.numeric.fake", "nnft.gaussian"), ("nnft.numeric.fake", "nnft.recursions")}
    numba = always_violations(imports)
    assert [(i.line, i.lazy) for i in numba] == [(6, False), (15, True)]
    lazy = [i for i in imports if i.lazy]
    assert [i.imported for i in lazy] == ["nnft.activations", "numba.core"]
    # TYPE_CHECKING imports never run and are ignored; relative imports resolve inside the package
    typed = scan_source("nnft.numeric.fake", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                             "    import sympy\nfrom . import quadrature\nfrom .. import errors\n")
    assert [i.imported for i in typed] == ["typing", "nnft.numeric.quadrature", "nnft.errors"]
    with pytest.raises(AssertionError, match="no layer"):
        layer("nnft.brand_new_module")


# --------------------------------------------------------------------------- without numba installed

_NO_NUMBA = """
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == "numba" or name.startswith("numba."):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, Blocker())
for mod in [m for m in sys.modules if m == "numba" or m.startswith("numba.")]:
    del sys.modules[mod]

import numpy as np
import nnft, nnft.recursions, nnft.gaussian

x = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
net = nnft.MLP("relu", depth=3, C_W=2.0)
K = net.nngp(x)
print(repr(float(K[0, 1])))
try:
    net.kernels(x, backend="numba")
except ImportError as exc:
    print("ImportError:", exc)
else:
    print("no error")
print("numba loaded:", "numba" in sys.modules)
"""


def test_numpy_backend_works_without_numba(tmp_path):
    """With numba unimportable, nnft and the numpy backend work; backend='numba' says `pip install numba`."""
    import os

    import numpy as np

    import nnft

    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", _NO_NUMBA], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    x = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    assert float(lines[0]) == float(nnft.MLP("relu", depth=3, C_W=2.0).nngp(x)[0, 1])
    assert lines[1].startswith("ImportError:") and "pip install numba" in lines[1]
    assert lines[2] == "numba loaded: False"
