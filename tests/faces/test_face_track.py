"""Face tracking on synthetic boxes: stable ids, ends and starts, crossings; following faces on video."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from affectlab.faces import MTCNN, Detections, FaceTracker, box_iou, follow

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


def test_last_boxes_are_the_faces_of_the_previous_frame() -> None:
    tracker = FaceTracker()
    a, b = [10, 10, 90, 110], [300, 10, 380, 110]
    assert tracker.last_boxes().shape == (0, 4)
    tracker.update(detections([a, b]))
    np.testing.assert_array_equal(tracker.last_boxes(), [a, b])
    faces = tracker.update(detections([[14, 12, 94, 112]]), detected=False)
    assert not faces[0].detected
    np.testing.assert_array_equal(tracker.last_boxes(), [[14, 12, 94, 112]])  # b was not seen on this frame


class StubDetector:
    """Records which stage ran; ``refine`` loses the faces listed in ``lose`` (by frame)."""

    def __init__(self, boxes: list[list[float]], lose: set[int]):
        self.boxes, self.lose, self.calls, self.frame = boxes, lose, [], -1

    def detect(self, image: np.ndarray) -> Detections:
        self.calls.append("detect")
        return detections(self.boxes)

    def refine(self, image: np.ndarray, boxes: np.ndarray) -> Detections:
        self.calls.append("refine")
        return detections(boxes[1:] if self.frame in self.lose else boxes)


def test_follow_refines_between_detections_and_detects_again_when_a_face_is_lost() -> None:
    detector, tracker = StubDetector([[10, 10, 90, 110], [300, 10, 380, 110]], lose={4}), FaceTracker()
    ids = []
    for frame in range(8):
        detector.frame = frame
        faces = follow(detector, tracker, np.zeros((4, 4, 3), np.uint8), detect=frame % 3 == 0)
        ids.append(sorted(f.face_id for f in faces))
    assert detector.calls == ["detect", "refine", "refine", "detect", "refine", "detect",  # frame 4: lost, detected
                              "refine", "detect", "refine"]
    assert ids == [[0, 1]] * 8  # the same two people throughout


def test_follow_without_faces_waits_for_the_schedule() -> None:
    detector, tracker = StubDetector([], lose=set()), FaceTracker()
    for frame in range(4):
        assert follow(detector, tracker, np.zeros((4, 4, 3), np.uint8), detect=frame % 3 == 0) == []
    assert detector.calls == ["detect", "refine", "refine", "detect"]  # refining nothing costs nothing


def test_real_video_one_face_one_id(detector: MTCNN, shared_data: Path) -> None:
    """single_face.mp4 (72 frames, 640x360), detecting every 3rd frame and refining between: one id on
    every frame, within a few pixels of detecting every frame."""
    tracker, every_frame, seen, error = FaceTracker(), FaceTracker(), [], []
    with av.open(str(shared_data / "media" / "single_face.mp4")) as video:
        for i, frame in enumerate(video.decode(video=0)):
            image = frame.to_ndarray(format="rgb24")
            faces = follow(detector, tracker, image, detect=i % 3 == 0)
            seen.append([(f.face_id, f.detected) for f in faces])
            reference = every_frame.update(detector.detect(image))
            error.append(np.linalg.norm(faces[0].landmarks - reference[0].landmarks, axis=1).mean())
    assert len(seen) == 72
    assert all(faces == [(0, i % 3 == 0)] for i, faces in enumerate(seen))
    assert np.mean(error) < 3 and np.max(error) < 8  # pixels; the face is ~110 px wide
