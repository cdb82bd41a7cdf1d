"""On-disk cache of generated modules, keyed by a content hash of what produced them.

A cache entry is a real ``.py`` file (so numba's own on-disk cache, tracebacks and coverage work),
named ``<name>_<key>.py`` where ``key`` hashes the caller's input description together with the
versions that affect the output (nnft's symbolic and codegen sources, sympy, numpy, numba, Python).
The first line of every file carries a checksum of the rest: a truncated or edited entry fails the
check and is regenerated, never trusted. Files are written to a temporary name and moved into place
with ``os.replace`` (atomic on POSIX), so two processes compiling the same module at once both end up
importing a complete file.

Location: ``$NNFT_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/nnft`` or ``~/.cache/nnft``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from types import ModuleType

CHECKSUM_PREFIX = "# nnft-checksum: "
_LOCK = threading.Lock()
_LOADED: dict[str, ModuleType] = {}


def cache_dir() -> Path:
    """The directory holding generated modules (created on first use)."""
    env = os.environ.get("NNFT_CACHE_DIR")
    if env:
        path = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "nnft"
    path.mkdir(parents=True, exist_ok=True)
    return path


@lru_cache(maxsize=1)
def engine_fingerprint() -> str:
    """Hash of everything that changes generated code: nnft's derivation sources and library versions."""
    import numpy
    import sympy

    h = hashlib.sha256()
    pkg = Path(__file__).resolve().parent.parent
    sources = [pkg / f for f in ("activations.py", "functions.py", "gaussian.py", "runtime.py", "runtime_numba.py")]
    sources += sorted((pkg / "codegen").glob("*.py")) + sorted((pkg / "recursions").glob("*.py"))
    for path in sources:
        if path.exists():
            h.update(path.name.encode())
            h.update(path.read_bytes())
    for mod in ("numba",):
        try:
            version = __import__(mod).__version__
        except ImportError:  # pragma: no cover - numba is a core dependency
            version = "absent"
        h.update(f"{mod}={version}".encode())
    h.update(f"sympy={sympy.__version__};numpy={numpy.__version__};py={sys.version_info[:2]}".encode())
    return h.hexdigest()


def content_key(*parts: str) -> str:
    """A short hex key of ``parts`` and the engine fingerprint."""
    h = hashlib.sha256(engine_fingerprint().encode())
    for p in parts:
        h.update(b"\0")
        h.update(p.encode())
    return h.hexdigest()[:24]


def _checksum(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def _read_valid(path: Path) -> bool:
    try:
        text = path.read_text()
    except OSError:
        return False
    first, _, body = text.partition("\n")
    return first.startswith(CHECKSUM_PREFIX) and first[len(CHECKSUM_PREFIX):].strip() == _checksum(body)


def _write(path: Path, body: str) -> None:
    text = f"{CHECKSUM_PREFIX}{_checksum(body)}\n{body}"
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _import(path: Path, modname: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:  # pragma: no cover
        raise ImportError(f"cannot import generated module {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return module


def cached_module(name: str, key_parts: tuple[str, ...], build: Callable[[], str]) -> ModuleType:
    """Import the generated module for ``key_parts``, generating it with ``build()`` if absent or corrupt.

    ``build`` returns the module source; it runs only on a cache miss (so a warm process start skips
    the symbolic derivation and printing).
    """
    key = content_key(name, *key_parts)
    modname = f"nnft_generated_{name}_{key}"
    with _LOCK:
        if modname in _LOADED:
            return _LOADED[modname]
        path = cache_dir() / f"{modname}.py"
        if not _read_valid(path):
            _write(path, build())
        try:
            module = _import(path, modname)
        except Exception:
            # a valid checksum but a failing import (e.g. written by an incompatible engine): rebuild once
            _write(path, build())
            module = _import(path, modname)
        _LOADED[modname] = module
        return module


def clear_memory_cache() -> None:
    """Forget modules imported in this process (the files on disk stay)."""
    with _LOCK:
        _LOADED.clear()


__all__ = ["cache_dir", "cached_module", "clear_memory_cache", "content_key", "engine_fingerprint"]
