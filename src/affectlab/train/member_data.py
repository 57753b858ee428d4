"""A member's data: its training rows (minus a held-out fold, expression labels a finished model is
unsure of masked: streaming §3.4), its pseudo labels, its validation tables and scores, and the
frame features a temporal stage caches. Tables are read once per run and shared between members."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from affectlab.data.table import soft_columns
from affectlab.inference.batch import collect_outputs, evaluate, frame_features
from affectlab.inference.outputs import expr_probabilities
from affectlab.labels import LabelSchema
from affectlab.models import AffectModel
from affectlab.models.meta import InputSpec
from affectlab.scoring import score_tables
from affectlab.train import data as tdata
from affectlab.train.config import ConfigError, Confident, Recipe
from affectlab.train.dist import use_amp
from affectlab.train.members import Member
from affectlab.train.pseudo import apply_rules, mine_au_expr_rules, teacher_labels
from affectlab.train.run_folder import RunFolder


class MemberData:
    """The tables each member trains and is validated on, in the run's label schema."""

    def __init__(self, recipe: Recipe, schema: LabelSchema, device: torch.device, folder: RunFolder):
        self.recipe, self.schema, self.device, self.folder = recipe, schema, device, folder
        self.cache: tdata.TableCache = {}
        self._rows: dict[str, tdata.SourceTables] = {}  # each member's training rows, once

    def training_rows(self, member: Member) -> tdata.SourceTables:
        """The member's training rows: its recipe's sources, minus its held-out fold, with the
        expression labels of ``confident`` sources kept where a finished model is sure of them."""
        if member.name not in self._rows:
            self._rows[member.name] = self._read_training_rows(member)
        return self._rows[member.name]

    def _read_training_rows(self, member: Member) -> tdata.SourceTables:
        tables = tdata.read_sources(member.recipe.sources, self.schema, self.cache)
        for name, source in member.recipe.sources.items():
            if source.videos_of is not None:
                tables = self._training_videos_only(member, tables, name, source.videos_of)
        for name, source in member.recipe.sources.items():
            if source.confident is not None:
                tables = self._keep_confident(member, tables, name, source.confident)
        if member.fold is None:
            return tables
        keep = tdata.fold_of_rows(tables, member.stage.folds) != member.fold
        return tdata.SourceTables(tables.samples[keep].reset_index(drop=True), tables.names[keep], tables.skipped)

    def _training_videos_only(self, member: Member, tables: tdata.SourceTables, name: str,
                              videos_of: str) -> tdata.SourceTables:
        """Source ``name``'s rows of the videos training source ``videos_of`` holds, none of a video a
        validation source holds (streaming §3.4: unlabelled frames of training videos only)."""
        if videos_of not in member.recipe.sources or videos_of == name:
            raise ConfigError(f"source {name!r}: videos_of names {videos_of!r}, which is not another training "
                              f"source of stage {member.stage.name!r}")
        own = tables.names == name
        video = tables.samples["video"].astype(str).to_numpy()
        validation = set().union(*(tdata.read_one(src, self.schema, self.cache).samples["video"].astype(str)
                                   for src in member.recipe.validation.values()))
        training = set(video[tables.names == videos_of]) - validation - {""}
        drop = own & ~np.isin(video, list(training))
        self.folder.metrics.log(member.stage.name, member.name, 0, {f"filter/{name}_not_training_video": float(drop.sum())})
        return tdata.SourceTables(tables.samples[~drop].reset_index(drop=True), tables.names[~drop], tables.skipped)

    def _keep_confident(self, member: Member, tables: tdata.SourceTables, name: str,
                        spec: Confident) -> tdata.SourceTables:
        """Streaming §3.4: a source's expression labels where ``spec.stage``'s model gives the labelled
        class at least ``spec.threshold`` ("images that achieve a high confidence on the original
        Aff-Wild2-trained model"); the others masked."""
        if spec.stage not in self.folder.finished_stages():
            raise ConfigError(f"source {name!r} is filtered by stage {spec.stage!r}'s model, which stage "
                              f"{member.stage.name!r} comes before")
        rows = np.flatnonzero((tables.names == name) & (tables.samples["expr"].to_numpy() >= 0))
        if len(rows) == 0:
            return tables
        sub = tables.samples.iloc[rows]
        probs = expr_probabilities(self.outputs(self.folder.stage_model(spec.stage, self.schema, self.device), sub, member.recipe)["expr"])
        unsure = probs[np.arange(len(rows)), sub["expr"].to_numpy()] < spec.threshold
        samples = tables.samples.copy()
        samples.loc[samples.index[rows[unsure]], "expr"] = -1
        soft = [c for c in soft_columns(self.schema) if c in samples]
        samples.loc[samples.index[rows[unsure]], soft] = np.nan
        self.folder.metrics.log(member.stage.name, member.name, 0, {f"filter/{name}_expr_kept": float((~unsure).sum()),
                                                             f"filter/{name}_expr_masked": float(unsure.sum())})
        return tdata.SourceTables(samples, tables.names, tables.skipped)

    def training_data(self, member: Member) -> tdata.SourceTables:
        """The member's training rows with pseudo labels where its stage adds them."""
        tables = self.training_rows(member)
        if member.stage.pseudo_labels is not None:
            tables = self._pseudo_label(member, tables)
        return tables

    def validation_tables(self, recipe: Recipe, members: Sequence[Member]) -> dict[str, pd.DataFrame]:
        """The validation tables of model(s) trained as ``members``: a fold member's own held-out fold,
        and the recipe's validation sources without any row a fold member trained on (k-fold trains
        on the Aff-Wild2 validation videos; an ensemble's fold members together may have seen every
        row). Other members train on their recipe's training sources, which validation is kept apart
        from by the recipe (an Aff-Wild2 frame may train one task and validate another)."""
        tables = {name: tdata.read_one(src, self.schema, self.cache).samples for name, src in recipe.validation.items()}
        seen = set().union(*(self.training_rows(m).samples["path"] for m in members if m.fold is not None))
        if len(members) == 1 and members[0].fold is not None:
            fold = self.held_out(members[0])
            seen |= set(fold["path"])  # each row scored once: in the fold's table, not again in a validation table
            tables[f"fold{members[0].fold}"] = fold
        tables = {k: v if k.startswith("fold") else v[~v["path"].isin(seen)].reset_index(drop=True)
                  for k, v in tables.items()}
        return {k: v for k, v in tables.items() if len(v)}

    def held_out(self, member: Member) -> pd.DataFrame:
        """A fold member's held-out rows: its fold of the rows of the sources its stage splits."""
        all_rows = tdata.read_sources(member.recipe.sources, self.schema, self.cache)
        held_out = tdata.fold_of_rows(all_rows, member.stage.folds) == member.fold
        return all_rows.samples[held_out].reset_index(drop=True)

    def _pseudo_label(self, member: Member, tables: tdata.SourceTables) -> tdata.SourceTables:
        """Streaming §3.4: fill missing labels from mined AU→EXPR rules and a confident teacher."""
        spec = member.stage.pseudo_labels
        samples, names = tables.samples, tables.names
        labelled = np.zeros(len(samples), dtype=bool)
        for task in ("au", "expr", "va"):
            labelled |= tdata.labelled(samples, self.schema, task)
        # a folder of every frame (unlabelled source) repeats the labelled ones: those keep their own labels
        repeat = ~labelled & samples["path"].isin(set(samples["path"][labelled])).to_numpy()
        samples, names = samples[~repeat].reset_index(drop=True), names[~repeat]
        added: dict[str, float] = {"pseudo/unlabelled_rows": float((~labelled).sum() - repeat.sum())}
        if spec.rules is not None:
            rules = mine_au_expr_rules(samples, self.schema, spec.rules.min_support, spec.rules.min_confidence)
            samples, n = apply_rules(samples, self.schema, rules)
            added.update({"pseudo/rules": float(len(rules)), "pseudo/expr_from_rules": float(n)})
        if spec.teacher is not None:
            teacher = self.folder.stage_model(spec.teacher, self.schema, self.device)
            outputs = self.outputs(teacher, samples, member.recipe)
            samples, counts = teacher_labels(samples, self.schema, outputs["au"], outputs["expr"], spec.threshold,
                                             tuple(spec.tasks))
            added.update({f"pseudo/{k}_from_teacher": float(v) for k, v in counts.items()})
        self.folder.metrics.log(member.stage.name, member.name, 0, added)
        return tdata.SourceTables(samples, names, tables.skipped)

    def outputs(self, model: AffectModel, samples: pd.DataFrame, recipe: Recipe,
                progress: str | None = None) -> dict[str, np.ndarray]:
        """A finished model's raw outputs on every row (teacher soft labels, pseudo labels); ``progress``:
        a bar of that name on stderr where the recipe shows progress (a pass over a large table takes minutes)."""
        return collect_outputs(model, samples, InputSpec.of(model), batch_size=recipe.data.eval_batch_size,
                               workers=recipe.data.workers, device=self.device, autocast=use_amp(recipe, self.device),
                               progress=progress if recipe.train.progress else None)

    def cached_features(self, member: Member, model: AffectModel, samples: pd.DataFrame,
                        spec: InputSpec) -> np.ndarray:
        """Each row's frame features from the member's frozen CNN, once per frame (``cache_features``)."""
        if not hasattr(model, "frame_features") or not model.config.get("freeze_backbone", False):
            raise ConfigError(f"stage {member.stage.name!r}: cache_features needs a temporal model with a "
                              f"frozen CNN (cnn-rnn, freeze_backbone: true), not {model.model_name!r}")
        return frame_features(model, samples, spec, batch_size=member.recipe.data.eval_batch_size,
                              workers=member.recipe.data.workers, device=self.device, autocast=use_amp(member.recipe, self.device))

    def validate(self, models: list[AffectModel], recipe: Recipe, members: Sequence[Member], method: str = "mean",
                  spec: InputSpec | None = None, frames: dict[str, np.ndarray] | None = None) -> dict:
        """Scores per validation source and, with several sources, for all of them together (``all``),
        on rows none of ``members`` (the models' training) saw.

        ``spec``: the input of a model in training (checkpoints carry their own); ``frames``: each
        table's cached frame features (``cache_features``)."""
        tables = self.validation_tables(recipe, members)
        out, preds, labels = {}, [], []
        for name, samples in tables.items():
            ev = evaluate(models, samples, method=method, batch_size=recipe.data.eval_batch_size,
                          workers=recipe.data.workers, device=self.device, autocast=use_amp(recipe, self.device), spec=spec,
                          frames=frames and frames[name])
            out[name] = ev.scores
            preds.append(ev.predictions[ev.readable])
            labels.append(samples[ev.readable])
        if len(tables) > 1:
            out["all"] = score_tables(pd.concat(preds, ignore_index=True), pd.concat(labels, ignore_index=True),
                                      self.schema)
        return out
