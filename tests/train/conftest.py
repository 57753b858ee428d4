"""Fixtures of the training tests: the tiny world (built once per session) and one CPU thread."""
from __future__ import annotations

import pytest

from train_world import World, build_world


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(autouse=True)
def offline_imagenet(imagenet_cache):
    """The paper recipes start from ImageNet (backbone_weights: imagenet): served from a test-made cache."""
    return imagenet_cache
