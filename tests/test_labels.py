"""affectlab.labels: the schema and the dataset→ABAW expression tables."""
import pytest

from affectlab import labels
from affectlab.labels import EXPR_NAMES, LabelSchema, canonical_au, openface_au, schema

ABAW_BY_NAME = {n.lower(): i for i, n in enumerate(EXPR_NAMES)}
SYNONYMS = {"happy": "happiness", "contempt": "other"}


def abaw_id(name: str) -> int:
    return ABAW_BY_NAME[SYNONYMS.get(name.lower(), name.lower())]


def test_default_schema_is_abaw():
    s = labels.DEFAULT_SCHEMA
    assert s.au_names == ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26")
    assert s.expr_names == ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
    assert (s.n_au, s.n_expr) == (12, 8)
    assert s.va_names == ("valence", "arousal")


@pytest.mark.parametrize(
    "order, table",
    [(labels.AFFECTNET_ORDER, labels.AFFECTNET_TO_ABAW), (labels.FERPLUS_ORDER, labels.FERPLUS_TO_ABAW)],
)
def test_index_orders_map_by_name(order, table):
    assert [abaw_id(n) for n in order] == list(table)
    assert sorted(table) == list(range(8))  # a permutation: nothing lost, nothing merged


def test_name_tables_map_by_name():
    for name, idx in labels.CKPLUS_TO_ABAW.items():
        assert idx == abaw_id(name)
    jaffe = {"NEU": "neutral", "ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness", "SAD": "sadness", "SUR": "surprise"}
    assert labels.JAFFE_TO_ABAW == {code: abaw_id(n) for code, n in jaffe.items()}


def test_contempt_maps_to_other():
    assert labels.AFFECTNET_TO_ABAW[7] == labels.FERPLUS_TO_ABAW[7] == labels.CKPLUS_TO_ABAW["contempt"] == 7


@pytest.mark.parametrize("raw, canon, padded", [("AU01", "AU1", "AU01"), ("au12", "AU12", "AU12"), ("AU04_c", "AU4", "AU04"), ("AU_26", "AU26", "AU26")])
def test_au_names(raw, canon, padded):
    assert canonical_au(raw) == canon
    assert openface_au(raw) == padded


def test_bad_au_name():
    with pytest.raises(ValueError, match="not an action unit"):
        canonical_au("smile")


def test_au_sets_and_custom_schema():
    assert schema("teacher-student").au_names == ("AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25")
    assert schema("bp4d").n_au == 12 and "AU17" in schema("bp4d").au_names
    assert schema(("AU01", "AU12")).au_names == ("AU1", "AU12")
    seven = schema("abaw", n_expr=7)
    assert seven.expr_names[-1] == "Surprise"
    with pytest.raises(ValueError):
        schema("nope")
    with pytest.raises(ValueError, match="duplicate"):
        LabelSchema(("AU1", "AU01"))
    with pytest.raises(ValueError, match="prefix"):
        LabelSchema(expr_names=("Anger", "Neutral"))


def test_expr_id():
    s = labels.DEFAULT_SCHEMA
    assert s.expr_id("happiness") == 4 and s.expr_id(" Other ") == 7 and s.expr_id("3") == 3 and s.expr_id(6) == 6
    with pytest.raises(ValueError):
        s.expr_id("joy")
    with pytest.raises(ValueError):
        s.expr_id(8)
    with pytest.raises(ValueError):
        schema(n_expr=7).expr_id("Other")


def test_contempt_is_other_as_the_readme_says():
    assert labels.DEFAULT_SCHEMA.expr_id("contempt") == labels.OTHER == labels.DEFAULT_SCHEMA.expr_id(" Contempt")
    with pytest.raises(ValueError, match="'contempt' is Other, which these 7 classes lack"):
        schema(n_expr=7).expr_id("contempt")


def test_schema_round_trips_through_dict():
    s = schema("teacher-student", n_expr=7)
    assert LabelSchema.from_dict(s.to_dict()) == s

