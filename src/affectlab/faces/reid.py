"""Re-identification: a person who leaves the frame, is occluded or is cut away from keeps their
``face_id`` when they come back, and (``People``) one ``person_id`` across the inputs of a call.

The tracker (affectlab.faces.track) follows faces by their boxes; each of its tracks belongs to an
identity here. A view of a face (its dlib chip) is kept when its track starts, every ``every``
frames while it lives, and when the tracker takes it up again after frames without it (the box it
kept may hold someone else by then: two people crossing; a face then ``threshold`` or farther from
its identity starts over as a new track). Views are described (affectlab.faces.descriptor: dlib's,
128-D) only when a comparison needs them, so a video of one person never runs the network. A new
track whose descriptor lies within ``threshold`` of a lost identity's (the nearest of its stored
descriptors; dlib's 0.6 by default) joins that identity and takes its ``face_id``; the identity's
old tracks are ended, and an identity seen in the current frame is never a candidate, so two faces
seen at the same time never share an id. A face too small or too blurred for a descriptor
(``describable``) keeps the new id its track got: never merged on a guess.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from affectlab.errors import AffectlabError
from affectlab.faces.descriptor import SAME_PERSON, FaceDescriptor, chips, describable
from affectlab.faces.track import FaceTracker, TrackedFace

#: ``off``: box tracking alone; ``video``: ids kept within each video; ``across``: and a person_id across inputs.
REID_MODES = ("off", "video", "across")
#: Frames (kept frames of a video) between two views kept of a live track: new views of a face for its
#: identity's gallery (a chip each; described when a comparison needs them).
DESCRIBE_EVERY = 30
#: Views an identity keeps: its first and the latest ones.
GALLERY = 8


def check_threshold(threshold: float) -> float:
    """The re-identification distance threshold, refused outside (0, 2) (descriptors lie within 2 of each other
    in practice: dlib's 0.6 separates one person from another)."""
    if not 0 < threshold < 2:
        raise AffectlabError(f"the re-identification threshold must lie in (0, 2) (dlib's is {SAME_PERSON}), "
                             f"got {threshold}")
    return float(threshold)


def greedy_pairs(distance: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(row, column) pairs by increasing distance below ``threshold``, each row and column used once:
    the nearest match goes first, so a face never takes an identity a nearer face matches."""
    pairs: list[tuple[int, int]] = []
    if distance.size == 0:
        return pairs
    rows, cols = set(), set()
    for flat in np.argsort(distance, axis=None):
        r, c = divmod(int(flat), distance.shape[1])
        if distance[r, c] >= threshold:
            break
        if r not in rows and c not in cols:
            pairs.append((r, c))
            rows.add(r)
            cols.add(c)
    return pairs


@dataclass
class Gallery:
    """The views of one identity, its first and the latest ``GALLERY - 1``: descriptors, and chips not
    described yet (:meth:`resolve` describes them when a comparison needs them)."""

    descriptors: list[np.ndarray] = field(default_factory=list)
    chips: list[np.ndarray] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.descriptors or self.chips)

    def add(self, descriptor: np.ndarray | None = None, chip: np.ndarray | None = None) -> None:
        """One view: its descriptor, or its chip to describe later; beyond GALLERY views the second oldest goes."""
        if descriptor is not None:
            self.descriptors.append(descriptor)
        else:
            self.chips.append(chip)
        if len(self.descriptors) + len(self.chips) > GALLERY:  # chips are newer than every descriptor
            del (self.descriptors if len(self.descriptors) > 1 else self.chips)[1 if len(self.descriptors) != 1 else 0]

    def resolve(self, describe: FaceDescriptor) -> None:
        """Describe the chips waiting for it, in one batch."""
        if self.chips:
            self.descriptors += list(describe(np.stack(self.chips)))
            self.chips = []

    def distance(self, descriptors: np.ndarray) -> np.ndarray:
        """(N,) distance of each descriptor to the nearest of this gallery's (inf without descriptors)."""
        if not self.descriptors:
            return np.full(len(descriptors), np.inf)
        own = np.stack(self.descriptors)
        return np.linalg.norm(descriptors[:, None] - own[None], axis=2).min(axis=1)


def distances(galleries: list[Gallery], descriptors: np.ndarray) -> np.ndarray:
    """(N, len(galleries)) distances; rows of NaN descriptors (not describable) are inf."""
    out = np.full((len(descriptors), len(galleries)), np.inf)
    ok = ~np.isnan(descriptors).any(axis=1)
    for j, gallery in enumerate(galleries):
        out[ok, j] = gallery.distance(descriptors[ok])
    return out


class People:
    """Persons across the inputs of one call (``--reid across``): a ``person_id`` per identity of a
    video or face of an image, the same for one person in every input."""

    def __init__(self, threshold: float = SAME_PERSON):
        self.threshold = check_threshold(threshold)
        self.galleries: list[Gallery] = []

    def assign(self, descriptors: np.ndarray, seen: set[int] = frozenset()) -> list[int]:
        """A person_id for each of faces seen together (N, 128; NaN rows: not describable, each a new
        person); never one of ``seen`` (persons in the same frame), never one for two of them."""
        candidates = [p for p in range(len(self.galleries)) if p not in seen]
        d = distances([self.galleries[p] for p in candidates], descriptors)
        ids = [-1] * len(descriptors)
        for r, c in greedy_pairs(d, self.threshold):
            ids[r] = candidates[c]
        for r in range(len(ids)):
            if ids[r] < 0:
                ids[r] = len(self.galleries)
                self.galleries.append(Gallery())
        for r, descriptor in enumerate(descriptors):
            self.add(ids[r], descriptor)
        return ids

    def add(self, person_id: int, descriptor: np.ndarray) -> None:
        if not np.isnan(descriptor).any():
            self.galleries[person_id].add(descriptor)


@dataclass
class _Identity:
    face_id: int
    gallery: Gallery = field(default_factory=Gallery)
    tracks: set[int] = field(default_factory=set)
    person_id: int = -1


class ReIdentifier:
    """Turns the tracker's box-track ids into identities' face_ids, frame by frame (:meth:`assign`).

    ``people``: also give each identity a person_id from the call's persons (``--reid across``)."""

    def __init__(self, describe: FaceDescriptor, threshold: float = SAME_PERSON, every: int = DESCRIBE_EVERY,
                 people: People | None = None):
        self.describe, self.threshold, self.every, self.people = describe, check_threshold(threshold), every, people
        self._identities: list[_Identity] = []
        self._of_track: dict[int, _Identity] = {}
        self._described: dict[int, int] = {}  # track -> frame of its last descriptor attempt
        self._seen: dict[int, int] = {}  # track -> the last frame it was in
        self._frame = -1

    def person_of(self, face_id: int) -> int:
        """The person_id of an identity (-1 without ``people``)."""
        return self._identities[face_id].person_id

    def assign(self, image: np.ndarray, faces: list[TrackedFace], tracker: FaceTracker) -> list[TrackedFace]:
        """This frame's faces with their identities' face_ids; ``faces`` are ``tracker``'s of ``image``.

        A view (chip) is taken when a track starts, on schedule and on resumption; the network runs
        only where a comparison needs it (a new face while other people have been seen, a resumed
        track, ``people``), so a video of one person never runs it."""
        self._frame += 1
        new = [f for f in faces if f.face_id not in self._of_track]
        # taken up again after frames without it: the box tracker guessed (someone else may have walked
        # into the box it kept), so the face is checked against its identity
        resumed = {f.face_id for f in faces if f.face_id in self._of_track and self._frame - self._seen[f.face_id] > 1}
        due = [f for f in faces if f.face_id in self._of_track
               and (f.face_id in resumed or self._frame - self._described[f.face_id] >= self.every)]
        for f in faces:
            self._seen[f.face_id] = self._frame
        if not new and not due:
            return self._named(faces)
        batch = [*new, *due]
        landmarks = np.stack([f.landmarks for f in batch])
        face_chips = chips(image, landmarks)
        ok = describable(landmarks, face_chips)
        others = any(i.gallery for i in self._identities)
        needed = ok & np.array([self.people is not None or (k < len(new) and others)
                                or (f.face_id in resumed and bool(self._of_track[f.face_id].gallery))
                                for k, f in enumerate(batch)])
        descriptors = np.full((len(batch), 128), np.nan, np.float32)
        if needed.any():
            descriptors[needed] = self.describe(face_chips[needed])
        views = [(face_chips[k] if ok[k] else None, descriptors[k]) for k in range(len(batch))]
        for f in batch:
            self._described[f.face_id] = self._frame
        fresh, kept = list(zip(new, views[:len(new)])), []
        for f, view in zip(due, views[len(new):]):
            identity = self._of_track[f.face_id]
            if f.face_id in resumed and not np.isnan(view[1]).any() and identity.gallery:
                identity.gallery.resolve(self.describe)
                if identity.gallery.distance(view[1][None])[0] >= self.threshold:
                    identity.tracks.discard(f.face_id)  # another person: the track starts over
                    del self._of_track[f.face_id]
                    fresh.append((f, view))
                    continue
            kept.append((f, view))
        seen = {self._of_track[f.face_id].face_id for f in faces if f.face_id in self._of_track}
        if fresh:
            self._join([f for f, _ in fresh], [v for _, v in fresh], seen, tracker)
        for f, view in kept:
            self._remember(self._of_track[f.face_id], view)
        return self._named(faces)

    def _named(self, faces: list[TrackedFace]) -> list[TrackedFace]:
        return [replace(f, face_id=self._of_track[f.face_id].face_id) for f in faces]

    def _join(self, new: list[TrackedFace], views: list[tuple[np.ndarray | None, np.ndarray]], seen: set[int],
              tracker: FaceTracker) -> None:
        """Each new track joins the nearest lost identity within the threshold, or starts its own."""
        descriptors = np.stack([d for _, d in views])
        lost = [i for i in self._identities if i.face_id not in seen and i.gallery]
        if lost and not np.isnan(descriptors).all():
            for identity in lost:
                identity.gallery.resolve(self.describe)
        matched = dict(greedy_pairs(distances([i.gallery for i in lost], descriptors), self.threshold))
        fresh: list[int] = []
        for r, face in enumerate(new):
            if r in matched:
                identity = lost[matched[r]]
                tracker.end(identity.tracks)  # an old track must not come back beside the new one
                identity.tracks = set()
            else:
                identity = _Identity(len(self._identities))
                self._identities.append(identity)
                fresh.append(r)
            identity.tracks.add(face.face_id)
            self._of_track[face.face_id] = identity
            self._remember(identity, views[r], to_person=False)
        if self.people is None:
            return
        for r in matched:
            self.people.add(self._of_track[new[r].face_id].person_id, descriptors[r])
        if fresh:  # persons in this frame are taken
            present = {self._identities[i].person_id for i in seen} | {lost[c].person_id for c in matched.values()}
            persons = self.people.assign(descriptors[fresh], present)
            for r, person in zip(fresh, persons):
                self._of_track[new[r].face_id].person_id = person

    def _remember(self, identity: _Identity, view: tuple[np.ndarray | None, np.ndarray], to_person: bool = True) -> None:
        """Keep a view of a describable face: its descriptor where one was computed, else its chip."""
        chip, descriptor = view
        if chip is None:
            return
        described = not np.isnan(descriptor).any()
        identity.gallery.add(descriptor if described else None, None if described else chip)
        if to_person and described and self.people is not None:
            self.people.add(identity.person_id, descriptor)
