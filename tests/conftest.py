"""Shared test configuration: an isolated generated-code cache for the whole session."""

from __future__ import annotations

import os
import tempfile

import pytest

if "NNFT_CACHE_DIR" not in os.environ:
    os.environ["NNFT_CACHE_DIR"] = tempfile.mkdtemp(prefix="nnft-test-cache-")


@pytest.fixture
def rng():
    """A seeded numpy generator."""
    import numpy as np

    return np.random.default_rng(12345)
