"""affectlab.jsonfile: JSON every reader accepts, written whole or not at all."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from affectlab.errors import DataError
from affectlab.jsonfile import read_json, write_atomic, write_json


def test_nan_is_null_and_numpy_numbers_are_plain(tmp_path):
    path = tmp_path / "scores.json"
    write_json(path, {"f1": np.float32(0.5), "n": np.int64(3), "ccc": math.nan, "per_au": [np.float64(0.25), None]})
    assert json.loads(path.read_text()) == {"f1": 0.5, "n": 3, "ccc": None, "per_au": [0.25, None]}
    assert read_json(path)["n"] == 3


def test_a_write_that_fails_leaves_the_old_file_whole_and_no_partial(tmp_path):
    path = tmp_path / "progress.json"
    write_json(path, {"completed": {"teacher": 1}})

    def fails_half_way(partial):
        partial.write_text('{"completed": {"teach')
        raise OSError(28, "No space left on device")

    with pytest.raises(DataError, match="progress.json: cannot write \\(No space left on device\\)"):
        write_atomic(path, fails_half_way)
    assert read_json(path) == {"completed": {"teacher": 1}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.json"]


def test_an_unwritable_value_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "results.json"
    write_json(path, {"final": ["a.safetensors"]})
    with pytest.raises(TypeError):
        write_json(path, {"final": object()})
    assert read_json(path) == {"final": ["a.safetensors"]}


def test_a_file_appears_only_when_written_whole(tmp_path):
    path = tmp_path / "new.json"
    seen = []
    write_atomic(path, lambda partial: seen.append(path.exists()) or partial.write_text("{}"))
    assert seen == [False] and read_json(path) == {}


@pytest.mark.parametrize("content, message", [(None, "no such file"), ("{not json", "not a JSON file")])
def test_unreadable_json_is_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "t.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=f"t.json: {message}"):
        read_json(path)


def test_a_folder_is_no_file_to_write(tmp_path):
    with pytest.raises(DataError, match="is a folder; give a file name to write"):
        write_json(tmp_path, {})
