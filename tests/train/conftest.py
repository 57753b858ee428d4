"""Fixtures of the training tests: the tiny world (built once per session) and one CPU thread."""
from __future__ import annotations

import pytest
import torch

from train_world import World, build_world


@pytest.fixture(autouse=True, scope="module")
def one_cpu_thread():
    """Tiny tensors gain nothing from threads; on a busy 2-core machine they slow down (see tests/models)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))
