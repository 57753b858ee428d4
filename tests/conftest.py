"""Shared fixtures. Tests that need the real datasets in ../shared/data skip, with a reason, where it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AFFECTLAB_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real labelled faces beside the checkout (FER+, AffectNet, CK+, sample media)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set AFFECTLAB_SHARED_DATA to run these tests)")
    return SHARED_DATA
