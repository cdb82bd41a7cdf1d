"""Build a report: run the section builders with progress and timings, write every format, move into place.

The report is written into a fresh temporary directory beside the target and renamed into place only
when complete, so an interrupted or failed run (Ctrl-C, an error in a section) never leaves a
half-written report that looks finished. An existing target is replaced only if it is an earlier nnft
report (it holds a ``results.json`` written by nnft); anything else is refused.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from nnft.errors import InputError
from nnft.network import MLP, validate_inputs
from nnft.report import writers
from nnft.report.config import ReportConfig
from nnft.report.document import Section, Table
from nnft.report.sections import SECTIONS, Context

_MARK = "nnft-report"


@dataclass
class Report:
    """A finished report: its directory, sections and timings; renders in Jupyter."""

    path: Path
    sections: list[Section]
    seconds: float

    def _repr_html_(self) -> str:
        return (self.path / "report.html").read_text(encoding="utf-8")

    def __repr__(self) -> str:
        done = [s.key for s in self.sections if s.status == "done"]
        return f"Report({str(self.path)!r}, sections={done}, {self.seconds:.1f} s)"


def _versions() -> dict:
    import scipy
    import sympy

    import nnft

    return {"nnft": nnft.__version__, "sympy": sympy.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "python": platform.python_version()}


def load_inputs(path: str | None) -> np.ndarray:
    """The inputs of a report: a .npy/.txt/.csv file of shape (P, n_0), or the built-in set."""
    from nnft.cli import default_inputs

    if path is None:
        return default_inputs()
    p = Path(path)
    if not p.is_file():
        raise InputError(f"inputs {path}: no such file")
    try:
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        elif p.suffix in (".txt", ".csv"):
            arr = np.loadtxt(p, delimiter="," if p.suffix == ".csv" else None, ndmin=2)
        else:
            raise InputError(f"inputs must be a .npy, .txt or .csv file, got {path}")
    except (OSError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"inputs {path}: cannot read it as a numeric (P, n_0) array ({exc})") from exc
    try:
        return validate_inputs(arr)
    except ValueError as exc:
        raise InputError(f"inputs {path}: {exc}") from exc


def _prepare_target(out: Path) -> Path:
    """Check the target can be written (before any work) and return the temporary build directory."""
    out = out.expanduser().resolve()
    if out.exists():
        if not out.is_dir():
            raise InputError(f"--out {out} exists and is not a directory; choose another --out")
        if any(out.iterdir()) and not _is_report(out):
            raise InputError(f"--out {out} is a non-empty directory that is not an nnft report; "
                             "refusing to replace it (choose another --out)")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
    except OSError as exc:
        raise InputError(f"cannot write the report under {parent}: {exc.strerror or exc}; "
                         "choose a writable --out") from exc
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; a report is as readable as any other output
    return tmp


def _is_report(path: Path) -> bool:
    try:
        return json.loads((path / "results.json").read_text(encoding="utf-8")).get("kind") == _MARK
    except (OSError, ValueError, AttributeError):
        return False


def _move_into_place(tmp: Path, out: Path) -> None:
    out = out.expanduser().resolve()
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_report(config: ReportConfig | None = None, out: str | Path = "nnft-report", *,
                 progress: bool | None = None) -> Report:
    """Derive, compute and check everything nnft knows about a network and write the report to ``out``.

    Writes ``report.html`` (offline, MathML formulas, embedded figures), ``report.md``, ``formulas.tex``,
    ``results.json`` (numbers with provenance), ``figures/*.png|svg`` and ``modules/`` (the generated
    numeric modules). ``progress=None`` shows a progress bar on terminals.
    """
    from tqdm.auto import tqdm

    cfg = (config or ReportConfig()).effective()
    out = Path(out)
    tmp = _prepare_target(out)
    t_start = time.perf_counter()
    try:
        x = load_inputs(cfg.inputs)
        net = MLP(cfg.activation, depth=cfg.depth, width=cfg.width, C_b=cfg.C_b, C_W=cfg.C_W,
                  lambda_b=cfg.lambda_b, lambda_W=cfg.lambda_W)
        ctx = Context(cfg, net, x, tmp / "figures")
        sections: list[Section] = []
        bar = tqdm(SECTIONS, desc="nnft report", unit="section", disable=None if progress is None else not progress)
        for builder in bar:
            bar.set_postfix_str(builder.__name__)
            t0 = time.perf_counter()
            s = builder(ctx)
            s.seconds = time.perf_counter() - t0
            sections.append(s)
        total = time.perf_counter() - t_start
        sections.append(Section("timings", "Timings", [Table(
            ("stage", "seconds"), tuple((s.title, f"{s.seconds:.2f}") for s in sections if s.status == "done")
            + (("total", f"{total:.2f}"),))], results={"total_seconds": round(total, 3)}))
        meta = {"kind": _MARK, "created": datetime.now(UTC).isoformat(timespec="seconds"), "versions": _versions(),
                "config": {k: v for k, v in asdict(cfg).items() if k != "extra"}, "seed": cfg.seed}
        title = f"nnft report: {net.activation.name} network, depth {net.depth}"
        footer = (f"nnft {meta['versions']['nnft']}, sympy {meta['versions']['sympy']}, numpy "
                  f"{meta['versions']['numpy']}; {meta['created']}; seed {cfg.seed}; {total:.1f} s")
        (tmp / "report.html").write_text(writers.html_document(title, sections, ctx.figdir, footer), encoding="utf-8")
        (tmp / "report.md").write_text(writers.markdown_document(title, sections, footer), encoding="utf-8")
        (tmp / "formulas.tex").write_text(writers.latex_document(title, sections), encoding="utf-8")
        (tmp / "results.json").write_text(writers.json_document(meta, sections), encoding="utf-8")
        (tmp / "modules").mkdir()
        for name, src in ctx.modules.items():
            shutil.copyfile(src, tmp / "modules" / name)
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Report(out.expanduser().resolve(), sections, time.perf_counter() - t_start)


__all__ = ["Report", "build_report", "load_inputs"]
