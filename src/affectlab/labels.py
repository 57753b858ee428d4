"""The label schema: which AUs, which expression classes and VA, and how other datasets map to them.

Everything downstream (heads, losses, metrics, writers) takes its sizes and names from a
:class:`LabelSchema`. Expression ids are always ABAW ids (0 Neutral ... 7 Other); other datasets'
orders are translated by the tables below. Contempt has no ABAW class of its own and maps to Other.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

#: The 12 AUs of the ABAW AU challenge (Aff-Wild2), the default.
AU_ABAW: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26")
#: The 8 AUs of the teacher-student paper (§3, "FAU prediction").
AU_TEACHER_STUDENT: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25")
#: BP4D's 12 AUs (prior-aided streaming paper, §4.1 "External Dataset").
AU_BP4D: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23", "AU24")

AU_SETS: dict[str, tuple[str, ...]] = {"abaw": AU_ABAW, "teacher-student": AU_TEACHER_STUDENT, "bp4d": AU_BP4D}

#: The 8 expression classes in ABAW order; the index is the expression id.
EXPR_NAMES: tuple[str, ...] = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
OTHER = EXPR_NAMES.index("Other")
#: Expression names (lower case) -> ABAW id, as label files write them; contempt, which has no ABAW class, is Other.
EXPR_IDS: dict[str, int] = {**{name.lower(): i for i, name in enumerate(EXPR_NAMES)}, "contempt": OTHER}
VA_NAMES: tuple[str, ...] = ("valence", "arousal")

# --- other datasets' expression orders, as ABAW ids (position = the dataset's index) ----------
#: AffectNet ``expression_idx``: neutral, happiness, sadness, surprise, fear, disgust, anger, contempt.
AFFECTNET_ORDER: tuple[str, ...] = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt")
AFFECTNET_TO_ABAW: tuple[int, ...] = (0, 4, 5, 6, 3, 2, 1, OTHER)
#: FER+ vote columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt.
FERPLUS_ORDER: tuple[str, ...] = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
FERPLUS_TO_ABAW: tuple[int, ...] = (0, 4, 6, 5, 1, 2, 3, OTHER)
#: CK+ emotion names (as in the CK+ folder names and label files).
CKPLUS_TO_ABAW: dict[str, int] = {
    "neutral": 0, "anger": 1, "contempt": OTHER, "disgust": 2, "fear": 3, "happy": 4, "sadness": 5, "surprise": 6,
}
#: The expression names of ``lfw_expressions/labels.csv`` (students' labels of LFW and film faces).
LFW_EXPRESSIONS_TO_ABAW: dict[str, int] = {
    "neutral": 0, "anger": 1, "disgust": 2, "fear": 3, "happiness": 4, "sadness": 5, "surprise": 6, "contempt": OTHER,
}
#: JAFFE's three-letter codes.
JAFFE_TO_ABAW: dict[str, int] = {"NEU": 0, "ANG": 1, "DIS": 2, "FEA": 3, "HAP": 4, "SAD": 5, "SUR": 6}

_AU_RE = re.compile(r"^AU_?0*(\d+)(?:_[a-z])?$", re.IGNORECASE)


def canonical_au(name: str) -> str:
    """``'AU01'``, ``'au1'``, ``'AU01_c'`` -> ``'AU1'``; raises ValueError for anything else."""
    m = _AU_RE.match(name.strip())
    if not m:
        raise ValueError(f"not an action unit name: {name!r}")
    return f"AU{int(m.group(1))}"


def openface_au(name: str) -> str:
    """``'AU1'`` -> ``'AU01'``: the zero-padded names of OpenFace-style result columns."""
    return f"AU{int(canonical_au(name)[2:]):02d}"


@dataclass(frozen=True)
class LabelSchema:
    """The label space of a model or dataset: AU names, expression names (ABAW order) and VA."""

    au_names: tuple[str, ...] = AU_ABAW
    expr_names: tuple[str, ...] = EXPR_NAMES
    va_names: tuple[str, ...] = field(default=VA_NAMES)

    def __post_init__(self) -> None:
        object.__setattr__(self, "au_names", tuple(canonical_au(a) for a in self.au_names))
        object.__setattr__(self, "expr_names", tuple(self.expr_names))
        object.__setattr__(self, "va_names", tuple(self.va_names))
        if len(set(self.au_names)) != len(self.au_names):
            raise ValueError(f"duplicate AU names in {self.au_names}")
        if tuple(self.expr_names) != EXPR_NAMES[: len(self.expr_names)]:
            raise ValueError(f"expression names must be a prefix of the ABAW order {EXPR_NAMES}, got {self.expr_names}")

    @property
    def n_au(self) -> int:
        return len(self.au_names)

    @property
    def n_expr(self) -> int:
        return len(self.expr_names)

    def expr_id(self, value: str | int) -> int:
        """An ABAW expression name (any case; contempt, which has no ABAW class, is Other) or id -> id;
        ValueError when outside this schema."""
        if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
            idx = EXPR_IDS.get(value.strip().lower())
            if idx is None:
                raise ValueError(f"unknown expression {value!r}; expected one of {', '.join(self.expr_names)}")
            if idx >= self.n_expr:
                raise ValueError(f"expression {value!r} is {EXPR_NAMES[idx]}, which these {self.n_expr} classes lack")
            return idx
        idx = int(value)
        if not 0 <= idx < self.n_expr:
            raise ValueError(f"expression id {idx} outside 0..{self.n_expr - 1}")
        return idx

    def to_dict(self) -> dict[str, Any]:
        return {"au_names": list(self.au_names), "expr_names": list(self.expr_names), "va_names": list(self.va_names)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LabelSchema":
        return cls(tuple(d["au_names"]), tuple(d["expr_names"]), tuple(d.get("va_names", VA_NAMES)))


#: VA as classes (teacher-student §3.1, eq. 3): [-1, 1] discretised into 20 bins of equal width.
N_VA_BINS = 20


def va_bin_centers(n_bins: int = N_VA_BINS) -> tuple[float, ...]:
    """Centres of the ``n_bins`` equal-width bins over [-1, 1]: -1 + (2k + 1) / n_bins."""
    return tuple(-1 + (2 * k + 1) / n_bins for k in range(n_bins))


#: Named expression sets: ABAW3+'s eight classes, and the seven basic ones (no Other).
EXPR_SETS: dict[str, tuple[str, ...]] = {"abaw8": EXPR_NAMES, "basic7": EXPR_NAMES[:OTHER]}


def expression_names(expressions: str | Sequence[str]) -> tuple[str, ...]:
    """The class names of an expression set (``abaw8``, ``basic7``) or of a list of names, which must
    be a prefix of the ABAW order so that class ids mean the same everywhere."""
    if isinstance(expressions, str):
        if expressions not in EXPR_SETS:
            raise ValueError(f"unknown expression set {expressions!r}; known: {', '.join(EXPR_SETS)} or a list")
        return EXPR_SETS[expressions]
    names = tuple(expressions)
    if not names or names != EXPR_NAMES[: len(names)]:
        raise ValueError(f"an expression list must be a prefix of the ABAW order {list(EXPR_NAMES)}, got {list(names)}")
    return names


def schema(aus: str | tuple[str, ...] = "abaw", n_expr: int = len(EXPR_NAMES)) -> LabelSchema:
    """A schema from an AU set name (``abaw``, ``teacher-student``, ``bp4d``) or explicit AU names."""
    if isinstance(aus, str):
        if aus not in AU_SETS:
            raise ValueError(f"unknown AU set {aus!r}; known: {', '.join(AU_SETS)}")
        aus = AU_SETS[aus]
    return LabelSchema(tuple(aus), EXPR_NAMES[:n_expr])


DEFAULT_SCHEMA = LabelSchema()
