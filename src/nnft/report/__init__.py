"""``nnft report``: the whole derivation of a network, from kernels to finite-width checks, in one directory.

``build_report(ReportConfig(...), out="nnft-report")`` writes HTML, Markdown, LaTeX, JSON, figures and
the generated modules (:mod:`nnft.report.build`); sections are builders in :mod:`nnft.report.sections`.
Names are imported lazily so that ``nnft --help`` does not load sympy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"Report": "nnft.report.build", "build_report": "nnft.report.build", "ReportConfig": "nnft.report.config"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nnft.report' has no attribute {name!r}")


__all__ = ["Report", "ReportConfig", "build_report"]
