"""Cutouts: labelled objects cut out of their photos with their masks, ready to paste.

* **Groups.** Objects whose boxes overlap in their photo are cut together as one cutout carrying
  all their labels (SIGtor's expansion): pasting one alone would bring along a piece of its
  neighbour, unlabelled. Within a group, a pixel claimed by several objects goes to the smallest
  one (a leg tag is in front of the leg), so the masks of a group never overlap and every output
  pixel belongs to at most one instance.
* **Pixels** cover the group's box plus exactly `CUTOUT_MARGIN` pixels of context on each side
  (edge pixels repeated where the photo ends). ``cv2.seamlessClone`` ignores the source gradients
  of the outer 4 pixels of its mask (it zeroes a 1-px ring, then erodes 3 px): with less margin
  the edge of a flat object is not cloned and the object can vanish.
* **Masks** are ``uint8`` over the cutout, 255 = object (`spatule_synth.core.annotations`): from the
  annotation when it has one, else from the box by ``--mask`` (`spatule_synth.core.masks`).
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np

from spatule_synth.core.annotations import MASK_THRESHOLD, mask_bounds
from spatule_synth.core.boxes import Box
from spatule_synth.core.disjoint_sets import DisjointSets
from spatule_synth.core.transform import CUTOUT_MARGIN


@dataclasses.dataclass(frozen=True, eq=False)
class CutoutPart:
    """One labelled object of a cutout."""

    class_name: str
    class_id: int
    mask: np.ndarray  # uint8 (height, width) of the cutout, 255 where this object is
    object_index: int  # position in its annotation file


@dataclasses.dataclass(frozen=True, eq=False)
class Cutout:
    """A group of labelled objects (usually one) cut out of a photo, with context around them."""

    cutout_id: str  # "<photo path>#<object index>[+<object index>...]"
    identity: str  # cutouts sharing an identity always land in the same split
    pixels: np.ndarray  # (height, width, 3) uint8 RGB: the group's box + CUTOUT_MARGIN all round
    alpha: np.ndarray  # uint8 (height, width): the union of the parts' masks (soft edges kept)
    object_box: Box  # the group's box inside `pixels`: CUTOUT_MARGIN in from every edge
    parts: tuple[CutoutPart, ...]  # empty for a distractor
    source_file: str
    source_box: tuple[int, int, int, int] = (0, 0, 0, 0)  # the group's box in its photo
    origin: str = "photo"  # "photo" (cut out of a labelled input) or "rendered" (spatule_synth.tags)
    code: str = ""  # the tag code it shows, when known (rendered; --identity=regex names)
    code_class: str = ""  # the class of the part that shows the code (--tag_class)
    upright_turns: int = 0  # np.rot90 quarter turns that make its code read upright (rendered)

    @property
    def object_pixels(self) -> np.ndarray:
        """The pixels of the group's box (no margin): what near-duplicate search compares."""
        return self.pixels[CUTOUT_MARGIN:-CUTOUT_MARGIN, CUTOUT_MARGIN:-CUTOUT_MARGIN]

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])

    @functools.cached_property
    def class_name(self) -> str:
        """The class of the largest part (what class balancing counts); "" for a distractor."""
        if not self.parts:
            return ""
        return max(self.parts, key=lambda part: int(np.count_nonzero(part.mask >= MASK_THRESHOLD))
                   ).class_name

    @functools.cached_property
    def class_names(self) -> frozenset[str]:
        return frozenset(part.class_name for part in self.parts)


@dataclasses.dataclass(frozen=True, eq=False)
class PhotoObject:
    """A validated object of a decoded photo: integer box and its mask over that box."""

    class_name: str
    class_id: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), inside the photo
    mask: np.ndarray  # uint8 (y1 - y0, x1 - x0)
    object_index: int


def overlapping_groups(boxes: list[tuple[int, int, int, int]]) -> list[list[int]]:
    """Indices of ``boxes`` grouped by overlap (transitively), each group in index order, groups in
    order of their first index."""
    sets = DisjointSets(len(boxes))
    for i, (ax0, ay0, ax1, ay1) in enumerate(boxes):
        for j in range(i):
            bx0, by0, bx1, by1 = boxes[j]
            if min(ax1, bx1) > max(ax0, bx0) and min(ay1, by1) > max(ay0, by0):
                sets.join(i, j)
    groups: dict[int, list[int]] = {}
    for i, number in enumerate(sets.group_numbers()):
        groups.setdefault(number, []).append(i)
    return [groups[number] for number in sorted(groups)]


def group_box(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """The integer box around ``boxes``: what a group is cut out by."""
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def cut_group(photo: np.ndarray, objects: list[PhotoObject], path: str, identity: str) -> Cutout:
    """One cutout of ``objects`` (an overlapping group) from the RGB ``photo``."""
    x0, y0, x1, y1 = group_box([o.box for o in objects])
    pixels = with_margin(photo, x0, y0, x1, y1)
    height, width = pixels.shape[:2]
    masks = []
    for obj in objects:
        full = np.zeros((height, width), np.uint8)
        ox, oy = obj.box[0] - x0 + CUTOUT_MARGIN, obj.box[1] - y0 + CUTOUT_MARGIN
        full[oy:oy + obj.mask.shape[0], ox:ox + obj.mask.shape[1]] = obj.mask
        masks.append(full)
    _give_shared_pixels_to_the_smallest(masks)
    alpha = np.max(masks, axis=0) if len(masks) > 1 else masks[0]
    parts = tuple(CutoutPart(o.class_name, o.class_id, mask, o.object_index)
                  for o, mask in zip(objects, masks))
    parts = tuple(part for part in parts if mask_bounds(part.mask) is not None)
    cutout_id = f"{path}#" + "+".join(str(o.object_index) for o in objects)
    return Cutout(cutout_id, identity, pixels, alpha,
                  Box(CUTOUT_MARGIN, CUTOUT_MARGIN, width - CUTOUT_MARGIN, height - CUTOUT_MARGIN),
                  parts, path, (x0, y0, x1, y1))


def _give_shared_pixels_to_the_smallest(masks: list[np.ndarray]) -> None:
    if len(masks) < 2:
        return
    order = sorted(range(len(masks)), key=lambda i: int(np.count_nonzero(masks[i] >= MASK_THRESHOLD)))
    taken = np.zeros(masks[0].shape, bool)
    for i in order:  # smallest first: it keeps everything it claims
        solid = masks[i] >= MASK_THRESHOLD
        masks[i][taken] = 0
        taken |= solid


def distractor_cutout(photo: np.ndarray, alpha: np.ndarray, box: tuple[int, int, int, int],
                      path: str) -> Cutout:
    """An unlabelled object to paste (``alpha`` over ``box`` of ``photo``)."""
    x0, y0, x1, y1 = box
    pixels = with_margin(photo, x0, y0, x1, y1)
    full = np.zeros(pixels.shape[:2], np.uint8)
    full[CUTOUT_MARGIN:CUTOUT_MARGIN + y1 - y0, CUTOUT_MARGIN:CUTOUT_MARGIN + x1 - x0] = alpha
    height, width = full.shape
    return Cutout(f"{path}#distractor", "", pixels, full,
                  Box(CUTOUT_MARGIN, CUTOUT_MARGIN, width - CUTOUT_MARGIN, height - CUTOUT_MARGIN),
                  (), path, box)


def with_margin(pixels: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """The box plus CUTOUT_MARGIN px all round, edge pixels repeated beyond the photo."""
    height, width = pixels.shape[:2]
    left, top = max(x0 - CUTOUT_MARGIN, 0), max(y0 - CUTOUT_MARGIN, 0)
    right, bottom = min(x1 + CUTOUT_MARGIN, width), min(y1 + CUTOUT_MARGIN, height)
    crop = pixels[top:bottom, left:right]
    pads = (top - (y0 - CUTOUT_MARGIN), (y1 + CUTOUT_MARGIN) - bottom,
            left - (x0 - CUTOUT_MARGIN), (x1 + CUTOUT_MARGIN) - right)
    if any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(crop)
