"""affectlab.train.typed_yaml: the engine on dataclasses of its own, apart from any recipe."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from affectlab.train.typed_yaml import ConfigError, apply_override, build, merge


@dataclass
class Part:
    size: int = 1
    mode: Literal["fast", "exact"] = "exact"

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")


@dataclass
class Whole:
    name: str
    part: Part = field(default_factory=Part)
    parts: dict[str, Part] = field(default_factory=dict)
    steps: list[Part] = field(default_factory=list)
    rate: float | None = None
    made: dict = field(default_factory=dict, metadata={"yaml": False})


def test_values_become_their_types_and_nulls_remove_or_empty():
    w = build(Whole, {"name": 3, "part": {"size": 2}, "parts": {"a": {}, "b": None}, "steps": [None, {"mode": "fast"}],
                      "rate": "1e-3"}, "w.yaml", "")
    assert w == Whole("3", Part(2), {"a": Part()}, [Part(mode="fast")], 1e-3)
    assert build(Whole, {"name": "x", "parts": None}, "w.yaml", "").parts == {}


@pytest.mark.parametrize("value, message", [
    ({"name": "x", "part": {"size": "3"}}, "w.yaml: part.size: expected a whole number, got '3'"),
    ({"name": "x", "part": {"size": 0}}, "w.yaml: part: size must be >= 1, got 0"),
    ({"name": "x", "part": {"mode": "slow"}}, "w.yaml: part.mode: must be one of fast, exact, got 'slow'"),
    ({"name": "x", "made": {}}, "w.yaml: (top level): unknown key 'made'; known: name, part, parts, steps, rate"),
    ({"part": {}}, "w.yaml: (top level): missing key 'name'"),
])
def test_what_cannot_be_used_names_the_file_and_key(value, message):
    with pytest.raises(ConfigError) as error:
        build(Whole, value, "w.yaml", "")
    assert str(error.value) == message


def test_overrides_address_list_items_by_name_and_merge_deeply():
    raw = {"steps": [{"name": "first", "size": 1}, {"name": "second", "size": 2}]}
    apply_override(raw, "steps.second.size=5")
    apply_override(raw, "extra.deep.key=[1, 2]")
    assert raw["steps"][1]["size"] == 5 and raw["extra"] == {"deep": {"key": [1, 2]}}
    with pytest.raises(ConfigError, match="no item 'third'; items: \\['first', 'second'\\]"):
        apply_override(raw, "steps.third.size=1")
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}
