"""The parts of code generation that need numba: the import itself, its version and the disk-cache guard.

This and :mod:`nnft.runtime_numba` are the only nnft modules that import numba (the layering test in
``tests/test_layering.py`` enforces it), so ``import nnft`` and the numpy backend work without numba.
:mod:`nnft.codegen.module` imports this module only when the numba backend is asked for.

The guard exists because numba's own cache (``__pycache__/*.nbi`` index and ``*.nbc`` data files next
to each generated module) has no checksum: a truncated or overwritten file makes every later call of the
function fail with ``UnpicklingError`` (or ``EOFError``, …) until it is deleted by hand.
:func:`guard_disk_cache` wraps each compiled function's cache so that a file that fails to load is
deleted, a :class:`~nnft.errors.CacheWarning` is issued, and numba compiles afresh and rewrites it.
A corruption that still unpickles into a well-formed object is not detectable this way (numba's format
carries no checksum); truncation and random bytes are.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from nnft.errors import CacheWarning

try:
    import numba
except ImportError as _exc:  # numba is optional: only the numba backend needs it
    numba = None
    _IMPORT_ERROR: ImportError | None = _exc
else:
    _IMPORT_ERROR = None

INSTALL_HINT = "the numba backend needs numba: `pip install numba` (or use backend='numpy', which needs nothing extra)"


def require_numba() -> ModuleType:
    """Return the numba module, or raise an ``ImportError`` that says how to install it."""
    if numba is None:
        err = ImportError(f"{INSTALL_HINT}; importing numba failed with: {_IMPORT_ERROR}", name="numba")
        raise err from _IMPORT_ERROR
    return numba


def numba_version() -> str:
    """The installed numba version (part of the cache key of numba-backend modules)."""
    return require_numba().__version__


def _cache_files(cache: Any) -> list[Path]:
    """The index and data files numba keeps for one function (``<base>.nbi``, ``<base>.<n>.nbc``)."""
    cache_file = cache._cache_file
    folder = Path(cache.cache_path)
    base = cache_file._index_name[: -len(".nbi")]
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir()
            if p.name == cache_file._index_name or (p.name.startswith(base + ".") and p.suffix == ".nbc")]


def _purge(cache: Any) -> list[Path]:
    removed = []
    for path in _cache_files(cache):
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed


def _guard(dispatcher: Any, modname: str) -> None:
    cache = dispatcher._cache
    load, save = cache.load_overload, cache.save_overload

    def load_overload(sig: Any, target_context: Any) -> Any:
        try:
            return load(sig, target_context)
        except Exception as exc:  # any failure to read numba's files means they are unusable
            removed = _purge(cache)
            names = ", ".join(p.name for p in removed) or "(already gone)"
            warnings.warn(CacheWarning(
                f"numba's disk cache of {dispatcher.py_func.__name__} in {modname} could not be loaded "
                f"({type(exc).__name__}: {exc}); deleted {names} in {cache.cache_path} and recompiling. "
                "If this recurs, delete the cache directory ($NNFT_CACHE_DIR) or check the disk."), stacklevel=2)
            return None

    def save_overload(sig: Any, data: Any) -> None:
        try:
            save(sig, data)
        except Exception:
            # an unreadable index breaks saving too: start the function's cache afresh, once
            _purge(cache)
            try:
                save(sig, data)
            except OSError as exc:
                warnings.warn(CacheWarning(
                    f"numba could not write its disk cache for {modname} ({exc}); this run is unaffected, but "
                    "the next one recompiles. Point $NNFT_CACHE_DIR at a writable directory."), stacklevel=2)

    cache.load_overload = load_overload
    cache.save_overload = save_overload


def guard_disk_cache(module: ModuleType) -> None:
    """Make numba's on-disk cache of every compiled function in ``module`` self-healing (see module docstring)."""
    if numba is None:
        return
    from numba.core.dispatcher import Dispatcher

    for value in vars(module).values():
        if isinstance(value, Dispatcher) and hasattr(getattr(value, "_cache", None), "_cache_file"):
            _guard(value, module.__name__)


__all__ = ["INSTALL_HINT", "guard_disk_cache", "numba_version", "require_numba"]
