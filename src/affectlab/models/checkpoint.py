"""Self-contained model files: weights plus everything needed to run the model alone.

A checkpoint is one safetensors file. Its tensors are the model's ``state_dict``; its metadata
header holds one JSON document under the key ``"affectlab"``: model name and config, label
schema, input size, normalisation mean/std, the face-alignment template and the affectlab
version. Loading reads JSON and raw tensors only, so it never executes code from the file.
"""
from __future__ import annotations

import json
import math
import os
from os import PathLike
from pathlib import Path
from typing import Any, Sequence

import safetensors.torch
from safetensors import SafetensorError

from affectlab import __version__
from affectlab.errors import AffectlabError, DataError, first_line
from affectlab.jsonfile import write_atomic
from affectlab.labels import LabelSchema
from affectlab.models.base import AffectModel
from affectlab.models.meta import KEY, CheckpointMeta, align_template, read_checkpoint_meta
from affectlab.models.registry import create_model

__all__ = ["CheckpointMeta", "align_template", "load_model", "read_checkpoint_meta", "save_checkpoint"]


def _checked_meta(model: AffectModel, input_size: int, mean: Sequence[float], std: Sequence[float],
                  template: Sequence[Sequence[float]] | None, extra: dict[str, Any] | None) -> CheckpointMeta:
    if not model.model_name:
        raise AffectlabError(f"{type(model).__name__} is not a registered model; only those can be checkpointed")
    if int(input_size) != input_size or input_size <= 0:
        raise AffectlabError(f"input_size must be a positive number of pixels, got {input_size!r}")
    if len(mean) != 3 or len(std) != 3 or not all(math.isfinite(s) and s > 0 for s in std):
        raise AffectlabError(f"mean and std must be 3 per-channel numbers (std > 0), got {mean!r} and {std!r}")
    template = align_template(input_size) if template is None else template
    if len(template) != 5 or any(len(p) != 2 for p in template):
        raise AffectlabError("align_template must be 5 (x, y) points: eyes, nose tip, mouth corners")
    try:
        json.dumps(extra or {})
    except TypeError as e:
        raise AffectlabError(f"extra must be JSON-serialisable: {e}") from None
    return CheckpointMeta(model=model.model_name, config=model.config, schema=model.schema,
                          input_size=int(input_size), mean=tuple(map(float, mean)), std=tuple(map(float, std)),
                          align_template=tuple((float(x), float(y)) for x, y in template),
                          affectlab_version=__version__, extra=dict(extra or {}))


def update_extra(model: AffectModel, path: str | PathLike[str], **extra: Any) -> None:
    """Save ``model`` to ``path`` with its checkpoint metadata and ``extra`` merged into its extras
    (what ``affectlab calibrate`` stores)."""
    meta = model.checkpoint_meta or read_checkpoint_meta(path)
    save_checkpoint(model, path, input_size=meta.input_size, mean=meta.mean, std=meta.std,
                    align_template=meta.align_template, extra={**meta.extra, **extra})


def save_checkpoint(model: AffectModel, path: str | PathLike[str], *, input_size: int, mean: Sequence[float],
                    std: Sequence[float], align_template: Sequence[Sequence[float]] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` and its run-alone metadata to ``path`` (a ``.safetensors`` file).

    ``align_template`` defaults to :func:`align_template` of ``input_size``; ``extra``
    holds any JSON-ready facts worth keeping (epoch, metrics, training recipe). The file is
    written beside its final name first, so an interrupted save never leaves a half file.
    """
    meta = _checked_meta(model, input_size, mean, std, align_template, extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(partial: Path) -> None:
        safetensors.torch.save_model(model, str(partial), metadata={KEY: meta.to_json()})
        os.chmod(partial, 0o666 & ~_umask())  # safetensors writes 0600; a model file is as readable as any other

    write_atomic(path, write)
    return path


def _umask() -> int:
    """The process's file-creation mask (os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _schema_difference(found: LabelSchema, expected: LabelSchema) -> str:
    for what, a, b in [("AUs", found.au_names, expected.au_names),
                       ("expressions", found.expr_names, expected.expr_names),
                       ("VA names", found.va_names, expected.va_names)]:
        if a != b:
            return f"its {what} are {', '.join(a)}, expected {', '.join(b)}"
    return "its labels differ"


def load_model(path: str | PathLike[str], schema: LabelSchema | None = None, device: str = "cpu") -> AffectModel:
    """Rebuild the model stored at ``path``, load its weights and return it in eval mode.

    ``schema``, if given, is the label schema the caller needs; a checkpoint with other labels
    is refused. The model's :class:`CheckpointMeta` (input size, normalisation, alignment
    template, ...) is on ``model.checkpoint_meta``. Every failure is a one-line DataError naming the file.
    """
    meta = read_checkpoint_meta(path)
    if schema is not None and meta.schema != schema:
        raise DataError(path, f"label schema mismatch: {_schema_difference(meta.schema, schema)}")
    try:
        model = create_model(meta.model, meta.schema, **meta.config)
    except (AffectlabError, TypeError, ValueError, RuntimeError) as e:  # a config of the wrong form or size
        raise DataError(path, f"cannot rebuild the model: {e}") from None
    try:
        missing, unexpected = safetensors.torch.load_model(model, path, strict=False, device=device)
    except (RuntimeError, SafetensorError, OSError) as e:
        reason = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), first_line(e))
        raise DataError(path, f"weights do not fit model {meta.model!r}: {reason}") from None
    if missing or unexpected:  # safetensors gives sets
        raise DataError(path, f"weights do not fit model {meta.model!r}: {len(missing)} missing "
                              f"(first: {sorted(missing)[:1]}), {len(unexpected)} unexpected "
                              f"(first: {sorted(unexpected)[:1]})")
    model.checkpoint_meta = meta
    return model.to(device).eval()
