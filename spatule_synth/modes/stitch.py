"""Detections of the tiles of a photo, put back on the photo (``--mode=evaluate`` of a ``--tile_size``
convert run): shift each tile's boxes by the tile's origin, clip them to the photo, and merge the
duplicates that overlapping tiles make of one object.

Boxes follow `spatule_synth.core.boxes`: float pixel edges ``xmin, ymin, xmax, ymax``.

**Merging (`merge_tiles`).** Greedy non-maximum *merging* per class, highest score first (ties: the
larger box first), as SAHI merges sliced predictions: a box that duplicates a kept box of the same
class *from another tile* (their intersection covers at least ``threshold`` of the smaller box:
IoS, "intersection over smaller") is not kept, and the kept box grows to the union of the two (its
score stays the highest). Why IoS: an object cut by a tile edge is detected twice, whole in one
tile and in part in the next; the part lies inside the whole box (IoS 1) while its IoU is its
visible share, which may be anything. Why the union: the part may score higher than the whole;
suppressing the whole would leave the part, a box of the wrong size (a miss and a false positive).
Why only across tiles: inside one tile the detector has already run its own NMS, so two boxes it
kept there are two objects; re-suppressing them would change what it said. The result is that a
photo made of a single tile gets exactly the detector's own output.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np

MERGE_THRESHOLD = 0.5  # IoS above which boxes of one class from two tiles are one object


@dataclasses.dataclass(frozen=True)
class Detections:
    """Boxes (N, 4) in pixels, scores (N,), label-map class ids (N,), and the tile each came from
    (N,; all 0 for a whole image)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    tiles: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", np.asarray(self.boxes, np.float64).reshape(-1, 4))
        object.__setattr__(self, "scores", np.asarray(self.scores, np.float64).reshape(-1))
        object.__setattr__(self, "classes", np.asarray(self.classes, np.int64).reshape(-1))
        tiles = np.zeros(len(self.scores), np.int64) if self.tiles is None else self.tiles
        object.__setattr__(self, "tiles", np.asarray(tiles, np.int64).reshape(-1))
        if not len(self.boxes) == len(self.scores) == len(self.classes) == len(self.tiles):
            raise ValueError(f"{len(self.boxes)} boxes, {len(self.scores)} scores, "
                             f"{len(self.classes)} classes: one of each per detection")

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))

    def take(self, index) -> Detections:
        """The detections at ``index`` (an index array or a boolean mask), in that order."""
        return Detections(self.boxes[index], self.scores[index], self.classes[index], self.tiles[index])

    @classmethod
    def concatenate(cls, parts: Iterable[Detections]) -> Detections:
        parts = list(parts)
        if not parts:
            return cls.empty()
        return cls(np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]),
                   np.concatenate([p.classes for p in parts]), np.concatenate([p.tiles for p in parts]))


def areas(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def intersections(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection area of ``box`` (4,) with each of ``boxes`` (N, 4)."""
    width = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    height = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    return np.clip(width, 0, None) * np.clip(height, 0, None)


def on_photo(detections: Detections, x: int, y: int, width: int, height: int, tile: int) -> Detections:
    """A tile's detections (in the tile's frame) in the frame of its ``width`` x ``height`` photo,
    the tile's top-left corner being at ``(x, y)``: shifted, clipped to the photo (a tile of a small
    photo is padded beyond it), boxes left without area dropped; each marked as from ``tile``."""
    boxes = detections.boxes + np.array([x, y, x, y], np.float64)
    boxes = np.clip(boxes, 0, [width, height, width, height])
    kept = areas(boxes) > 0
    return Detections(boxes[kept], detections.scores[kept], detections.classes[kept],
                      np.full(int(kept.sum()), tile, np.int64))


def merge_tiles(detections: Detections, threshold: float = MERGE_THRESHOLD) -> Detections:
    """`Detections` of several tiles of one photo with cross-tile duplicates merged into the
    highest-scoring one (see the module docstring); sorted by score, highest first."""
    area = areas(detections.boxes)
    order = np.lexsort((-area, -detections.scores))  # score descending, then area descending
    kept: list[int] = []
    merged: dict[int, np.ndarray] = {}  # kept index -> its box grown by the duplicates it absorbed
    for index in order:
        same = [k for k in kept if detections.classes[k] == detections.classes[index]
                and detections.tiles[k] != detections.tiles[index]]
        if same:
            inter = intersections(detections.boxes[index], detections.boxes[same])
            smaller = np.minimum(area[index], area[same])
            ios = np.divide(inter, smaller, out=np.ones_like(inter), where=smaller > 0)
            duplicated = [k for k, hit in zip(same, ios >= threshold) if hit]
            if duplicated:
                box, other = merged[duplicated[0]], detections.boxes[index]
                merged[duplicated[0]] = np.concatenate([np.minimum(box[:2], other[:2]), np.maximum(box[2:], other[2:])])
                continue
        kept.append(int(index))
        merged[int(index)] = detections.boxes[index].copy()
    result = detections.take(np.asarray(kept, np.int64))
    if kept:
        result = dataclasses.replace(result, boxes=np.stack([merged[k] for k in kept]))
    return result
