"""The generated-code cache under hostile conditions: unwritable or corrupt, shared, and after source changes."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from nnft.codegen import cache
from nnft.codegen.module import FunctionSpec, compile_module
from nnft.errors import CacheWarning


def _specs() -> list[FunctionSpec]:
    a, b = sp.symbols("a b", real=True)
    r = sp.sqrt(a**2 + b**2)
    return [FunctionSpec("f", {"u": sp.sin(r) + r, "v": sp.cos(r) * r}, (a, b))]


def _check(mod) -> None:
    u, v = mod.f(np.array([3.0]), np.array([4.0]))
    np.testing.assert_allclose(u, np.sin(5.0) + 5.0, rtol=1e-15)
    np.testing.assert_allclose(v, np.cos(5.0) * 5.0, rtol=1e-15)


@pytest.fixture
def fresh(monkeypatch):
    """No fallback directory and no imported generated modules carried over from other tests."""
    monkeypatch.setattr(cache, "_FALLBACK", {}, raising=False)
    cache.clear_memory_cache()
    yield
    cache.clear_memory_cache()


def _make_unwritable(monkeypatch, folder: Path) -> None:
    """Make ``folder`` read-only; as root (who ignores mode bits) also refuse temporary files in it."""
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = tempfile.mkstemp

        def mkstemp(*args, **kwargs):
            if Path(kwargs.get("dir", "")).resolve() == folder.resolve():
                raise PermissionError(13, "Permission denied", str(folder))
            return real(*args, **kwargs)

        monkeypatch.setattr(cache.tempfile, "mkstemp", mkstemp)


# --------------------------------------------------------------------------- item 7a: unwritable directory


def test_read_only_cache_dir_falls_back_to_temporary_dir(tmp_path, monkeypatch, fresh):
    """A cold cache on a read-only directory warns (naming NNFT_CACHE_DIR) and works from a temporary one."""
    ro = tmp_path / "ro"
    ro.mkdir()
    _make_unwritable(monkeypatch, ro)
    monkeypatch.setenv("NNFT_CACHE_DIR", str(ro))
    try:
        with pytest.warns(CacheWarning, match="NNFT_CACHE_DIR") as record:
            mod = compile_module("rotest", _specs(), "numpy")
        assert str(ro) in str(record[0].message)
        _check(mod)
        assert Path(mod.__file__).parent != ro
        assert not list(ro.iterdir())
        # later modules go straight to the same temporary directory, without a second warning
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            mod2 = compile_module("rotest2", _specs(), "numpy")
        assert Path(mod2.__file__).parent == Path(mod.__file__).parent
    finally:
        ro.chmod(0o755)


def test_cache_dir_that_cannot_be_created_falls_back(tmp_path, monkeypatch, fresh):
    """A cache directory below a regular file cannot be created: warning, temporary directory, right numbers."""
    (tmp_path / "afile").write_text("in the way")
    monkeypatch.setenv("NNFT_CACHE_DIR", str(tmp_path / "afile" / "cache"))
    with pytest.warns(CacheWarning, match="NNFT_CACHE_DIR"):
        mod = compile_module("mkdirtest", _specs(), "numpy")
    _check(mod)
    assert tmp_path not in Path(mod.__file__).parents


def test_read_only_cache_dir_still_serves_its_entries(tmp_path, monkeypatch, fresh):
    """A warm cache made read-only (e.g. shipped in an image) is used as is: no warning, no rewrite."""
    monkeypatch.setenv("NNFT_CACHE_DIR", str(tmp_path))
    path = Path(compile_module("rowarm", _specs(), "numpy").__file__)
    cache.clear_memory_cache()
    sys.modules.pop(path.stem, None)
    _make_unwritable(monkeypatch, tmp_path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            mod = compile_module("rowarm", _specs(), "numpy")
        assert Path(mod.__file__) == path
        _check(mod)
        # a module not yet in the read-only cache still falls back (with the warning)
        with pytest.warns(CacheWarning):
            _check(compile_module("rowarm_new", _specs(), "numpy"))
    finally:
        tmp_path.chmod(0o755)


# --------------------------------------------------------------------------- item 7c: permissions


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775),
                                                        (0o077, 0o600, 0o700)])
def test_cache_entries_honour_umask(tmp_path, monkeypatch, fresh, umask, file_mode, dir_mode):
    """Entries are 0666 & ~umask and created directories 0777 & ~umask, so a shared cache is readable."""
    folder = tmp_path / "shared" / "nnft"
    monkeypatch.setenv("NNFT_CACHE_DIR", str(folder))
    old = os.umask(umask)
    try:
        mod = compile_module(f"mode{umask:o}", _specs(), "numpy")
    finally:
        os.umask(old)
    assert stat.S_IMODE(Path(mod.__file__).stat().st_mode) == file_mode
    assert stat.S_IMODE(folder.stat().st_mode) == dir_mode
    assert stat.S_IMODE(folder.parent.stat().st_mode) == dir_mode


# --------------------------------------------------------------------------- item 7b: corrupt numba cache


def _numba_files(folder: Path, modname: str) -> list[Path]:
    return sorted(p for p in (folder / "__pycache__").glob(f"{modname}.*") if p.suffix in (".nbi", ".nbc"))


def _reimport_numba(name: str):
    """Import the numba-backend module afresh (new dispatchers, so numba reads its disk cache again)."""
    cache.clear_memory_cache()
    for key in [k for k in sys.modules if k.startswith(f"nnft_generated_{name}_")]:
        del sys.modules[key]
    return compile_module(name, _specs(), "numba")


@pytest.fixture(scope="module")
def warm_numba_cache(tmp_path_factory):
    """A cache directory holding one numba-backend module and numba's files for it (compiled once)."""
    pytest.importorskip("numba")
    folder = tmp_path_factory.mktemp("numba-warm")
    old = os.environ.get("NNFT_CACHE_DIR")
    os.environ["NNFT_CACHE_DIR"] = str(folder)
    try:
        cache.clear_memory_cache()
        mod = compile_module("nbcorrupt", _specs(), "numba")
        _check(mod)
    finally:
        cache.clear_memory_cache()
        if old is None:
            del os.environ["NNFT_CACHE_DIR"]
        else:
            os.environ["NNFT_CACHE_DIR"] = old
    return folder, mod.__name__


@pytest.mark.parametrize("how", ["truncate", "random", "empty"])
def test_corrupt_numba_cache_is_rebuilt(tmp_path, monkeypatch, fresh, warm_numba_cache, how):
    """Truncated, random or empty .nbi/.nbc files: a CacheWarning, a recompile, right numbers, healthy files."""
    warm, modname = warm_numba_cache
    folder = tmp_path / "c"
    shutil.copytree(warm, folder)  # copy2 keeps the .py mtime that numba's index is stamped with
    monkeypatch.setenv("NNFT_CACHE_DIR", str(folder))
    files = _numba_files(folder, modname)
    assert {p.suffix for p in files} == {".nbi", ".nbc"}
    rng = np.random.default_rng(7)
    for p in files:
        data = p.read_bytes()
        p.write_bytes({"truncate": data[: len(data) // 3], "random": rng.bytes(len(data)), "empty": b""}[how])
    with pytest.warns(CacheWarning, match="numba's disk cache"):
        _check(_reimport_numba("nbcorrupt"))
    # the rebuilt files load cleanly in the next fresh import
    assert {p.suffix for p in _numba_files(folder, modname)} == {".nbi", ".nbc"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check(_reimport_numba("nbcorrupt"))


def test_intact_numba_cache_is_loaded_silently(tmp_path, monkeypatch, fresh, warm_numba_cache):
    """The guard changes nothing for a healthy cache: a fresh import loads numba's files without a warning."""
    warm, modname = warm_numba_cache
    shutil.copytree(warm, tmp_path / "c")
    monkeypatch.setenv("NNFT_CACHE_DIR", str(tmp_path / "c"))
    before = {p: p.stat().st_mtime_ns for p in _numba_files(tmp_path / "c", modname)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check(_reimport_numba("nbcorrupt"))
    assert {p: p.stat().st_mtime_ns for p in _numba_files(tmp_path / "c", modname)} == before


_NUMBA_KERNELS = """
import warnings, numpy as np, nnft
warnings.simplefilter("always")
x = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-0.3, 2.0]])
net = nnft.MLP("relu", depth=3, C_W=2.0)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    r = net.kernels(x, backend="numba")
ref = net.kernels(x, backend="numpy")
np.testing.assert_allclose(r.K, ref.K, rtol=1e-13, atol=0)
np.testing.assert_allclose(r.Theta, ref.Theta, rtol=1e-13, atol=0)
print(sum(type(w.message).__name__ == "CacheWarning" for w in caught))
"""


@pytest.mark.slow
def test_corrupt_numba_cache_of_mlp_kernels(tmp_path):
    """MLP kernels with the numba backend survive corrupted numba cache files and agree with numpy."""
    pytest.importorskip("numba")
    env = {**os.environ, "NNFT_CACHE_DIR": str(tmp_path)}

    def run() -> int:
        out = subprocess.run([sys.executable, "-c", _NUMBA_KERNELS], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]
        return int(out.stdout.split()[-1])

    assert run() == 0
    files = sorted((tmp_path / "__pycache__").glob("*.nb[ic]"))
    assert files
    rng = np.random.default_rng(3)
    for i, p in enumerate(files):
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2] if i % 2 else rng.bytes(max(len(data), 16)))
    assert run() >= 1
    assert run() == 0


# --------------------------------------------------------------------------- issue 13: package fingerprint


def _copy_package(tmp_path: Path) -> Path:
    dst = tmp_path / "nnft"
    shutil.copytree(cache.PACKAGE_ROOT, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dst


def test_fingerprint_covers_every_module(tmp_path):
    """Adding a module, editing any module (not just the derivation sources) or renaming one changes the key."""
    root = _copy_package(tmp_path)
    base = cache.source_fingerprint(root)
    assert base == cache.source_fingerprint(cache.PACKAGE_ROOT)  # independent of where the package lives
    new = root / "numeric" / "brand_new.py"
    new.write_text("X = 1\n")
    added = cache.source_fingerprint(root)
    assert added != base
    new.write_text("X = 2\n")
    assert cache.source_fingerprint(root) not in (base, added)
    new.unlink()
    assert cache.source_fingerprint(root) == base
    for rel in ("numeric/parallel.py", "cli.py", "codegen/cache.py", "recursions/ntk.py"):
        path = root / rel
        text = path.read_text()
        path.write_text(text + "\n# edited\n")
        assert cache.source_fingerprint(root) != base, rel
        path.write_text(text)
    (root / "network.py").rename(root / "network2.py")
    assert cache.source_fingerprint(root) != base
    (root / "notes.txt").write_text("not python")
    (root / "network2.py").rename(root / "network.py")
    assert cache.source_fingerprint(root) == base


def test_engine_fingerprint_follows_package_root(tmp_path, monkeypatch):
    """The per-process engine fingerprint (and so every cache key) is taken over the package root."""
    root = _copy_package(tmp_path)
    monkeypatch.setattr(cache, "PACKAGE_ROOT", root)
    cache.engine_fingerprint.cache_clear()
    try:
        before = (cache.engine_fingerprint(), cache.content_key("m", "k"))
        (root / "gaussian_extra.py").write_text("def rule():\n    return 1\n")
        cache.engine_fingerprint.cache_clear()
        after = (cache.engine_fingerprint(), cache.content_key("m", "k"))
        assert before[0] != after[0] and before[1] != after[1]
    finally:
        cache.engine_fingerprint.cache_clear()


def test_engine_fingerprint_does_not_import_numba():
    """Computing cache keys for the numpy backend never imports numba (warm starts stay cheap)."""
    code = textwrap.dedent("""
        import sys
        from nnft.codegen import cache
        cache.engine_fingerprint()
        print("numba" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
