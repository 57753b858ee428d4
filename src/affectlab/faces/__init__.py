"""Faces in images and video: MTCNN detection with 5 landmarks, 5-point alignment, tracking.

    detector = MTCNN()
    faces = detector.detect(rgb_uint8)                     # Detections: boxes, scores, landmarks
    crop = align_face(rgb_uint8, faces.landmarks[0])       # 112x112, ARCFACE_112 layout
    tracker = FaceTracker()
    for i, frame in enumerate(frames):                     # detect every 6th frame, refine between
        tracked = follow(detector, tracker, frame, detect=i % 6 == 0)
"""
from affectlab.faces.align import (
    ARCFACE_112,
    align_face,
    apply_transform,
    landmarks68_to_5,
    scale_template,
    similarity_transform,
)
from affectlab.faces.mtcnn import MTCNN, Detections
from affectlab.faces.track import FaceTracker, TrackedFace, box_iou, follow

__all__ = [
    "ARCFACE_112",
    "MTCNN",
    "Detections",
    "FaceTracker",
    "TrackedFace",
    "align_face",
    "apply_transform",
    "box_iou",
    "follow",
    "landmarks68_to_5",
    "scale_template",
    "similarity_transform",
]
