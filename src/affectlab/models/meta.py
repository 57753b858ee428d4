"""What a checkpoint says about its model besides the weights, read without torch.

The metadata header of a checkpoint (a safetensors file) holds one JSON document under the key
``"affectlab"``. Reading it needs neither torch nor the weights, so inference on onnxruntime
(:mod:`affectlab.inference.backends`) starts without importing torch.
"""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict, dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import Any

from affectlab.errors import AffectlabError, DataError, first_line
from affectlab.faces.align import named_template
from affectlab.labels import LabelSchema

FORMAT_VERSION = 1
KEY = "affectlab"

#: ImageNet normalisation: every backbone is ImageNet-initialised (SMM §4.2 normalises the same way).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: The crop margin of a checkpoint that does not record one (``data.margin``'s default).
DEFAULT_MARGIN = 0.07
#: The context view of a face-and-context ensemble whose checkpoint does not say (ensemble-with-context §3).
DEFAULT_CONTEXT = 0.25


def align_template(input_size: int, template: str = "arcface") -> list[list[float]]:
    """The face-alignment target of a crop of ``input_size`` pixels: where the 5 landmarks land
    (the named layout of :data:`affectlab.faces.align.TEMPLATES`, scaled; ArcFace's by default)."""
    return named_template(template, input_size).tolist()


#: Checkpoint extra: average each face's outputs with its mirror image's at inference (set where
#: validation showed it pays: affectlab calibrate flip).
TEST_TIME_FLIP = "test_time_flip"
#: Checkpoint extra: per-dimension affine maps of valence and arousal, ``{"valence": [a, b], ...}``,
#: applied by inference where validation showed they pay (``affectlab calibrate va``).
VA_CALIBRATION = "va_calibration"


@dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint says about its model, besides the weights."""

    model: str
    config: dict[str, Any]
    schema: LabelSchema
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    align_template: tuple[tuple[float, float], ...]
    affectlab_version: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        d = asdict(self)
        d["schema"] = self.schema.to_dict()
        return json.dumps({"format_version": FORMAT_VERSION, **d})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CheckpointMeta":
        return cls(model=d["model"], config=d["config"], schema=LabelSchema.from_dict(d["schema"]),
                   input_size=int(d["input_size"]), mean=tuple(d["mean"]), std=tuple(d["std"]),
                   align_template=tuple(tuple(p) for p in d["align_template"]),
                   affectlab_version=d["affectlab_version"], extra=d.get("extra") or {})


@dataclass(frozen=True)
class InputSpec:
    """How a model wants its faces, the one description the dataset, evaluation and the analyzer
    share: input size, crop margin, views (contexts), the context unaligned images carry, clip
    length and normalisation (see :mod:`affectlab.data.transforms`)."""

    size: int
    margin: float = DEFAULT_MARGIN
    views: tuple[float, ...] = (0.0,)
    image_context: float = 0.0
    clip_len: int = 0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    #: How a given face crop without landmarks is framed (``data.crop_framing``): 5 [x, y] fractions.
    crop_framing: tuple[tuple[float, float], ...] | None = None
    #: The face layout faces are aligned to (``data.template``: a name of :data:`affectlab.faces.align.TEMPLATES`).
    template: str = "arcface"

    def __post_init__(self) -> None:
        if self.crop_framing is not None:  # from a recipe or a checkpoint's JSON: lists of numbers
            object.__setattr__(self, "crop_framing", tuple((float(x), float(y)) for x, y in self.crop_framing))
        if self.clip_len and len(self.views) > 1:
            raise ValueError("a model takes either clips or several views per face, not both")

    @classmethod
    def from_meta(cls, meta: CheckpointMeta, n_views: int = 0) -> "InputSpec":
        """From a checkpoint's header (``extra["crop"]``, written by the trainer). ``n_views``: the
        views the model's layout takes, where a checkpoint older than the crop record must be told."""
        crop = meta.extra.get("crop", {})
        views = tuple(float(v) for v in crop.get("views", (0.0,)))
        if n_views == 2 and len(views) != 2:
            views = (0.0, DEFAULT_CONTEXT)
        return cls(meta.input_size, float(crop.get("margin", DEFAULT_MARGIN)), views,
                   float(crop.get("image_context", 0.0)), int(crop.get("clip_len", 0)),
                   tuple(meta.mean), tuple(meta.std), crop.get("framing"), crop.get("template", "arcface"))

    @classmethod
    def of(cls, model: Any) -> "InputSpec":
        """From a loaded model (:func:`affectlab.load_model`): its header, and its layout's views and clip."""
        if model.checkpoint_meta is None:
            raise AffectlabError("the model has no checkpoint metadata; load it with affectlab.load_model")
        spec = cls.from_meta(model.checkpoint_meta, {"BVCHW": 2}.get(model.input_layout, 1))
        if model.input_layout == "BTCHW" and not spec.clip_len:
            spec = replace(spec, clip_len=int(model.config["seq_len"]))
        return spec

    def to_extra(self) -> dict[str, Any]:
        """What a checkpoint records (``extra["crop"]``) so evaluation and analysis crop alike."""
        return {"margin": self.margin, "views": list(self.views), "image_context": self.image_context,
                "clip_len": self.clip_len, "template": self.template,
                "framing": None if self.crop_framing is None else [list(p) for p in self.crop_framing]}


def read_checkpoint_meta(path: str | PathLike[str]) -> CheckpointMeta:
    """The metadata of a checkpoint, without loading its weights."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such checkpoint file")
    try:
        header = _complete_header(path).get("__metadata__") or {}
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as e:
        raise DataError(path, f"not a safetensors file, or a corrupt one ({first_line(e)})") from None
    if KEY not in header:
        raise DataError(path, "not an affectlab checkpoint (a safetensors file without affectlab metadata)")
    try:
        document = json.loads(header[KEY])
        version = document["format_version"]
        if version <= FORMAT_VERSION:
            return CheckpointMeta.from_dict(document)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(path, f"damaged affectlab metadata ({type(e).__name__}: {e})") from None
    raise DataError(path, f"written by a newer affectlab (checkpoint format {version}); upgrade affectlab")


def read_header(path: str | PathLike[str]) -> bytes:
    """The raw safetensors header: its 8-byte length, then the JSON of tensor names, offsets and metadata."""
    with open(path, "rb") as f:
        length = f.read(8)
        if len(length) < 8:
            raise ValueError("shorter than a safetensors header")
        (n,) = struct.unpack("<Q", length)
        if n > 100_000_000:
            raise ValueError("a safetensors header that long is not one")
        body = f.read(n)
    if len(body) < n:
        raise ValueError("truncated safetensors header")
    return length + body


def _complete_header(path: Path) -> dict[str, Any]:
    """The parsed header, checked to describe the whole file (as safetensors itself checks)."""
    header = read_header(path)
    table = json.loads(header[8:])
    end = max((t["data_offsets"][1] for name, t in table.items() if name != "__metadata__"), default=0)
    if len(header) + end != path.stat().st_size:
        raise ValueError("incomplete file: the header's tensors do not cover it")
    return table


def header_digest(path: str | PathLike[str]) -> str:
    """SHA-256 of the header: names, dtypes, shapes, byte offsets and metadata. Two checkpoints with
    the same digest lay out the same model's tensors identically (a graph reading the weights from
    the file, as the bundled ONNX graph does, is right for both)."""
    return hashlib.sha256(read_header(path)).hexdigest()


def tensor_layout(path: str | PathLike[str]) -> dict[str, tuple[str, list[int], int, int]]:
    """name -> (dtype, shape, absolute byte offset, length in bytes) of each tensor in the file."""
    header = read_header(path)
    table = json.loads(header[8:])
    table.pop("__metadata__", None)
    layout = {}
    for name, t in table.items():
        start, end = t["data_offsets"]
        layout[name] = (t["dtype"], t["shape"], len(header) + start, end - start)
    return layout
