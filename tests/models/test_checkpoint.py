"""affectlab.models.checkpoint: self-contained safetensors files and clean load errors."""
from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch
from safetensors import safe_open

from affectlab import __version__
from affectlab.errors import AffectlabError, DataError
from affectlab.faces.align import ARCFACE_112
from affectlab.labels import schema
from affectlab.models import (
    align_template,
    create_model,
    list_models,
    load_model,
    read_checkpoint_meta,
    save_checkpoint,
)

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def outputs(p) -> dict[str, torch.Tensor]:
    fields = {"au": p.au, "expr": p.expr, "va": p.va, **({"va_bins": p.va_bins} if p.va_bins is not None else {})}
    return {**fields, **p.features}


@pytest.mark.parametrize("name", list_models())
def test_round_trip_gives_identical_outputs(name, small_model, calibrate, tmp_path):
    model, x = small_model(name)
    calibrate(model, x)  # non-default BatchNorm statistics, so buffers must round-trip too
    path = save_checkpoint(model, tmp_path / f"{name}.safetensors", input_size=x.shape[-1], **IMAGENET)
    loaded = load_model(path)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.config == model.config and loaded.schema == model.schema
    with torch.no_grad():
        before, after = outputs(model(x)), outputs(loaded(x))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_metadata_makes_the_file_self_contained(tmp_path):
    model = create_model("mtl-baseline", schema("teacher-student", n_expr=7), va_bins=20)
    path = save_checkpoint(model, tmp_path / "sub" / "m.safetensors", input_size=112, extra={"epoch": 3}, **IMAGENET)
    meta = read_checkpoint_meta(path)
    assert meta.model == "mtl-baseline" and meta.config == model.config
    assert meta.schema == model.schema and meta.input_size == 112
    assert meta.mean == IMAGENET["mean"] and meta.std == IMAGENET["std"]
    assert meta.align_template == tuple(map(tuple, ARCFACE_112.tolist()))  # the default template, at 112 px unscaled
    assert meta.affectlab_version == __version__ and meta.extra == {"epoch": 3}
    assert load_model(path).checkpoint_meta == meta
    assert not list(tmp_path.glob("sub/*.partial"))


def test_default_template_scales_with_the_input():
    assert align_template(224)[0] == pytest.approx([2 * ARCFACE_112[0, 0] + 0.5, 2 * ARCFACE_112[0, 1] + 0.5])


@pytest.mark.parametrize("kwargs, message", [
    ({"input_size": 0}, "input_size must be a positive number"),
    ({"mean": (0.5, 0.5)}, "mean and std must be 3"),
    ({"std": (0.2, 0.0, 0.2)}, "mean and std must be 3"),
    ({"align_template": [(1, 2)] * 4}, "align_template must be 5"),
    ({"extra": {"when": object()}}, "extra must be JSON-serialisable"),
])
def test_save_refuses_bad_metadata(kwargs, message, tmp_path):
    args = {"input_size": 64, **IMAGENET, **kwargs}
    with pytest.raises(AffectlabError, match=message):
        save_checkpoint(create_model("streaming"), tmp_path / "m.safetensors", **args)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "streaming.safetensors"
    return save_checkpoint(create_model("streaming"), path, input_size=64, **IMAGENET)


def rewrite(saved, path, edit) -> None:
    """Copy ``saved`` to ``path`` with its affectlab metadata document changed by ``edit``."""
    with safe_open(str(saved), framework="pt") as f:
        document = json.loads(f.metadata()["affectlab"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    edit(document)
    safetensors.torch.save_file(tensors, str(path), metadata={"affectlab": json.dumps(document)})


def load_error(path, **kwargs) -> str:
    with pytest.raises(DataError) as e:
        load_model(path, **kwargs)
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def test_missing_file(tmp_path):
    assert "no such checkpoint file" in load_error(tmp_path / "absent.safetensors")


def test_corrupt_and_truncated_files(saved, tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"this is not a model at all")
    assert "not a safetensors file" in load_error(garbage)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    assert "not a safetensors file" in load_error(truncated)


def test_plain_safetensors_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(path))
    assert "not an affectlab checkpoint" in load_error(path)


def test_schema_mismatch(saved):
    assert "label schema mismatch: its AUs are AU1, AU2, AU4" in load_error(saved, schema=schema("teacher-student"))
    assert load_model(saved, schema=schema("abaw")).schema == schema("abaw")


def test_weights_that_do_not_fit_the_config(saved, tmp_path):
    path = tmp_path / "m.safetensors"
    rewrite(saved, path, lambda d: d["config"].update(hidden=32))
    assert "weights do not fit model 'streaming': size mismatch" in load_error(path)


def test_a_checkpoint_with_a_tensor_missing_names_it(saved, tmp_path):
    import bad_inputs as bad

    path = bad.checkpoint_without_a_tensor(saved, tmp_path / "m.safetensors")
    first = sorted(safe_open(str(saved), "pt").keys())[0]
    assert f"weights do not fit model 'streaming': 1 missing (first: ['{first}'])" in load_error(path)


def test_an_exception_without_a_message_still_gives_one_line(saved, monkeypatch):
    """Some libraries raise with an empty message; the line names the exception's type instead."""
    from affectlab.models import meta

    def fail(path):
        raise OSError()

    monkeypatch.setattr(meta, "_complete_header", fail)
    assert "not a safetensors file, or a corrupt one (OSError)" in load_error(saved)


def test_unknown_model_name_or_config(saved, tmp_path):
    path = tmp_path / "m.safetensors"
    rewrite(saved, path, lambda d: d.update(model="resnet-9000"))
    assert "cannot rebuild the model: unknown model 'resnet-9000'" in load_error(path)
    rewrite(saved, path, lambda d: d["config"].update(layers=3))
    assert "cannot rebuild the model: model 'streaming' has no option 'layers'" in load_error(path)
    rewrite(saved, path, lambda d: d.update(config=[1, 2]))
    assert "cannot rebuild the model" in load_error(path)


def test_damaged_metadata_and_newer_format(saved, tmp_path):
    path = tmp_path / "m.safetensors"
    rewrite(saved, path, lambda d: d.pop("schema"))
    assert "damaged affectlab metadata" in load_error(path)
    rewrite(saved, path, lambda d: d.update(format_version=99))
    assert "written by a newer affectlab (checkpoint format 99)" in load_error(path)


def test_a_config_of_an_impossible_size_is_one_line(saved, tmp_path):
    """A damaged config whose values have the right type but no possible size (torch's RuntimeError)."""
    path = tmp_path / "m.safetensors"
    rewrite(saved, path, lambda d: d["config"].update(hidden=-2))
    assert "cannot rebuild the model" in load_error(path)


def test_checkpoints_are_written_with_the_usual_file_mode(tmp_path):
    """Safetensors writes 0600; a checkpoint is as readable as the other files of a run (umask)."""
    import os

    old = os.umask(0o022)
    try:
        path = save_checkpoint(create_model("mtl-baseline", backbone="mobilenet_v2"), tmp_path / "m.safetensors",
                               input_size=32, **IMAGENET)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
