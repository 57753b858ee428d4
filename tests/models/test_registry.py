"""affectlab.models.registry: names, options and clear errors."""
from __future__ import annotations

import pytest

from affectlab.errors import AffectlabError
from affectlab.models import AffectModel, create_model, list_models, model_options, register_model
from affectlab.models.registry import get_model_class


def test_registered_names():
    assert list_models() == ["cnn-rnn", "context", "context-ensemble", "mss", "mtl-baseline", "smm", "streaming"]
    assert all(get_model_class(n).model_name == n for n in list_models())


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(AffectlabError, match="unknown model 'smn'; known: cnn-rnn, context, .*, streaming"):
        create_model("smn")


def test_unknown_option_lists_the_options():
    with pytest.raises(AffectlabError, match="model 'smm' has no option 'hiden'; options: backbone, U, H, D"):
        create_model("smm", hiden=3)


def test_options_and_defaults():
    assert model_options("smm")["U"] == 17 and model_options("smm")["D"] == 16
    assert model_options("context-ensemble") == model_options("context")
    assert model_options("cnn-rnn")["seq_len"] == 32


def test_config_rebuilds_the_same_architecture():
    model = create_model("streaming", backbone="mobilenet_v2", hidden=32)
    again = create_model(model.model_name, model.schema, **model.config)
    assert again.config == model.config
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_a_name_registers_once():
    with pytest.raises(ValueError, match="registered twice"):
        register_model("smm")(type("Other", (AffectModel,), {}))
