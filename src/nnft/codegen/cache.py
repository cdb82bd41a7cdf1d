"""On-disk cache of generated modules, keyed by a content hash of what produced them.

A cache entry is a real ``.py`` file (so numba's own on-disk cache, tracebacks and coverage work),
named ``<name>_<key>.py`` where ``key`` hashes the caller's input description together with the
engine fingerprint: a hash of every ``.py`` file of the installed nnft package and the sympy, numpy and
Python versions (numba-backend modules add the numba version to their own key). Hashing the whole
package, not a hand-kept list, means a new or edited module can never be served a stale entry; it costs
about a millisecond once per process. The first line of every file carries a checksum of the rest: a
truncated or edited entry fails the check and is regenerated, never trusted. Files are written to a
temporary name and moved into place with ``os.replace`` (atomic on POSIX), so two processes compiling
the same module at once both end up importing a complete file.

Location: ``$NNFT_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/nnft`` or ``~/.cache/nnft``. If that
directory cannot be created or written (read-only, permissions, a file in the way), entries already in
it are still used, new ones go to a private temporary directory for the rest of the process (removed at
exit), and a :class:`~nnft.errors.CacheWarning` names ``NNFT_CACHE_DIR`` as the fix.

Permissions: files are created with mode ``0666 & ~umask`` and directories with ``0777 & ~umask``
(0644 and 0755 under the usual umask 022), like any file a program writes. So a cache directory shared
by several users works: everyone can read the entries; for a group that also writes, use a setgid,
group-writable directory and umask 002 (entries then come out 0664). nnft does not special-case setgid
directories; the umask is the one knob.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from nnft.errors import CacheWarning

CHECKSUM_PREFIX = "# nnft-checksum: "
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_LOCK = threading.RLock()
_LOADED: dict[str, ModuleType] = {}
_FALLBACK: dict[str, Path] = {}  # configured directory -> temporary directory used instead (this process)


class _Unwritable(Exception):
    """A cache entry could not be written where it was asked to be (carries the ``OSError``)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def configured_dir() -> Path:
    """The cache directory the environment asks for (``$NNFT_CACHE_DIR``, XDG or ``~/.cache/nnft``)."""
    env = os.environ.get("NNFT_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nnft"


def _fallback_dir(configured: Path, error: OSError) -> Path:
    """The private temporary directory used instead of ``configured`` (created and announced once)."""
    key = str(configured)
    with _LOCK:
        if key not in _FALLBACK:
            tmp = Path(tempfile.mkdtemp(prefix="nnft-cache-"))
            atexit.register(shutil.rmtree, tmp, ignore_errors=True)
            _FALLBACK[key] = tmp
            warnings.warn(CacheWarning(
                f"nnft cannot write its code cache in {configured} ({type(error).__name__}: {error}); using the "
                f"temporary directory {tmp} for this process, so generated code is rebuilt on every start. "
                "Set NNFT_CACHE_DIR to a writable directory to keep it."), stacklevel=4)
        return _FALLBACK[key]


def cache_dir() -> Path:
    """The directory new cache entries are written to (created on first use; a temporary one if it cannot be)."""
    path = configured_dir()
    if str(path) in _FALLBACK:
        return _FALLBACK[str(path)]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _fallback_dir(path, exc)
    return path


def source_fingerprint(root: Path) -> str:
    """Content hash of every ``.py`` file under ``root`` (relative paths and bytes, in sorted order)."""
    h = hashlib.sha256()
    files = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*.py") if p.is_file())
    for rel, path in files:
        data = path.read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


@lru_cache(maxsize=1)
def engine_fingerprint() -> str:
    """Hash of everything that changes generated code: the whole nnft package source and library versions."""
    import numpy
    import sympy

    h = hashlib.sha256(source_fingerprint(PACKAGE_ROOT).encode())
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
    except (OSError, UnicodeDecodeError):
        return False
    first, _, body = text.partition("\n")
    return first.startswith(CHECKSUM_PREFIX) and first[len(CHECKSUM_PREFIX):].strip() == _checksum(body)


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _LOCK:  # portable fallback: set and restore (process-wide for an instant)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _write(path: Path, body: str) -> None:
    """Write a checksummed entry atomically, mode ``0666 & ~umask``; raise ``_Unwritable`` if it cannot be."""
    text = f"{CHECKSUM_PREFIX}{_checksum(body)}\n{body}"
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _Unwritable(exc) from exc
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600, which would lock others out of a shared cache
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _Unwritable(exc) from exc
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


def _load(folder: Path, modname: str, source: Callable[[], str]) -> ModuleType:
    path = folder / f"{modname}.py"
    if not _read_valid(path):
        _write(path, source())
    try:
        return _import(path, modname)
    except Exception:
        # a valid checksum but a failing import (e.g. written by an incompatible engine): rebuild once
        _write(path, source())
        return _import(path, modname)


def _import_existing(path: Path, modname: str) -> ModuleType | None:
    """Import ``path`` if it holds a valid entry, else ``None`` (never writes)."""
    if not _read_valid(path):
        return None
    try:
        return _import(path, modname)
    except Exception:
        return None


def cached_module(name: str, key_parts: tuple[str, ...], build: Callable[[], str],
                  on_import: Callable[[ModuleType], None] | None = None) -> ModuleType:
    """Import the generated module for ``key_parts``, generating it with ``build()`` if absent or corrupt.

    ``build`` returns the module source; it runs only on a cache miss (so a warm process start skips
    the symbolic derivation and printing). ``on_import(module)`` runs once per process after the import
    (the numba backend installs its disk-cache guard there). If the cache directory cannot be written the
    entry goes to a temporary directory instead, with a :class:`~nnft.errors.CacheWarning`.
    """
    key = content_key(name, *key_parts)
    modname = f"nnft_generated_{name}_{key}"
    built: list[str] = []

    def source() -> str:
        if not built:
            built.append(build())
        return built[0]

    with _LOCK:
        if modname in _LOADED:
            return _LOADED[modname]
        primary = configured_dir()
        module = None
        if str(primary) not in _FALLBACK:
            try:
                primary.mkdir(parents=True, exist_ok=True)
                module = _load(primary, modname, source)
            except OSError as exc:  # the directory cannot be created
                _fallback_dir(primary, exc)
            except _Unwritable as exc:  # the entry cannot be written
                _fallback_dir(primary, exc.error)
        if module is None:
            # fallen back: a valid entry already in the configured directory is still used (read-only caches)
            module = _import_existing(primary / f"{modname}.py", modname)
        if module is None:
            module = _load(_FALLBACK[str(primary)], modname, source)
        if on_import is not None:
            on_import(module)
        _LOADED[modname] = module
        return module


def clear_memory_cache() -> None:
    """Forget modules imported in this process (the files on disk stay)."""
    with _LOCK:
        _LOADED.clear()


__all__ = ["cache_dir", "cached_module", "clear_memory_cache", "configured_dir", "content_key",
           "engine_fingerprint", "source_fingerprint"]
