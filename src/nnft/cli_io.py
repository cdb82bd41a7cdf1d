"""Files of the command line: one input loader for ``nnft kernels`` and ``nnft mc``, and output checks.

:func:`load_inputs` reads a (P, n_0) array from ``.npy``, ``.npz`` (one array, or the one named ``x``),
``.txt``/``.dat`` (whitespace separated), ``.csv`` (comma separated) or ``.tsv`` (tab separated); ``#``
starts a comment in text files. Pickled objects are never loaded. :func:`check_output` is called
before any computation: an output whose directory does not exist or is not writable is refused then
(nnft does not create directories, so a mistyped path is reported, not silently created).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from nnft.errors import InputError
from nnft.network import validate_inputs

TEXT_DELIMITERS = {".txt": None, ".dat": None, ".csv": ",", ".tsv": "\t"}
INPUT_SUFFIXES = (".npy", ".npz", *TEXT_DELIMITERS)


def load_inputs(path: str, option: str = "--inputs") -> np.ndarray:
    """The validated float64 (P, n_0) array stored in ``path``, or :class:`InputError` saying what is wrong."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{option} {path}: no such file")
    if p.is_dir():
        raise InputError(f"{option} {path}: is a directory, not a file")
    suffix = p.suffix.lower()
    if suffix not in INPUT_SUFFIXES:
        raise InputError(f"{option} {path}: unsupported file type {p.suffix or '(none)'!r}; use one of "
                         f"{', '.join(INPUT_SUFFIXES)}")
    try:
        if suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(p, allow_pickle=False) as data:
                names = list(data.files)
                if "x" in names:
                    arr = data["x"]
                elif len(names) == 1:
                    arr = data[names[0]]
                else:
                    raise InputError(f"{option} {path}: the .npz holds {len(names)} arrays {names}; name the "
                                     "inputs 'x' or save only one array")
        else:
            with warnings.catch_warnings():  # an empty file warns; validate_inputs reports it below
                warnings.simplefilter("ignore", UserWarning)
                arr = np.loadtxt(p, delimiter=TEXT_DELIMITERS[suffix], ndmin=2, comments="#")
    except InputError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            reason = "it holds pickled Python objects, which nnft never loads; save a plain numeric array"
        else:
            reason = f"not a numeric table ({exc})"
        raise InputError(f"{option} {path}: cannot read it: {reason}") from exc
    except (OSError, EOFError) as exc:
        raise InputError(f"{option} {path}: cannot read it: {exc}") from exc
    try:
        return validate_inputs(arr)
    except InputError as exc:
        raise InputError(f"{option} {path}: {exc}") from exc


def check_output(path: str, option: str = "--out", suffixes: tuple[str, ...] | None = None) -> Path:
    """``path`` as a Path if it can be written, else :class:`InputError` (call it before computing)."""
    p = Path(path)
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise InputError(f"{option} {path}: the output must end in {' or '.join(suffixes)}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise InputError(f"{option} {path}: directory {parent} does not exist; create it first (mkdir -p {parent})")
    if not parent.is_dir():
        raise InputError(f"{option} {path}: {parent} is not a directory")
    if p.is_dir() and p.suffix.lower() != ".zarr":
        raise InputError(f"{option} {path}: is a directory; give a file name")
    target = p if p.exists() else parent
    if not os.access(target, os.W_OK):
        raise InputError(f"{option} {path}: {target} is not writable")
    return p


__all__ = ["INPUT_SUFFIXES", "check_output", "load_inputs"]
