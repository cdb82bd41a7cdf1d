"""The code base is ruff clean (configuration in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    """`ruff check` reports nothing on src, tests, bench, derivations and docs scripts."""
    exe = shutil.which("ruff")
    cmd = [exe] if exe else [sys.executable, "-m", "ruff"]
    try:
        proc = subprocess.run([*cmd, "check", "src", "tests", "bench", "derivations", "docs"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
    except FileNotFoundError:  # pragma: no cover - ruff is in the test extra
        pytest.fail("ruff is not installed: pip install -e '.[test]'")
    assert proc.returncode == 0, proc.stdout + proc.stderr
