"""Shared test configuration: an isolated generated-code cache for the whole session, seeded hypothesis."""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import settings

if "NNFT_CACHE_DIR" not in os.environ:
    os.environ["NNFT_CACHE_DIR"] = tempfile.mkdtemp(prefix="nnft-test-cache-")

# Property tests draw the same cases on every run (CI is reproducible); HYPOTHESIS_PROFILE=nnft-random
# draws fresh ones, e.g. for a long local run (tests/test_properties.py).
settings.register_profile("nnft", derandomize=True, database=None, print_blob=True)
settings.register_profile("nnft-random", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "nnft"))


@pytest.fixture
def rng():
    """A seeded numpy generator."""
    import numpy as np

    return np.random.default_rng(12345)
