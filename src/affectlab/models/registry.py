"""Model registry, timm-style: ``@register_model("name")`` on a class, ``create_model("name", **config)``."""
from __future__ import annotations

import importlib
import inspect
from os import PathLike
from typing import Any, Callable, TypeVar

from affectlab.errors import AffectlabError
from affectlab.labels import DEFAULT_SCHEMA, LabelSchema
from affectlab.models.base import AffectModel

_MODELS: dict[str, type[AffectModel]] = {}
_FAMILIES = ("multitask", "smm", "context", "streaming")  # the modules whose classes register themselves
M = TypeVar("M", bound=type[AffectModel])


def _registered() -> dict[str, type[AffectModel]]:
    """The registry, with the built-in families imported first (imported on first use, not with the package)."""
    for family in _FAMILIES:
        importlib.import_module(f"affectlab.models.{family}")
    return _MODELS


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator: make the model creatable by ``name`` and record the name on the class."""

    def add(cls: M) -> M:
        if name in _MODELS:
            raise ValueError(f"model name {name!r} is registered twice ({_MODELS[name].__name__}, {cls.__name__})")
        cls.model_name = name
        _MODELS[name] = cls
        return cls

    return add


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_registered())


def get_model_class(name: str) -> type[AffectModel]:
    if name not in _registered():
        raise AffectlabError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    return _MODELS[name]


def model_options(name: str) -> dict[str, Any]:
    """The config options of a model and their defaults (``create_model``'s keyword arguments)."""
    cls = get_model_class(name)
    init = getattr(cls, "member_class", cls).__init__  # an ensemble takes its members' options
    params = list(inspect.signature(init).parameters.values())[2:]  # after self, schema
    return {p.name: p.default for p in params}


def create_model(name: str, schema: LabelSchema = DEFAULT_SCHEMA, *,
                 backbone_weights: str | PathLike[str] | None = None, **config: Any) -> AffectModel:
    """Build a registered model; ``backbone_weights`` is a local ImageNet file for its backbone(s).

    The weights path is not part of the model's config: a checkpoint carries the trained weights,
    so rebuilding it never needs the ImageNet file again.
    """
    cls = get_model_class(name)
    options = model_options(name)
    unknown = sorted(set(config) - set(options))
    if unknown:
        raise AffectlabError(f"model {name!r} has no option {', '.join(map(repr, unknown))}; "
                             f"options: {', '.join(options)}")
    model = cls(schema, **config)
    if backbone_weights is not None:
        model.load_backbone_weights(backbone_weights)
    return model
