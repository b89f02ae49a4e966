"""The render stage: a `SampleSpec` and a canvas in, pixels, tight boxes and visible masks out.
No randomness.

Labels come from the pixels actually written, never from centre arithmetic. Each placement is
warped (`spatule_synth.transform`), colour-augmented, then blended; every blend mode reports the
canvas pixels it may have changed (its *written* region):

* ``paste`` copies the object pixels (mask >= 128); ``alpha`` mixes by the mask (soft edges);
  ``feather`` mixes by the mask widened with a linear ramp over `CUTOUT_MARGIN` pixels, so the
  object stays opaque and its surroundings fade in.
* ``seamless_normal`` / ``seamless_mixed`` call ``cv2.seamlessClone`` with the object mask widened
  by the margin (for a box cutout: the whole cutout). OpenCV zeroes the outer 1-px ring of the
  mask array, centres the bounding rectangle of what is left on ``center``, and keeps the outer
  ring of that region fixed: so `seamless_clone` computes the centre that puts the source pixels
  exactly where planned, and reports as written the mask eroded by one pixel (the tests check this
  against the pixels that really change). OpenCV 5.0.0 also writes into the mask it is given:
  each call gets a fresh mask, so one composite can never silently lose its object.

An object's *visible* mask is its warped mask (>= 128) on the canvas, inside its own written
region, minus every region written by a later paste. Its box is the bounding box of that mask (one
box around all pieces when occlusion splits it); it is labelled only if at least ``min_visible`` of
its whole warped mask (off-canvas part included) is visible. ``truncated`` marks objects whose mask
crosses the canvas edge. Distractors are pasted and occlude, but are never labelled.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from spatule_synth.annotations import MASK_THRESHOLD, mask_box
from spatule_synth.augment import augment_image, augment_object_pixels
from spatule_synth.boxes import Box
from spatule_synth.cutouts import Cutout
from spatule_synth.plan import Placement, SampleSpec, SplitPool
from spatule_synth.transform import CUTOUT_MARGIN, placement_geometry, warp

SEAMLESS_FLAGS = {"seamless_normal": cv2.NORMAL_CLONE, "seamless_mixed": cv2.MIXED_CLONE}
_MARGIN_KERNEL = np.ones((2 * CUTOUT_MARGIN + 1, 2 * CUTOUT_MARGIN + 1), np.uint8)


@dataclasses.dataclass(frozen=True, eq=False)
class SampleObject:
    class_name: str
    class_id: int
    box: Box  # canvas pixel edges, tight on the visible written object
    truncated: bool
    cutout_id: str
    blend: str
    mask: np.ndarray  # (size, size) bool: the visible pixels of this object


@dataclasses.dataclass(frozen=True, eq=False)
class Sample:
    spec: SampleSpec
    pixels: np.ndarray  # (size, size, 3) uint8 RGB
    objects: tuple[SampleObject, ...]
    hidden: int = 0  # labelled objects pasted but left unlabelled (under min_visible)


@dataclasses.dataclass(frozen=True, eq=False)
class Placed:
    """A cutout warped for its placement: pixels, blend mask and each part's mask (local)."""

    pixels: np.ndarray | None
    alpha: np.ndarray
    parts: tuple[np.ndarray, ...]


def place(cutout: Cutout, placement: Placement, with_pixels: bool = True) -> Placed:
    geometry = placement_geometry(cutout.size, cutout.object_box, placement.scale, placement.augment)
    pixels = None
    if with_pixels:
        pixels = warp(augment_object_pixels(cutout.pixels, placement.augment), geometry, is_mask=False)
    return Placed(pixels, warp(cutout.alpha, geometry, is_mask=True),
                  tuple(warp(part.mask, geometry, is_mask=True) for part in cutout.parts))


def _clip(placement: Placement, size: int) -> tuple[slice, slice, int, int, int, int]:
    """Local slices of the on-canvas part of a placement, and its canvas rectangle."""
    x0, y0 = max(placement.x, 0), max(placement.y, 0)
    x1, y1 = min(placement.x + placement.width, size), min(placement.y + placement.height, size)
    local = (slice(y0 - placement.y, y1 - placement.y), slice(x0 - placement.x, x1 - placement.x))
    return local[0], local[1], x0, y0, x1, y1


def placed_regions(cutout: Cutout, placement: Placement, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The canvas region a placement will write (estimated without the canvas: a seamless clone's
    exact region also depends on the canvas edge) and its parts' masks on the canvas."""
    placed = place(cutout, placement, with_pixels=False)
    rows, cols, x0, y0, x1, y1 = _clip(placement, size)
    written = np.zeros((size, size), bool)
    written[y0:y1, x0:x1] = _written_estimate(placed.alpha, placement.blend)[rows, cols]
    parts = []
    for mask in placed.parts:
        canvas_mask = np.zeros((size, size), bool)
        canvas_mask[y0:y1, x0:x1] = (mask >= MASK_THRESHOLD)[rows, cols]
        parts.append(canvas_mask)
    return written, parts


def _written_estimate(alpha: np.ndarray, blend: str) -> np.ndarray:
    if blend in SEAMLESS_FLAGS or blend == "feather":
        return cv2.dilate((alpha >= MASK_THRESHOLD).astype(np.uint8), _MARGIN_KERNEL) > 0
    return alpha >= MASK_THRESHOLD if blend == "paste" else alpha > 0


def render(spec: SampleSpec, pool: SplitPool, canvas: np.ndarray, min_visible: float = 0.0) -> Sample:
    """Paste the placements of ``spec`` onto ``canvas`` (modified in place) in order."""
    size = canvas.shape[0]
    labelled: list[tuple[np.ndarray, int, bool, Placement, Cutout, int]] = []
    for placement in spec.placements:
        cutout = pool.cutout_of(placement)
        placed = place(cutout, placement)
        rows, cols, x0, y0, x1, y1 = _clip(placement, size)
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        local_written = blend_into(canvas, placed.pixels[rows, cols], placed.alpha, (rows, cols),
                                   x0, y0, placement.blend)
        if local_written is None:
            continue
        written = np.zeros((size, size), bool)
        written[y0:y1, x0:x1] = local_written
        for visible, *_ in labelled:  # what this paste covers is no longer visible below it
            visible &= ~written
        for part_index, mask in enumerate(placed.parts):
            solid = mask >= MASK_THRESHOLD
            total = int(np.count_nonzero(solid))
            visible = np.zeros((size, size), bool)
            visible[y0:y1, x0:x1] = solid[rows, cols] & local_written
            truncated = int(np.count_nonzero(solid[rows, cols])) < total
            labelled.append((visible, total, truncated, placement, cutout, part_index))
    objects, hidden = [], 0
    for visible, total, truncated, placement, cutout, part_index in labelled:
        box = mask_box(visible)
        if box is None or np.count_nonzero(visible) < min_visible * total:
            hidden += 1
            continue
        part = cutout.parts[part_index]
        objects.append(SampleObject(part.class_name, part.class_id, box, truncated, cutout.cutout_id,
                                    placement.blend, visible))
    pixels = augment_image(canvas, spec.image_augment)
    return Sample(spec, pixels, tuple(objects), hidden)


def blend_into(canvas: np.ndarray, source: np.ndarray, alpha: np.ndarray,
               local: tuple[slice, slice], x: int, y: int, blend: str) -> np.ndarray | None:
    """Blend ``source`` (already cut to the canvas) at top-left ``(x, y)``. ``alpha`` is the whole
    placed mask and ``local`` the part of it on the canvas. Returns the local written mask."""
    height, width = source.shape[:2]
    solid = alpha >= MASK_THRESHOLD
    region = canvas[y:y + height, x:x + width]
    if blend in SEAMLESS_FLAGS:
        clone = (cv2.dilate(solid.astype(np.uint8), _MARGIN_KERNEL) * 255)[local]
        return seamless_clone(canvas, source, x, y, SEAMLESS_FLAGS[blend], clone)
    if blend == "paste":
        written = solid[local]
        region[written] = source[written]
        return written
    weight = alpha.astype(np.float32) / 255.0
    if blend == "feather":
        distance = cv2.distanceTransform((~solid).astype(np.uint8), cv2.DIST_L2, 3)
        weight = np.maximum(weight, np.clip(1.0 - distance / CUTOUT_MARGIN, 0.0, 1.0))
    weight = weight[local]
    written = weight > 0
    mixed = source * weight[..., None] + region * (1.0 - weight[..., None]) + 0.5
    region[written] = mixed.astype(np.uint8)[written]
    return written


def seamless_clone(canvas: np.ndarray, source: np.ndarray, x: int, y: int, flags: int,
                   mask: np.ndarray | None = None) -> np.ndarray | None:
    """Poisson-blend ``source`` so that its pixel (0, 0) lands at ``(x, y)``; returns the local mask
    of the pixels that may change, or None if the mask leaves nothing to clone.

    ``mask`` (uint8, 255 = clone; default: the whole source) is copied, its outer ring zeroed as
    OpenCV does; OpenCV puts the bounding rectangle ``r`` of the rest at ``center - (r.w//2,
    r.h//2)``, so ``center = (x + r.x + r.w//2, y + r.y + r.h//2)``. The solver keeps the
    boundary of the mask fixed: the pixels that can change are the mask eroded by one pixel.
    """
    height, width = source.shape[:2]
    if width < 5 or height < 5:
        return None
    mask = np.full((height, width), 255, np.uint8) if mask is None else mask.copy()  # fresh per call
    mask[0, :] = mask[-1, :] = 0
    mask[:, 0] = mask[:, -1] = 0
    inside = cv2.erode(mask, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    if not inside.any():
        return None
    rx, ry, rw, rh = cv2.boundingRect(mask)
    center = (x + rx + rw // 2, y + ry + rh // 2)
    canvas[:] = cv2.seamlessClone(source, canvas, mask.copy(), center, flags)
    return inside > 0
