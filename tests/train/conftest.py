"""Fixtures of the training tests: the tiny world (built once per session) and one CPU thread."""
from __future__ import annotations

import pytest

from train_world import World, build_world


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))
