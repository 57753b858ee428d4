"""The public sets beside the checkout: FER+, AffectNet (validation subset with VA), CK+ and the
students' labels of LFW and film faces (``lfw_expressions``).

Each ``labels.csv`` names its images relative to its own folder. Dataset label orders are translated
to ABAW ids by the tables in :mod:`affectlab.labels`. Columns not translated into contract columns
(``split``, ``subject``, landmarks, ...) are kept as extra columns.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from affectlab.data._parse import (drop_missing_images, drop_rows, existing_file, read_csv_text, require,
                                   resolve_paths, to_float, to_int, typed_extras)
from affectlab.data.table import AU_COLUMN, SOFT_COLUMNS, SampleTable, build_table, select_split
from affectlab.labels import (AFFECTNET_ORDER, AFFECTNET_TO_ABAW, CKPLUS_TO_ABAW, DEFAULT_SCHEMA, FERPLUS_ORDER,
                              FERPLUS_TO_ABAW, LFW_EXPRESSIONS_TO_ABAW, LabelSchema, canonical_au)

FERPLUS_VOTES: tuple[str, ...] = tuple(f"votes_{name}" for name in FERPLUS_ORDER)
NO_EMOTION_VOTES = "no emotion votes"
NOT_A_FACE = "not a face (NF has the most votes)"
LANDMARKS: tuple[str, ...] = tuple(f"lnd_{axis}{i}" for i in range(68) for axis in ("x", "y"))


def read_ferplus(labels_csv: str | os.PathLike[str], *, split: str | None = None,
                 schema: LabelSchema = DEFAULT_SCHEMA, check_images: bool = True) -> SampleTable:
    """FER+: the raters' votes become soft targets, the majority a hard label (-1 where there is none).

    Soft targets are normalised over the 8 emotion votes (``unknown`` and ``NF`` votes ignored). Rows
    with no emotion vote, or where "not a face" has more votes than any other answer, are skipped:
    there is no expression to learn from them.
    """
    path = existing_file(labels_csv)
    raw = read_csv_text(path, ["path", "split", *FERPLUS_VOTES, "votes_unknown", "votes_NF", "majority_idx"])
    raw = select_split(raw, split, path)
    counts = {c: to_int(raw[c], path, c) for c in [*FERPLUS_VOTES, "votes_unknown", "votes_NF"]}
    for col, values in counts.items():
        require(values >= 0, path, col, raw[col], "a vote count (>= 0)")
    votes = np.column_stack([counts[c] for c in FERPLUS_VOTES])
    majority = to_int(raw["majority_idx"], path, "majority_idx")
    require((majority >= -1) & (majority < len(FERPLUS_ORDER)), path, "majority_idx", raw["majority_idx"],
            f"-1 (no majority) or an index in 0..{len(FERPLUS_ORDER) - 1}")
    total = votes.sum(axis=1)
    soft = np.empty(votes.shape)
    soft[:, list(FERPLUS_TO_ABAW)] = votes / np.maximum(total, 1)[:, None]
    frame = pd.DataFrame({"path": resolve_paths(path.parent, raw["path"]), "source": "ferplus",
                          "expr": np.where(majority >= 0, np.asarray(FERPLUS_TO_ABAW)[majority], -1),
                          **dict(zip(SOFT_COLUMNS, soft.T))})
    translated = ["path", *FERPLUS_VOTES, "majority_idx", "majority_label"]
    frame = frame.join(typed_extras(raw.drop(columns=translated, errors="ignore")))
    skipped: dict[str, int] = {}
    no_votes = total == 0
    nf_most = counts["votes_NF"] > np.maximum(votes.max(axis=1), counts["votes_unknown"])
    frame = drop_rows(frame, no_votes, NO_EMOTION_VOTES, skipped)
    frame = drop_rows(frame, nf_most[~no_votes], NOT_A_FACE, skipped)
    return build_table(drop_missing_images(frame, skipped) if check_images else frame, schema, skipped)


def read_affectnet(labels_csv: str | os.PathLike[str], *, schema: LabelSchema = DEFAULT_SCHEMA,
                   check_images: bool = True) -> SampleTable:
    """AffectNet: ``expression_idx`` (AffectNet order, contempt -> Other), valence, arousal, 68 landmarks."""
    path = existing_file(labels_csv)
    raw = read_csv_text(path, ["path", "expression_idx", "valence", "arousal", *LANDMARKS])
    idx = to_int(raw["expression_idx"], path, "expression_idx")
    require((idx >= 0) & (idx < len(AFFECTNET_ORDER)), path, "expression_idx", raw["expression_idx"],
            f"an AffectNet expression index in 0..{len(AFFECTNET_ORDER) - 1}")
    va = {c: to_float(raw[c], path, c) for c in ("valence", "arousal")}
    for col, values in va.items():
        require(np.isnan(values) | ((values >= -1) & (values <= 1)), path, col, raw[col], "in [-1, 1]")
    frame = pd.DataFrame({"path": resolve_paths(path.parent, raw["path"]), "source": "affectnet",
                          "expr": np.asarray(AFFECTNET_TO_ABAW)[idx], **va,
                          **{c: to_float(raw[c], path, c) for c in LANDMARKS}})
    translated = ["path", "expression_idx", "expression", "valence", "arousal", *LANDMARKS]
    frame = frame.join(typed_extras(raw.drop(columns=translated, errors="ignore")))
    skipped: dict[str, int] = {}
    return build_table(drop_missing_images(frame, skipped) if check_images else frame, schema, skipped)


def read_ckplus(labels_csv: str | os.PathLike[str], *, schema: LabelSchema = DEFAULT_SCHEMA,
                check_images: bool = True) -> SampleTable:
    """CK+ (either crop): binary AU columns, expression names, ``video`` = sequence, ``frame`` = frame.

    Schema AUs the file lacks stay NaN (missing), never 0: absence of a column is not absence of the AU.
    """
    path = existing_file(labels_csv)
    raw = read_csv_text(path, ["path", "subject", "sequence", "frame", "expression"])
    au_columns = [c for c in raw.columns if AU_COLUMN.match(c)]
    aus = {canonical_au(c): to_int(raw[c], path, c).astype(np.float64) for c in au_columns}
    for col, values in zip(au_columns, aus.values()):
        require(np.isin(values, (0, 1)), path, col, raw[col], "0 or 1")
    names = raw["expression"].str.lower()
    require(names.isin(list(CKPLUS_TO_ABAW)).to_numpy(), path, "expression", raw["expression"],
            f"a CK+ expression ({', '.join(CKPLUS_TO_ABAW)})")
    frame_no = to_int(raw["frame"], path, "frame")
    require(frame_no >= 1, path, "frame", raw["frame"], "a frame number (>= 1)")
    frame = pd.DataFrame({"path": resolve_paths(path.parent, raw["path"]), "source": "ckplus",
                          "video": raw["sequence"], "frame": frame_no,
                          "expr": names.map(CKPLUS_TO_ABAW).to_numpy(dtype=np.int64), **aus})
    translated = ["path", "sequence", "frame", "expression", *au_columns]
    frame = frame.join(typed_extras(raw.drop(columns=translated)))
    skipped: dict[str, int] = {}
    return build_table(drop_missing_images(frame, skipped) if check_images else frame, schema, skipped)


#: The columns that make a labels.csv the ``lfw_expressions`` set.
LFW_EXPRESSIONS_COLUMNS: tuple[str, ...] = ("path", "expression", "person", "labeller", "kind")


def read_lfw_expressions(labels_csv: str | os.PathLike[str], *, split: str | None = None,
                         schema: LabelSchema = DEFAULT_SCHEMA, check_images: bool = True) -> SampleTable:
    """LFW and film faces labelled by students (noisy; mostly neutral and happy): expression names
    (contempt -> Other), ``kind`` (``lfw`` or ``film``) as the ``split`` to select, and ``subject``:
    the LFW person, or the image itself for a film face whose person is not named, so that a split by
    subject never puts one person's photos on both sides.
    """
    path = existing_file(labels_csv)
    raw = select_split(read_csv_text(path, list(LFW_EXPRESSIONS_COLUMNS)).rename(columns={"kind": "split"}),
                       split, path)
    names = raw["expression"].str.strip().str.lower()
    require(names.isin(list(LFW_EXPRESSIONS_TO_ABAW)).to_numpy(), path, "expression", raw["expression"],
            f"an expression name ({', '.join(LFW_EXPRESSIONS_TO_ABAW)})")
    person = raw["person"].str.strip()
    frame = pd.DataFrame({"path": resolve_paths(path.parent, raw["path"]), "source": "lfw_expressions",
                          "expr": names.map(LFW_EXPRESSIONS_TO_ABAW).to_numpy(dtype=np.int64),
                          "subject": person.where(person != "", "image:" + raw["path"]).to_numpy()})
    frame = frame.join(typed_extras(raw.drop(columns=["path", "expression", "person"])))
    skipped: dict[str, int] = {}
    return build_table(drop_missing_images(frame, skipped) if check_images else frame, schema, skipped)
