"""Re-identification in a video (affectlab.faces.reid) on videos composed from real faces: the sample
media's people and LFW's (tests/reid_clips.py), detection on every frame of tiny clips."""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
from reid_clips import (
    LEFT,
    MEDIA,
    RIGHT,
    SCENES,
    face_photo,
    hold,
    ids_by_person,
    track,
    video_person,
)

from affectlab.analyze.media import read_image
from affectlab.errors import AffectlabError
from affectlab.faces.descriptor import FaceDescriptor
from affectlab.faces.reid import GALLERY, Gallery, People, check_threshold, greedy_pairs


@pytest.fixture(scope="module")
def describe() -> FaceDescriptor:
    return FaceDescriptor()


@pytest.fixture(scope="module")
def people(detector) -> dict[str, list[np.ndarray]]:
    """Photos of three people of the sample media: A (two moments of single_face.mp4), B (of the other
    video), C (a face of multi_face.jpg)."""
    return {"A": video_person(detector, "single_face.mp4", [0, 60]),
            "B": video_person(detector, "WolfgangLanger_Pexels.mp4", [0, 300]),
            "C": [face_photo(detector, read_image(MEDIA / "multi_face.jpg"), 1)]}


@pytest.fixture(scope="module")
def lfw_people(detector, shared_data) -> dict[str, list[np.ndarray]]:
    """Two LFW people, two different photos of each."""
    root = shared_data / "lfw_expressions"
    labels = pd.read_csv(root / "labels.csv")
    labels = labels[(labels["kind"] == "lfw") & labels["person"].notna()]
    counts = labels["person"].value_counts()
    chosen = sorted(counts[counts >= 3].index)[:2]
    return {name: [face_photo(detector, read_image(root / p))
                   for p in labels.loc[labels["person"] == person, "path"].head(2)]
            for name, person in zip("AB", chosen)}


@pytest.mark.parametrize("scene", SCENES)
def test_each_person_keeps_one_id_in_composed_videos(detector, describe, people, scene):
    frames = SCENES[scene](people["A"], people["B"] if scene != "mirrored return" else people["C"])
    ids = ids_by_person(track(detector, describe, frames), frames)
    assert all(len(v) == 1 for v in ids.values()) and len(set.union(*ids.values())) == len(ids), ids
    without = ids_by_person(track(detector, describe, frames, reid=False), frames)
    assert len(without["A"]) > 1  # box tracking alone gives the returning person a new id


@pytest.mark.parametrize("scene", ["leave and return", "cut"])
def test_lfw_people_keep_one_id_across_different_photos(detector, describe, lfw_people, scene):
    frames = SCENES[scene](lfw_people["A"], lfw_people["B"])
    ids = ids_by_person(track(detector, describe, frames), frames)
    assert all(len(v) == 1 for v in ids.values()) and len(set.union(*ids.values())) == len(ids), ids


def test_two_faces_seen_together_never_share_an_id(detector, describe, people):
    """The same person twice in one frame (two photos side by side), after being seen alone: one of
    the two may take the earlier id, never both."""
    a0, a1 = people["A"]
    frames = hold("A", a0, LEFT, 2) + [[("A", a0, LEFT), ("A", a1, RIGHT)]] * 2
    found = track(detector, describe, frames)
    assert all(len({i for i, _ in faces}) == len(faces) for faces in found) and len(found[-1]) == 2


def test_a_blurred_or_tiny_return_keeps_its_new_id(detector, describe, people):
    """Too blurred or too small for a descriptor: never merged on a guess."""
    a0, a1 = people["A"]
    blurred = cv2.GaussianBlur(a1, (0, 0), 3)
    tiny = np.full_like(a1, 128)
    tiny[32:64, 32:64] = cv2.resize(a1, (32, 32), interpolation=cv2.INTER_AREA)  # eye distance about 7 px
    for returning in (blurred, tiny):
        frames = hold("A", a0, LEFT, 2) + [[]] * 12 + hold("A", returning, RIGHT, 2)
        ids = ids_by_person(track(detector, describe, frames), frames)
        assert len(ids["A"]) == 2, ids


def test_greedy_pairs_take_the_nearest_first_and_each_once():
    d = np.array([[0.5, 0.3], [0.2, 0.9], [0.1, 0.7]])
    assert greedy_pairs(d, 0.6) == [(2, 0), (0, 1)]
    assert greedy_pairs(d, 0.15) == [(2, 0)] and greedy_pairs(np.zeros((0, 3)), 0.6) == []


def test_a_gallery_keeps_its_first_and_latest_descriptors():
    gallery = Gallery()
    for k in range(GALLERY + 3):
        gallery.add(np.full(128, float(k), np.float32))
    kept = [int(d[0]) for d in gallery.descriptors]
    assert kept == [0, *range(4, GALLERY + 3)] and len(kept) == GALLERY
    assert gallery.distance(np.zeros((1, 128), np.float32))[0] == 0 and Gallery().distance(np.zeros((1, 128)))[0] == np.inf


def test_people_never_merge_faces_seen_together_or_without_descriptors():
    people, x = People(), np.zeros((1, 128), np.float32)
    assert people.assign(x) == [0]
    assert people.assign(np.concatenate([x, x + 0.01])) == [0, 1]  # together: one of them only is person 0
    assert people.assign(x, seen={0, 1}) == [2]  # persons 0 and 1 are in this frame: another person
    assert people.assign(np.full((1, 128), np.nan, np.float32)) == [3]  # not described: a new person
    assert people.assign(x + 1.0) == [4]  # sqrt(128) away


@pytest.mark.parametrize("threshold", [0, 2, -1, 3.5, float("nan")])
def test_a_threshold_outside_0_2_is_one_line(threshold):
    with pytest.raises(AffectlabError, match=r"must lie in \(0, 2\)") as e:
        check_threshold(threshold)
    assert "\n" not in str(e.value)


def test_a_face_first_seen_blurred_keeps_its_id_when_its_track_resumes(detector, describe, people):
    """No descriptor at its start, so nothing to check it against when the tracker takes it up again
    after a missed frame: it stays who the box tracker says, and its sharp view is remembered."""
    a0 = people["A"][0]
    blurred = cv2.GaussianBlur(a0, (0, 0), 3)
    frames = hold("A", blurred, LEFT, 2) + [[]] + hold("A", a0, LEFT, 2)
    ids = ids_by_person(track(detector, describe, frames), frames)
    assert ids == {"A": {0}}


def test_one_person_alone_never_runs_the_network(detector, people):
    """Views are kept as chips and described only when there is someone to compare with."""
    class Counting(FaceDescriptor):
        calls = 0

        def __call__(self, face_chips):
            Counting.calls += len(face_chips)
            return super().__call__(face_chips)

    describe = Counting()
    a0, a1 = people["A"]
    alone = hold("A", a0, LEFT, 40)
    track(detector, describe, alone)
    assert Counting.calls == 0 and describe._session is None  # not even loaded
    frames = alone + [[]] * 12 + hold("A", a1, RIGHT, 2)
    assert ids_by_person(track(detector, describe, frames), frames) == {"A": {0}}
    assert Counting.calls == 1 + 2  # the returning face, then the two views kept of the first (start, frame 30)
