"""Training recipes: YAML files of generic pieces, checked into typed dataclasses.

A recipe composes sources (path, tasks, downsampling), a sampler (per-group quotas and balancing),
a model (registry name and config), loss terms (function and weight per task), an optimiser and
scheduler, and stages (teacher, N students, k folds, joins) — everything a paper specifies is written
in its recipe, nothing in the trainer. ``key=value`` overrides (the CLI's, and the tests') address
any value by its dotted path; list items are addressed by their ``name`` or index::

    affectlab train configs/teacher-student.yaml sources.au.path=data/disfa.csv stages.student.repeat=3

Values are parsed as YAML (``tasks=[expr,va]``, ``config.va_bins=20``, ``augment=null``); a null entry
of a named section removes it (``sources.disfa=null``, ``validation.aff-wild2=null``), and null for a
whole section that is empty by default empties it (``validation=null``: no validation). A stage's
``overrides`` are merged into the recipe for that stage only (e.g. a student sampler that uses the
shared annotations of multi-database eq. 10). Sizes and counts are checked for the impossible (zero
or negative) here, naming the key. Dataset paths are relative to ``data_root`` where the recipe gives
one (joined when the recipe is built, into new sources: nothing is rewritten later), else to the
working directory. A recipe states its format ``version``; one of another version (or none) is
refused in one line naming the version this affectlab reads. The checking engine (YAML into typed
dataclasses, overrides) is :mod:`affectlab.train.typed_yaml`.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
import yaml

from affectlab.data.sampling import BALANCE_METHODS
from affectlab.data.transforms import Augmentation
from affectlab.devices import DEFAULT_DEVICE
from affectlab.log import logger
from affectlab.models.meta import DEFAULT_MARGIN
from affectlab.train.typed_yaml import ConfigError, apply_override, build, merge

__all__ = ["ConfigError", "RECIPE_VERSION", "Recipe", "apply_override", "build_recipe", "load_recipe"]

TASKS: tuple[str, ...] = ("au", "expr", "va")
MIN_INPUT_SIZE = 16  # pixels: below this the backbones' strided layers leave nothing to look at
#: The recipe format this affectlab reads (a recipe's ``version:``).
RECIPE_VERSION = 1


def _choice(value: str, options: tuple[str, ...], what: str) -> None:
    if value not in options:
        raise ValueError(f"{what} must be one of {', '.join(options)}, got {value!r}")


def _tasks(values: list[str], what: str) -> None:
    for t in values:
        _choice(t, TASKS, what)


def _at_least(obj: object, low: float, *names: str, above: bool = False) -> None:
    """Each named number of ``obj`` is >= ``low`` (> with ``above``), or None (not given): an impossible size
    or count is refused here, with its key, not deep inside a DataLoader worker."""
    for name in names:
        value = getattr(obj, name)
        if value is not None and (value < low or (above and value == low)):
            raise ValueError(f"{name} must be {'>' if above else '>='} {low}, got {value}")


@dataclass
class Subset:
    """Part of a source by fold: rows whose ``by`` key (path, video, subject) falls in folds ``keep``
    of ``folds`` (e.g. held-out CK+ subjects: ``{by: subject, folds: 5, keep: [4]}``). ``like``: another
    dataset of the same people (a path, as a source's): keys it holds take the folds they take there
    (:func:`affectlab.data.sampling.assign_folds`), so two crops of CK+ split their subjects alike."""

    keep: list[int]
    by: str = "path"
    folds: int = 5
    seed: int = 0
    like: str | None = None

    def __post_init__(self) -> None:
        if not self.keep or not all(0 <= k < self.folds for k in self.keep):
            raise ValueError(f"keep must list folds in 0..{self.folds - 1}, got {self.keep}")


@dataclass
class Confident:
    """Keep a source's expression labels only where a finished ``stage``'s model gives the labelled class
    a probability of at least ``threshold`` (streaming §3.4: external expression data, 0.8)."""

    stage: str
    threshold: float = 0.8

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError(f"confident.threshold must lie in (0, 1), got {self.threshold}")


@dataclass
class Source:
    """A dataset by path (anything :func:`affectlab.data.read_source` reads) and the labels to use from it."""

    path: str
    images: str | None = None
    split: str | None = None
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    downsample: int = 1
    subset: Subset | None = None
    #: Tight crops without landmarks: their typical 5 points (eyes, nose tip, mouth corners) as
    #: [x, y] fractions of the image, by which they are aligned (tools/measure_framing.py).
    framing: list[list[float]] | None = None
    #: Keep VA labels only where valence and arousal both lie in [low, high] (streaming §3.4 keeps
    #: AffectNet's in [-1, -0.25]).
    va_range: list[float] | None = None
    confident: Confident | None = None
    #: Keep only frames of the videos this other training source holds and no validation source
    #: holds: an image folder of every Aff-Wild2 frame (``cropped_aligned``) then gives streaming
    #: §3.4's unlabelled frames from training videos only, never a validation (or test) frame.
    videos_of: str | None = None
    #: The same frames with their context, at the same paths relative to ``images`` (Aff-Wild2's
    #: ``cropped`` beside ``cropped_aligned``): a view with context (``data.views`` > 0) reads them
    #: whole; a frame missing there is cut from its crop by margin instead (with a one-line warning).
    context_images: str | None = None

    def __post_init__(self) -> None:
        if self.va_range is not None and not (len(self.va_range) == 2 and -1 <= self.va_range[0] < self.va_range[1] <= 1):
            raise ValueError(f"va_range is [low, high] within [-1, 1], got {self.va_range}")
        _tasks(self.tasks, "tasks")
        if self.downsample < 1:
            raise ValueError(f"downsample must be >= 1, got {self.downsample}")
        _check_framing(self.framing, "framing")


def _check_framing(framing: list[list[float]] | None, key: str) -> None:
    if framing is not None:
        points = np.asarray(framing, dtype=float)
        if points.shape != (5, 2) or not np.all((points > -1) & (points < 2)):
            raise ValueError(f"{key} is 5 [x, y] points as fractions of the image, got {framing}")


@dataclass
class Group:
    """One quota of every batch: rows of ``sources`` labelled for every task in ``require``.

    ``tasks``: the labels this group supervises (None = every label its rows have); the others are
    masked, so a group can stand for one paper task (multi-database's EXPR, VA, EXPR_VA).
    ``balance``: none, ml-ros (AUs), classes (expressions) or va-bins (20 VA bins, ML-ROS).
    """

    sources: list[str]
    quota: int
    require: list[str] = field(default_factory=list)
    tasks: list[str] | None = None
    balance: str = "none"
    ml_ros_percentage: float = 25.0

    def __post_init__(self) -> None:
        _tasks(self.require, "require")
        _tasks(self.tasks or [], "tasks")
        _choice(self.balance, BALANCE_METHODS, "balance")
        needs = {"ml-ros": "au", "classes": "expr", "va-bins": "va"}.get(self.balance)
        if needs and needs not in self.require:
            raise ValueError(f"balance {self.balance} needs require: [{needs}, ...]")
        if self.quota < 1:
            raise ValueError(f"quota must be >= 1, got {self.quota}")


@dataclass
class Data:
    """Crop policy and loading (see :mod:`affectlab.data.transforms`)."""

    input_size: int = 112
    margin: float = DEFAULT_MARGIN
    views: list[float] = field(default_factory=lambda: [0.0])
    image_context: float = 0.0
    augment: Augmentation | None = field(default_factory=Augmentation)
    workers: int = 2
    on_corrupt: Literal["skip", "fail"] = "skip"
    eval_batch_size: int = 128
    #: How ``analyze --faces crops`` frames a given face crop, stored in the checkpoint: the typical
    #: 5 points of the tight crops the recipe trains on (a source's ``framing``), so such a crop is
    #: padded out as training padded them; None: resized with the margin, as crops that carry their
    #: own margin (Aff-Wild2's ``cropped_aligned``) are.
    crop_framing: list[list[float]] | None = None
    #: The face layout faces are aligned to: ``arcface`` (the default) or ``dlib`` (dlib's face chips, the
    #: framing its face-recognition network was trained in); stored in the checkpoint for analyze.
    template: Literal["arcface", "dlib"] = "arcface"

    def __post_init__(self) -> None:
        _check_framing(self.crop_framing, "crop_framing")
        if not self.views or min(self.views) < 0:
            raise ValueError(f"views are context fractions >= 0, got {self.views}")
        _at_least(self, MIN_INPUT_SIZE, "input_size")
        _at_least(self, 0, "margin", "image_context", "workers")
        _at_least(self, 1, "eval_batch_size")


@dataclass
class ModelSpec:
    """A registered model (:func:`affectlab.models.create_model`) by name, its options, its start."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    backbone_weights: str | None = None

    def __post_init__(self) -> None:
        import affectlab.models  # noqa: F401  (registers every model)
        from affectlab.models.registry import list_models, model_options

        _choice(self.name, tuple(list_models()), "model")
        options = model_options(self.name)
        unknown = sorted(set(self.config) - set(options))
        if unknown:
            raise ValueError(f"model {self.name!r} has no option {', '.join(map(repr, unknown))}; "
                             f"options: {', '.join(options)}")


@dataclass
class LossTerm:
    """One task's supervision: a loss of :data:`affectlab.train.objective.LOSSES` and its weight.

    ``pos_weight``: P^AU of SMM eq. 4 from the training labels; ``class_weight``: P^EXPR of SMM eq. 5;
    ``soft_targets``: rows with vote distributions (FER+) learn those; ``options``: extra keyword
    arguments of the loss (e.g. ``lam`` of streaming eq. 4).
    """

    fn: str
    weight: float = 1.0
    pos_weight: bool = False
    class_weight: bool = False
    soft_targets: bool = False
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Loss:
    """``reduce: batch`` averages each task over the batch's labelled rows (SMM eq. 7 sums the tasks);
    ``reduce: group`` averages within each sampler group and sums the groups (multi-database eq. 7)."""

    terms: dict[str, LossTerm]
    reduce: Literal["batch", "group"] = "batch"

    def __post_init__(self) -> None:
        from affectlab.train.objective import LOSSES

        _tasks(list(self.terms), "loss terms")
        for task, term in self.terms.items():
            _choice(term.fn, tuple(LOSSES), f"loss of {task}")
            if LOSSES[term.fn][0] != task:
                raise ValueError(f"loss {term.fn!r} is an {LOSSES[term.fn][0]} loss, not a {task} loss")


@dataclass
class Optimizer:
    """``backbone_lr``: the pretrained trunks' own learning rate (None: ``lr``). A trunk without batch
    norm (dlib's ResNet, its statistics frozen into affine layers) loses its features at the heads' rate."""

    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    backbone_lr: float | None = None

    def __post_init__(self) -> None:
        _at_least(self, 0, "lr", above=True)
        _at_least(self, 0, "backbone_lr", above=True)
        _at_least(self, 0, "momentum", "weight_decay")


@dataclass
class Scheduler:
    """``constant``; ``cosine`` (to ``min_lr`` over the stage); ``step`` (× ``gamma`` every
    ``step_epochs``); ``cosine-restarts`` (period ``restart_epochs``, × ``t_mult`` after each restart)."""

    name: Literal["constant", "cosine", "step", "cosine-restarts"] = "constant"
    step_epochs: float = 1.0
    gamma: float = 0.1
    restart_epochs: float = 1.0
    t_mult: int = 1
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        _at_least(self, 0, "step_epochs", "gamma", "restart_epochs", above=True)
        _at_least(self, 1, "t_mult")
        _at_least(self, 0, "min_lr")


@dataclass
class Distill:
    """Students learn from a teacher stage's soft labels (teacher-student eq. 7, multi-database eqs. 8-10).

    ``teacher``: one stage, or several whose averaged outputs teach (teacher-student "Student
    Ensemble" distilled back into one model). ``teacher_outputs``: ``online`` (the teacher sees the
    student's augmented batch) or ``cached`` (computed once per image, unaugmented, and kept in memory).
    ``task_weights``: weigh each task's terms by its ``loss.terms`` weight, as the teacher's eq. 4
    does (eq. 7 as written has none: false, the default, follows it).
    """

    teacher: str | list[str]
    lam: float = 0.6
    T: float = 1.5
    teacher_outputs: Literal["online", "cached"] = "online"
    task_weights: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.lam <= 1:
            raise ValueError(f"lam must lie in [0, 1], got {self.lam}")
        _at_least(self, 0, "T", above=True)
        if not self.teachers:
            raise ValueError("distill.teacher names no stage")

    @property
    def teachers(self) -> list[str]:
        """The teacher stages, one or an ensemble."""
        return [self.teacher] if isinstance(self.teacher, str) else list(self.teacher)


@dataclass
class Rules:
    """AU→EXPR rules mined from rows labelled for both (streaming §3.4)."""

    min_support: int = 20
    min_confidence: float = 0.8


@dataclass
class PseudoLabels:
    """Streaming §3.4: labels for rows that lack them, from mined rules and/or a teacher stage's
    confident predictions (softmax or sigmoid beyond ``threshold``)."""

    rules: Rules | None = None
    teacher: str | None = None
    threshold: float = 0.8
    tasks: list[str] = field(default_factory=lambda: ["expr", "au"])

    def __post_init__(self) -> None:
        for t in self.tasks:
            _choice(t, ("expr", "au"), "pseudo-label tasks")
        if self.rules is None and self.teacher is None:
            raise ValueError("pseudo_labels needs rules, a teacher, or both")


#: The scores an early-stopping monitor may name (the ``score`` JSON's keys, see the README).
MONITOR_ROOTS: tuple[str, ...] = ("P", "P_AU", "P_EXPR", "P_VA", "P_MTL", "abaw2", "au", "expr", "va", "n")


@dataclass
class EarlyStopping:
    """Stop when the validation ``monitor`` has not improved for ``patience`` evaluations; keep the best
    weights. ``monitor``: ``P`` (the sum of the P scores present; P_MTL with all three tasks), a
    dotted key of the scores (``P_EXPR``, ``abaw2.expr``, ``va.ccc_valence``) or a sum of them."""

    patience: int = 5
    monitor: str = "P"

    def __post_init__(self) -> None:
        _at_least(self, 1, "patience")
        for term in (t.strip() for t in self.monitor.split("+")):
            if term.split(".")[0] not in MONITOR_ROOTS:
                raise ValueError(f"early_stopping.monitor: unknown score {term!r}; use P or a sum of "
                                 f"{', '.join(MONITOR_ROOTS[1:])} (dotted inside: abaw2.expr, va.ccc_valence)")


@dataclass
class Folds:
    """k-fold training (streaming §4.3.1): member i trains without fold i of the rows of ``sources``
    and validates on it; folds keep ``by`` (video, subject) together. Rows of other sources
    (external data) train every member."""

    sources: list[str]
    k: int = 5
    by: str = "video"
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("folds.sources must name the sources to split into folds")
        _at_least(self, 2, "k")


@dataclass
class Combine:
    """A model built from finished stages instead of trained: ``members`` maps a submodule of
    ``model`` to the stage whose weights it takes (ensemble-with-context: face and context nets)."""

    model: str
    members: dict[str, str]


@dataclass
class Stage:
    """A training stage of ``epochs`` (of the sampler's longest group) or ``steps`` (which win when both
    are given). ``repeat``: N independent members (students); ``folds``: k-fold members;
    ``init_from``: start from a finished stage's weights (its best member by validation P when it
    has several: "the best CNN model", teacher-student); ``cache_features``: a temporal model with a
    frozen CNN computes each frame's features once and trains its GRUs on clips of them
    (multi-database §3.3); ``overrides``: recipe changes for this stage."""

    name: str
    epochs: float | None = None
    steps: int | None = None
    repeat: int = 1
    folds: Folds | None = None
    init_from: str | None = None
    distill: Distill | None = None
    pseudo_labels: PseudoLabels | None = None
    early_stopping: EarlyStopping | None = None
    combine: Combine | None = None
    cache_features: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.combine is None and self.epochs is None and self.steps is None:
            raise ValueError(f"stage {self.name!r} needs epochs or steps")
        _at_least(self, 0, "epochs", above=True)
        _at_least(self, 1, "steps")
        if self.repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {self.repeat}")
        if self.folds is not None and self.repeat != 1:
            raise ValueError("a stage takes repeat or folds, not both")


@dataclass
class Ensemble:
    """Averaged (``mean``) or voted (``vote``, streaming §4.3.1) predictions of stages' members."""

    members: list[str]
    method: Literal["mean", "vote"] = "mean"



@dataclass
class Train:
    """Engineering: ``amp`` ``auto`` = bf16 autocast on CUDA only; ``channels_last`` ``auto`` = on for
    image models (faster on CPU and GPU alike).
    ``eval_every`` in epochs (or ``eval_every_steps``); ``checkpoint_every`` in steps."""

    device: str = DEFAULT_DEVICE
    amp: bool | str = "auto"
    channels_last: bool | str = "auto"
    eval_every: float = 1.0
    eval_every_steps: int | None = None
    checkpoint_every: int = 500
    log_every: int = 10
    progress: bool = True
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        # YAML 1.1 reads on/off as booleans
        if isinstance(self.amp, bool):
            self.amp = "bf16" if self.amp else "off"
        if isinstance(self.channels_last, bool):
            self.channels_last = "on" if self.channels_last else "off"
        _choice(self.amp, ("auto", "bf16", "off"), "amp")
        _choice(self.channels_last, ("auto", "on", "off"), "channels_last")
        _at_least(self, 1, "eval_every_steps", "checkpoint_every", "log_every")
        _at_least(self, 0, "eval_every", "grad_clip", above=True)


@dataclass
class Recipe:
    name: str
    paper: str
    sources: dict[str, Source]
    sampler: dict[str, Group]
    model: ModelSpec
    loss: Loss
    stages: list[Stage]
    seed: int = 0
    aus: Union[str, list[str]] = "abaw"
    #: The expression classes: ``abaw8`` (ABAW3+, with Other), ``basic7`` (the seven basic
    #: expressions of ABAW 2020-2021) or a list of names in ABAW order.
    expressions: Union[str, list[str]] = "abaw8"
    validation: dict[str, Source] = field(default_factory=dict)
    data: Data = field(default_factory=Data)
    optimizer: Optimizer = field(default_factory=Optimizer)
    scheduler: Scheduler = field(default_factory=Scheduler)
    train: Train = field(default_factory=Train)
    ensembles: dict[str, Ensemble] = field(default_factory=dict)
    final: str | None = None
    #: Where the sources' relative paths (and images) live; None = the working directory. Relative, it is
    #: read from the recipe file's folder (an override such as --data-root: from the working directory).
    data_root: str | None = None
    #: The recipe format (:data:`RECIPE_VERSION`).
    version: int = RECIPE_VERSION
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, metadata={"yaml": False})

    def __post_init__(self) -> None:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        for g_name, group in self.sampler.items():
            unknown = [s for s in group.sources if s not in self.sources]
            if unknown:
                raise ValueError(f"sampler group {g_name!r} names unknown sources {unknown}; "
                                 f"sources: {list(self.sources)}")
        known = set(names) | set(self.ensembles)
        if self.final is not None and self.final not in known:
            raise ValueError(f"final must name a stage or ensemble, got {self.final!r}")
        for e_name, ens in self.ensembles.items():
            bad = [m for m in ens.members if m not in names]
            if bad:
                raise ValueError(f"ensemble {e_name!r} names unknown stages {bad}")
        for i, stage in enumerate(self.stages):
            earlier = set(names[:i])
            refs = [stage.init_from, *(stage.distill.teachers if stage.distill else []),
                    stage.pseudo_labels and stage.pseudo_labels.teacher,
                    *(stage.combine.members.values() if stage.combine else [])]
            late = [r for r in refs if r and r not in earlier]
            if late:
                raise ValueError(f"stage {stage.name!r} refers to {late}, which must be earlier stages")
            teachers = [t for t in self.stages if stage.distill and t.name in stage.distill.teachers]
            for teacher in teachers if stage.cache_features else []:
                if not teacher.cache_features or teacher.init_from != stage.init_from:
                    raise ValueError(f"stage {stage.name!r} reads cached features: its teacher {teacher.name!r} "
                                     f"must cache the same CNN's (cache_features: true, init_from: {stage.init_from})")
            unknown = [s for s in (stage.folds.sources if stage.folds else []) if s not in self.sources]
            if unknown:
                raise ValueError(f"stage {stage.name!r}: folds.sources names unknown sources {unknown}; "
                                 f"sources: {list(self.sources)}")

        for s_name, src in self.sources.items():
            if src.confident and src.confident.stage not in names:
                raise ValueError(f"source {s_name!r}: confident.stage {src.confident.stage!r} is not a stage; "
                                 f"stages: {names}")

    def for_stage(self, stage: Stage) -> "Recipe":
        """This recipe with the stage's ``overrides`` merged in."""
        if not stage.overrides:
            return self
        return build_recipe(merge(copy.deepcopy(self.raw), stage.overrides), where=f"stage {stage.name}")


# --- loading -------------------------------------------------------------------------------------


def load_recipe(path: str | os.PathLike[str], overrides: list[str] = ()) -> Recipe:
    """Read a YAML recipe, apply ``key=value`` overrides, check every value; ConfigError on any problem.

    ``extends: FILE`` (relative to the recipe) starts from another recipe and merges this one's keys
    into it (sections merge, lists such as ``stages`` replace): how an ablation states only what it changes."""
    raw = _read_recipe(Path(path))
    base = raw.pop("extends", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: extends names one recipe file, got {base!r}")
        parent = _read_recipe(Path(path).parent / base)
        if "extends" in parent:
            raise ConfigError(f"{path}: extends {base}, which extends another recipe; extend the first one")
        raw = merge(parent, raw)
    for item in overrides:  # an override (--data-root) is typed in a shell: from the working directory
        apply_override(raw, item)
    recipe = build_recipe(raw, where=str(path))
    _no_early_stopping_without_validation(recipe)
    return recipe


def _no_early_stopping_without_validation(recipe: Recipe) -> None:
    """A stage that stops early on validation scores, in a recipe without validation data
    (``validation=null``), runs all its steps instead: said in one line now, not an error at its first
    evaluation. Stages with folds validate on their held-out fold and keep their early stopping."""
    for stage in recipe.stages:
        if stage.early_stopping is not None and stage.folds is None and not recipe.for_stage(stage).validation:
            logger.warning(f"stage {stage.name!r}: no validation data, so no early stopping "
                           f"(on {stage.early_stopping.monitor}): it runs all its steps")
            stage.early_stopping = None


def _read_recipe(path: Path) -> dict:
    """A recipe file's YAML mapping; ConfigError on any problem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such recipe file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read ({e})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe is a YAML mapping of keys to values")
    if isinstance(raw.get("data_root"), str):  # written in a recipe: from its folder, wherever the run starts
        raw["data_root"] = os.path.normpath(os.path.join(path.resolve().parent, os.path.expanduser(raw["data_root"])))
    return raw


def build_recipe(raw: dict, where: str = "recipe") -> Recipe:
    """A checked :class:`Recipe` from a raw dict (kept as given in ``recipe.raw``)."""
    check_version(raw, where)
    recipe = build(Recipe, with_data_root({k: v for k, v in raw.items() if k != "raw"}), where, "")
    recipe.raw = copy.deepcopy(raw)
    return recipe


def check_version(raw: dict, where: str) -> None:
    """A recipe of another format version, or of none (written before recipes had one), is refused in one line."""
    version = raw.get("version")
    if version is None:
        raise ConfigError(f"{where}: no recipe format version; this affectlab reads version {RECIPE_VERSION} "
                          f"recipes: check it against the README's Training section and add 'version: {RECIPE_VERSION}'")
    if version != RECIPE_VERSION:
        raise ConfigError(f"{where}: recipe format version {version!r}; this affectlab reads version {RECIPE_VERSION}")


def with_data_root(raw: dict) -> dict:
    """A copy of a raw recipe whose sources' ``path``, ``images``, ``context_images`` and ``subset.like`` are joined to its
    ``data_root`` (the raw recipe as given is untouched, so ``recipe.yaml`` and overrides keep it)."""
    root = raw.get("data_root")
    if root is None:
        return raw
    out = copy.deepcopy(raw)
    for section in ("sources", "validation"):
        for source in (out.get(section) or {}).values():
            if not isinstance(source, dict):
                continue  # a removed source (null), or a wrong one the checks name
            for key in ("path", "images", "context_images"):
                if isinstance(source.get(key), str):
                    source[key] = os.path.join(str(root), source[key])
            subset = source.get("subset")
            if isinstance(subset, dict) and isinstance(subset.get("like"), str):
                subset["like"] = os.path.join(str(root), subset["like"])
    return out
