"""affectlab.analyze.media: images of every kind, folders, globs, streamed videos and their failures."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from affectlab.analyze.media import expand_inputs, iter_frames, iter_video, read_image, video_info
from affectlab.errors import DataError


def test_read_image_modes(tmp_path):
    Image.new("L", (5, 4), 77).save(tmp_path / "gray.png")
    Image.new("RGBA", (5, 4), (255, 0, 0, 0)).save(tmp_path / "clear.png")  # fully transparent red -> white
    Image.new("RGBA", (5, 4), (255, 0, 0, 255)).save(tmp_path / "opaque.png")
    Image.fromarray(np.full((4, 5), 65535, dtype=np.uint16)).save(tmp_path / "deep.png")
    assert read_image(tmp_path / "gray.png").shape == (4, 5, 3) and (read_image(tmp_path / "gray.png") == 77).all()
    assert (read_image(tmp_path / "clear.png") == 255).all()
    assert read_image(tmp_path / "opaque.png")[0, 0].tolist() == [255, 0, 0]
    assert (read_image(tmp_path / "deep.png") == 255).all()


def test_read_image_applies_exif_rotation(tmp_path):
    im = Image.new("RGB", (6, 2))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    im.save(tmp_path / "rot.jpg", exif=exif)
    assert read_image(tmp_path / "rot.jpg").shape == (6, 2, 3)


def test_corrupt_and_missing_images_name_the_file(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(DataError, match="bad.jpg: cannot decode image"):
        read_image(tmp_path / "bad.jpg")
    with pytest.raises(DataError, match="no such file"):
        read_image(tmp_path / "nope.jpg")


def test_expand_inputs_folders_globs_and_errors(tmp_path, make_video):
    for name in ("b.png", "a.jpg"):
        Image.new("RGB", (2, 2)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    make_video(tmp_path / "c.mp4", n=2)
    (tmp_path / "empty").mkdir()
    files, errors = expand_inputs([tmp_path, str(tmp_path / "*.png"), tmp_path / "notes.txt", tmp_path / "missing.jpg",
                                   tmp_path / "empty", str(tmp_path / "*.gif")])
    assert [f.name for f in files] == ["a.jpg", "b.png", "c.mp4"]  # sorted, duplicates from the glob removed
    assert [str(e).split(": ", 1)[1] for e in errors] == [
        "not an image or video file (suffix '.txt')", "no such file or folder",
        "folder holds no image or video files (searched with its subfolders)",
        "pattern matches no image or video files"]


def test_folders_are_searched_into_except_hidden_and_output_folders(tmp_path):
    """A dataset keeps its classes in subfolders; the run's own output folder is not an input."""
    for name in ("happy/a.jpg", "sad/deeper/b.png", ".cache/c.png", "out/d_annotated.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (2, 2)).save(tmp_path / name)
    files, errors = expand_inputs([tmp_path], exclude=tmp_path / "out")
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["happy/a.jpg", "sad/deeper/b.png"] and not errors


def test_decompression_bomb_is_one_line(tmp_path):
    from bad_inputs import huge_png

    with pytest.raises(DataError, match="bomb.png: image too large to analyse"):
        read_image(huge_png(tmp_path / "bomb.png"))


def test_video_is_streamed_in_order_with_stride_and_timestamps(tmp_path, make_video):
    clip = make_video(tmp_path / "v.mp4", n=30, fps=10)
    frames = list(iter_video(clip, stride=7))
    assert [f.frame for f in frames] == [1, 8, 15, 22, 29]
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.7, 1.4, 2.1, 2.8])
    levels = [int(np.median(f.image)) for f in frames]
    assert levels == sorted(levels) and abs(levels[1] - 56) <= 3
    info = video_info(clip)
    assert (info.width, info.height, info.fps) == (64, 48, 10.0)


def test_image_is_one_frame(tmp_path):
    Image.new("RGB", (3, 3)).save(tmp_path / "x.png")
    (frame,) = iter_frames(tmp_path / "x.png")
    assert frame.frame == -1 and math.isnan(frame.timestamp)


@pytest.mark.parametrize("suffix", ["mp4", "mkv", "avi"])
@pytest.mark.parametrize("fraction", [0.5, 0.7])
def test_truncated_video_fails_cleanly_after_what_it_has(tmp_path, suffix, fraction, make_video):
    """mp4 written here keeps its index at the end (cut: nothing opens); mkv and avi decode up to the cut."""
    data = make_video(tmp_path / f"v.{suffix}", n=60, fps=10, size=(160, 120)).read_bytes()
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(data[: int(len(data) * fraction)])
    frames = []
    with pytest.raises(DataError) as err:
        for f in iter_video(cut):
            frames.append(f.frame)
    assert str(err.value).startswith(str(cut)) and len(str(err.value).splitlines()) == 1
    assert frames == list(range(1, len(frames) + 1)) and len(frames) < 60
    if suffix != "mp4":
        assert len(frames) > 10  # what was decodable came out before the error


def test_not_a_video(tmp_path):
    (tmp_path / "fake.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="fake.mp4: cannot open video"):
        list(iter_video(tmp_path / "fake.mp4"))


@pytest.mark.parametrize("name, frames, size", [
    ("WolfgangLanger_Pexels.mp4", 472, (640, 360)),
    ("face_noface.mov", 169, (960, 540)),  # HEVC
    ("libreface_examples/sample_disfa.avi", 20, (1024, 768)),
])
def test_real_videos_decode(shared_data, name, frames, size):
    decoded = list(iter_video(shared_data / "media" / name, stride=50))
    assert [f.frame for f in decoded] == list(range(1, frames + 1, 50))
    assert decoded[0].image.shape == (size[1], size[0], 3)


def test_real_truncated_mp4_keeps_frames(shared_data, tmp_path):
    """A camera-style mp4 (index first) cut short decodes part-way, then reports the truncation."""
    data = (shared_data / "media" / "WolfgangLanger_Pexels.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.6)])
    frames = []
    with pytest.raises(DataError, match="truncated"):
        for f in iter_video(tmp_path / "cut.mp4", stride=10):
            frames.append(f.frame)
    assert len(frames) > 20


def test_real_images(shared_data):
    media = shared_data / "media"
    assert read_image(media / "BWPictureHuman.jpg").shape == (1912, 2560, 3)
    assert read_image(media / "Image_with_alpha.png").shape[2] == 3


def test_every_real_video_decodes_whole_without_a_false_alarm(shared_data):
    """Containers that overstate their frame count (no_face.mp4 declares 98, holds 95) are not 'truncated'."""
    counts = {p.name: sum(1 for _ in iter_video(p, stride=1000)) for p in sorted((shared_data / "media").glob("*.m[op][4v]"))}
    assert counts == {"WolfgangLanger_Pexels.mp4": 1, "face_noface.mov": 1, "no_face.mp4": 1, "noface_face.mov": 1,
                      "single_face.mp4": 1}
