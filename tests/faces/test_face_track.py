"""Face tracking on synthetic boxes: stable ids, ends and starts, crossings, detect-every-k."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from affectlab.faces import MTCNN, Detections, FaceTracker, box_iou

# 5 points inside a unit box: eyes, nose, mouth corners
_UNIT_LANDMARKS = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]])


def detections(boxes: list[list[float]], landmarks: np.ndarray | None = None) -> Detections:
    boxes = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    if landmarks is None:
        landmarks = boxes[:, None, :2] + _UNIT_LANDMARKS * (boxes[:, None, 2:] - boxes[:, None, :2])
    return Detections(boxes, np.full(len(boxes), 0.99, dtype=np.float32), landmarks.astype(np.float32))


def ids_by_box(faces) -> dict[tuple[float, ...], int]:
    return {tuple(np.round(f.box, 3)): f.face_id for f in faces}


def test_moving_faces_keep_their_ids() -> None:
    tracker = FaceTracker()
    starts = np.array([[0, 0, 80, 100], [200, 50, 260, 125], [400, 300, 500, 420]], dtype=float)
    velocity = np.array([6, 2, 6, 2])[None] * [[1], [-1], [0.5]]
    first = [f.face_id for f in tracker.update(detections(starts))]
    assert len(set(first)) == 3
    for t in range(1, 30):
        order = np.random.default_rng(t).permutation(3)  # the detector's order carries no identity
        faces = tracker.update(detections(starts[order] + t * velocity[order]))
        assert [f.face_id for f in faces] == [first[i] for i in order]
        assert all(f.detected for f in faces)


def test_face_leaving_and_new_face_entering_get_distinct_ids() -> None:
    tracker = FaceTracker(max_missed=3)
    a, b = [10, 10, 90, 110], [300, 10, 380, 110]
    (first,) = tracker.update(detections([a]))
    for _ in range(3):
        assert tracker.update(detections([])) == []
    (back,) = tracker.update(detections([a]))  # missed 3 frames: still the same face
    assert back.face_id == first.face_id
    for _ in range(4):
        tracker.update(detections([]))
    again, newcomer = tracker.update(detections([a, b]))  # missed 4 > 3 frames: the track ended
    assert len({first.face_id, again.face_id, newcomer.face_id}) == 3


def test_crossing_faces_keep_ids_while_iou_tells_them_apart() -> None:
    """Two faces pass each other with partly overlapping boxes; at every frame each box overlaps
    its own previous position more than the other face's."""
    tracker = FaceTracker()
    left, right = np.array([0, 0, 100, 100.0]), np.array([300, 40, 400, 140.0])
    step = np.array([15, 0, 15, 0])
    faces = tracker.update(detections([left, right]))
    id_left, id_right = faces[0].face_id, faces[1].face_id
    overlapped = False
    for t in range(1, 21):
        a, b = left + t * step, right - t * step
        overlapped |= box_iou(a, b)[0, 0] > 0.2
        faces = tracker.update(detections([b, a]))
        assert [f.face_id for f in faces] == [id_right, id_left]
    assert overlapped


def test_landmarks_break_an_iou_tie() -> None:
    tracker = FaceTracker()
    (face,) = tracker.update(detections([[100, 100, 200, 200]]))
    shifted_left, shifted_right = [90, 100, 190, 200], [110, 100, 210, 200]  # equal IoU with the track
    landmarks = np.stack([face.landmarks + [40, 0], face.landmarks])  # the right one's points stayed put
    other, same = tracker.update(detections([shifted_left, shifted_right], landmarks))
    assert same.face_id == face.face_id and other.face_id != face.face_id


def test_detect_every_k_frames_carries_faces_in_between() -> None:
    k, tracker = 3, FaceTracker(max_missed=4)
    a, b = [10, 10, 90, 110], [300, 10, 380, 110]
    found = ids_by_box(tracker.update(detections([a, b])))
    for _ in range(k - 1):
        carried = tracker.update(None)
        assert ids_by_box(carried) == found and not any(f.detected for f in carried)
    faces = tracker.update(detections([[14, 12, 94, 112]]))  # b not found on this detection frame
    assert [f.face_id for f in faces] == [found[tuple(map(float, a))]]
    carried = tracker.update(None)  # only what the last detection saw is carried
    assert [(f.face_id, f.detected) for f in carried] == [(faces[0].face_id, False)]
    np.testing.assert_array_equal(carried[0].box, faces[0].box)
    np.testing.assert_array_equal(carried[0].landmarks, faces[0].landmarks)
    tracker.update(None)
    back = tracker.update(detections([b]))  # missed frames 1-5: more than max_missed
    assert back[0].face_id not in found.values()


def test_real_video_one_face_one_id(detector: MTCNN, shared_data: Path) -> None:
    """single_face.mp4 (72 frames, 640x360), detecting every 3rd frame: one id on every frame."""
    tracker, seen = FaceTracker(), []
    with av.open(str(shared_data / "media" / "single_face.mp4")) as video:
        for i, frame in enumerate(video.decode(video=0)):
            found = detector.detect(frame.to_ndarray(format="rgb24")) if i % 3 == 0 else None
            seen.append([(f.face_id, f.detected) for f in tracker.update(found)])
    assert len(seen) == 72
    assert all(faces == [(0, i % 3 == 0)] for i, faces in enumerate(seen))
