import pytest

from affectlab.data import read_source, source_kind
from affectlab.errors import DataError

AU_ZERO = ",".join(["0"] * 12)


@pytest.mark.parametrize("folder, kind, n_rows", [
    ("ferplus", "ferplus", 32134), ("affectnet", "affectnet", 2399),
    ("ckplus", "ckplus", 732), ("ckplus_second_crop", "ckplus", 648), ("lfw_expressions", "lfw_expressions", 13682),
])
def test_public_sets_by_folder_or_file(shared_data, folder, kind, n_rows):
    assert source_kind(shared_data / folder) == kind == source_kind(shared_data / folder / "labels.csv")
    table = read_source(shared_data / folder)
    assert len(table) == n_rows and set(table.samples["source"]) == {kind}


def test_ferplus_split_through_read_source(shared_data):
    assert len(read_source(shared_data / "ferplus", split="valid")) == 3578


def test_abaw_mtl_and_manifest(abaw, lines, image, tmp_path):
    abaw.annotate("VA_Estimation_Challenge", "v", ["0.1,0.2", "0.3,0.4"], split="Validation_Set")
    abaw.frames("v", [1])
    assert source_kind(abaw.annotations) == "abaw"
    table = read_source(abaw.annotations, images=abaw.images, split="validation")
    assert len(table) == 1 and table.skipped == {"image file missing": 1}

    mtl = lines(tmp_path / "train.txt", ["image,valence,arousal,expression,aus", f"v/00001.jpg,0,0,1,{AU_ZERO}"])
    assert source_kind(mtl) == "abaw-mtl"
    assert read_source(mtl, images=abaw.images).samples["expr"].tolist() == [1]

    image(tmp_path / "x.jpg")
    manifest = lines(tmp_path / "mine.csv", ["path,expression,split", "x.jpg,fear,a", "x.jpg,sadness,b"])
    assert source_kind(manifest) == "manifest"
    assert read_source(manifest, split="b").samples["expr"].tolist() == [5]
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "labels.csv").write_text(manifest.read_text().replace("x.jpg", "../x.jpg"))
    assert len(read_source(tmp_path / "folder")) == 2


def test_unrecognised_or_misused_sources(tmp_path, lines):
    with pytest.raises(DataError, match="no such file or folder"):
        read_source(tmp_path / "absent.csv")
    other = lines(tmp_path / "other.csv", ["file,label", "a.jpg,1"])
    with pytest.raises(DataError, match="expected an ABAW annotation folder .* manifest with a 'path' column") as err:
        read_source(other)
    assert err.value.path == str(other)
    with pytest.raises(DataError, match="not a recognised source folder"):
        read_source(tmp_path)
    ckplus = lines(tmp_path / "ck" / "labels.csv", ["path,subject,sequence,frame,expression,au_source,AU1"])
    assert source_kind(ckplus.parent) == "ckplus"
    with pytest.raises(DataError, match="leave images out"):
        read_source(ckplus, images=tmp_path)
    with pytest.raises(DataError, match="without splits"):
        read_source(ckplus, split="train")


@pytest.mark.parametrize("name", ["ckplus", "affectnet", "ferplus"])
def test_a_saved_sample_table_reads_back_as_itself(shared_data, tmp_path, name):
    """A table written with to_csv is a manifest, even when it keeps a public set's extra columns."""
    table = read_source(shared_data / name).samples.head(30)
    table.to_csv(tmp_path / "table.csv", index=False)
    assert source_kind(tmp_path / "table.csv") == "manifest"
    again = read_source(tmp_path / "table.csv").samples
    assert again["path"].tolist() == table["path"].tolist() and again["expr"].tolist() == table["expr"].tolist()
