"""Memory available to this process, and a check that refuses requests that would not fit before allocating.

The limit is, in order: the environment variable ``NNFT_MEMORY_LIMIT`` (bytes, or with a suffix ``K``,
``M``, ``G``, ``T`` in powers of 1024, e.g. ``"2G"``; ``0`` or ``"none"`` disables the check), else the
smaller of ``MemAvailable`` in ``/proc/meminfo`` and the free part of a cgroup v2 limit
(``/sys/fs/cgroup/memory.max`` − ``memory.current``), else ``os.sysconf`` available pages × page size.
If none is known the check passes (it never blocks a request it cannot judge).
"""

from __future__ import annotations

import os
from pathlib import Path

from nnft.errors import InputError, ResourceError

ENV = "NNFT_MEMORY_LIMIT"
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _parse_bytes(text: str) -> int | None:
    """Bytes from ``"123"``, ``"512M"``, ``"2G"``, ``"1.5GiB"``; None for ``"0"``/``"none"`` (no limit)."""
    t = text.strip().upper().replace("IB", "").replace(" ", "")
    if t in ("", "0", "NONE", "OFF"):
        return None
    unit = t[-1] if t[-1] in "BKMGT" else ""
    num = t[: len(t) - len(unit)] if unit else t
    if unit == "B" and num and num[-1] in "KMGT":  # "2GB"
        unit, num = num[-1], num[:-1]
    try:
        value = float(num)
    except ValueError:
        raise InputError(f"{ENV}={text!r} is not a size: use bytes or a number with K, M, G or T (e.g. 8G)") from None
    if not value > 0:
        raise InputError(f"{ENV}={text!r} must be positive (or 0/none to disable the memory check)")
    return int(value * _UNITS[unit])


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        return max(int(limit) - used, 0)
    except (OSError, ValueError):
        return None


def _sysconf_available() -> int | None:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes this process may still allocate (see the module docstring for the sources), None if unknown."""
    env = os.environ.get(ENV)
    if env is not None:
        return _parse_bytes(env)
    known = [v for v in (_meminfo_available(), _cgroup_available()) if v is not None]
    if known:
        return min(known)
    return _sysconf_available()


def fmt_bytes(n: float) -> str:
    """``n`` bytes in the largest binary unit that keeps it >= 1, e.g. ``26.8 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def check_memory(need: int, what: str, fix: str) -> None:
    """Raise :class:`ResourceError` if ``need`` bytes exceed the memory available; ``fix`` says what to change."""
    avail = available_memory()
    if avail is not None and need > avail:
        src = f" ({ENV})" if os.environ.get(ENV) is not None else ""
        raise ResourceError(
            f"{what} needs about {fmt_bytes(need)} but only {fmt_bytes(avail)} is available{src}; {fix}"
        )


__all__ = ["ENV", "available_memory", "check_memory", "fmt_bytes"]
