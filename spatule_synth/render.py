"""The render stage: a `SampleSpec` and a canvas in, pixels, tight boxes and visible masks out.

Labels come from the pixels actually written, never from centre arithmetic. Each placement is
warped (`spatule_synth.transform`), colour-augmented, then blended. **Every blend mode changes
only pixels of the object's own mask** (warped mask >= 128), so the box, the bounding box of that
mask, holds every pixel the paste changed, and no context of the source photo is painted around
the object:

* ``paste`` copies the object pixels; ``alpha`` mixes them by the mask's value (soft inner edges);
* ``feather`` ramps the opacity from the mask's edge inwards over up to `CUTOUT_MARGIN` pixels
  (at most half the object's thickness, so a small tag keeps an opaque core);
* ``seamless_normal`` / ``seamless_mixed`` Poisson-blend with ``cv2.seamlessClone`` over the mask
  widened by the margin (OpenCV ignores source gradients near its mask's edge), then keep the
  result only inside the object's mask, ramped over `SEAMLESS_EDGE_PX` pixels inside it. OpenCV
  zeroes the outer 1-px ring of the mask array, centres the bounding rectangle of what is left on
  ``center`` and keeps that region's border fixed: `seamless_clone` computes the centre that puts
  the source pixels exactly where planned. OpenCV 5.0.0 also writes into the mask it is given:
  each call gets a fresh mask, so one composite can never silently lose its object.

The parts of a group (objects cut out together) are warped one by one, then made disjoint again:
each pixel of the placed mask goes to the part with the highest warped value (ties to the smallest
part), so instance PNGs, record masks and COCO agree.

**Ghosts.** With ``min_visibility`` > 0, each labelled paste is scored against its cutout right
after blending (`spatule_synth.visibility`); below the threshold the canvas is restored and the
placement re-drawn (``redraw``: another position and blend, up to `MAX_REDRAWS` times), then
dropped. The returned sample's spec lists the placements really pasted.

An object's *visible* mask is its part of the placed mask on the canvas, inside what its blend
wrote, minus every pixel written by a later paste. Its box is the bounding box of that mask (one box
around all pieces when occlusion splits it); it is labelled only if at least ``min_visible`` of its
whole warped mask (off-canvas part included) is visible. ``truncated`` marks objects whose mask
crosses the canvas edge. Distractors are pasted and occlude, but are never labelled.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import cv2
import numpy as np

from spatule_synth.annotations import MASK_THRESHOLD, mask_box
from spatule_synth.augment import augment_image, augment_object_pixels
from spatule_synth.boxes import Box
from spatule_synth.cutouts import Cutout
from spatule_synth.plan import Placement, SampleSpec, SplitPool
from spatule_synth.transform import CUTOUT_MARGIN, placement_geometry, warp
from spatule_synth.visibility import visibility

SEAMLESS_FLAGS = {"seamless_normal": cv2.NORMAL_CLONE, "seamless_mixed": cv2.MIXED_CLONE}
SEAMLESS_EDGE_PX = 2  # the Poisson result fades in over this many pixels inside the object's mask
MAX_REDRAWS = 4  # a placement that stays a ghost after this many re-draws is dropped
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
    spec: SampleSpec  # with the placements really pasted (re-drawn ones replaced, dropped ones out)
    pixels: np.ndarray  # (size, size, 3) uint8 RGB
    objects: tuple[SampleObject, ...]
    hidden: int = 0  # labelled objects pasted but left unlabelled (under min_visible)
    redrawn: int = 0  # labelled placements re-drawn because their first paste was not recognisable
    invisible: int = 0  # labelled placements dropped: not recognisable after every re-draw


@dataclasses.dataclass(frozen=True, eq=False)
class Placed:
    """A cutout warped for its placement: pixels, blend mask and each part's pixels (local)."""

    pixels: np.ndarray | None
    alpha: np.ndarray  # uint8: the placed mask (soft edges)
    parts: tuple[np.ndarray, ...]  # bool, disjoint, together the solid placed mask


def place(cutout: Cutout, placement: Placement, with_pixels: bool = True) -> Placed:
    geometry = placement_geometry(cutout.size, cutout.object_box, placement.scale, placement.augment)
    pixels = None
    if with_pixels:
        pixels = warp(augment_object_pixels(cutout.pixels, placement.augment), geometry, is_mask=False)
    alpha = warp(cutout.alpha, geometry, is_mask=True)
    parts = disjoint_parts(alpha >= MASK_THRESHOLD,
                           [warp(part.mask, geometry, is_mask=True) for part in cutout.parts],
                           [int(np.count_nonzero(part.mask >= MASK_THRESHOLD)) for part in cutout.parts])
    return Placed(pixels, alpha, parts)


def disjoint_parts(solid: np.ndarray, warped: list[np.ndarray], areas: list[int]) -> tuple[np.ndarray, ...]:
    """Each pixel of ``solid`` to the part with the highest warped value (ties: the smallest part,
    by its area in the cutout), so the parts stay disjoint and cover the placed mask."""
    if len(warped) <= 1:  # a distractor has no part
        return tuple(solid & (mask > 0) for mask in warped)
    order = sorted(range(len(warped)), key=lambda i: (areas[i], i))
    stacked = np.stack([warped[i] for i in order])
    winner = np.argmax(stacked, axis=0)  # the first maximum: the smallest part among the tied
    claimed = solid & (stacked.max(axis=0) > 0)
    parts: list[np.ndarray] = [np.zeros_like(solid)] * len(warped)
    for rank, index in enumerate(order):
        parts[index] = claimed & (winner == rank)
    return tuple(parts)


def _clip(placement: Placement, size: int) -> tuple[slice, slice, int, int, int, int]:
    """Local slices of the on-canvas part of a placement, and its canvas rectangle."""
    x0, y0 = max(placement.x, 0), max(placement.y, 0)
    x1, y1 = min(placement.x + placement.width, size), min(placement.y + placement.height, size)
    local = (slice(y0 - placement.y, y1 - placement.y), slice(x0 - placement.x, x1 - placement.x))
    return local[0], local[1], x0, y0, x1, y1


def placed_regions(cutout: Cutout, placement: Placement, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The canvas region a placement will write (its placed mask: every blend writes only there)
    and its parts' masks on the canvas."""
    placed = place(cutout, placement, with_pixels=False)
    rows, cols, x0, y0, x1, y1 = _clip(placement, size)
    written = np.zeros((size, size), bool)
    written[y0:y1, x0:x1] = (placed.alpha >= MASK_THRESHOLD)[rows, cols]
    parts = []
    for mask in placed.parts:
        canvas_mask = np.zeros((size, size), bool)
        canvas_mask[y0:y1, x0:x1] = mask[rows, cols]
        parts.append(canvas_mask)
    return written, parts


# (placement number, attempt, the placements pasted so far) -> the placement re-drawn, or None
Redraw = Callable[[int, int, tuple], "Placement | None"]


def render(spec: SampleSpec, pool: SplitPool, canvas: np.ndarray, min_visible: float = 0.0,
           min_visibility: float = 0.0, redraw: Redraw | None = None) -> Sample:
    """Paste the placements of ``spec`` onto ``canvas`` (modified in place) in order."""
    labelled: list[tuple[np.ndarray, int, bool, Placement, Cutout, int]] = []
    pasted: list[Placement] = []
    redrawn = invisible = 0
    for number, first in enumerate(spec.placements):
        placement, attempt = first, 0
        while placement is not None:
            outcome = _paste(canvas, pool, placement, labelled, min_visibility)
            if outcome != "ghost":
                pasted.append(placement)  # pasted, or (off the canvas, nothing to clone) as planned
                break
            redrawn += attempt == 0
            attempt += 1
            placement = (redraw(number, attempt, tuple(pasted))
                         if redraw is not None and attempt <= MAX_REDRAWS else None)
            invisible += placement is None
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
    final = dataclasses.replace(spec, placements=tuple(pasted))
    return Sample(final, pixels, tuple(objects), hidden, redrawn, invisible)


def _paste(canvas: np.ndarray, pool: SplitPool, placement: Placement, labelled: list,
           min_visibility: float) -> str:
    """Blend one placement; ``"pasted"``, ``"nothing"`` (off the canvas, or nothing to clone) or
    ``"ghost"`` (a labelled object not recognisable: the canvas is put back as it was)."""
    size = canvas.shape[0]
    cutout = pool.cutout_of(placement)
    placed = place(cutout, placement)
    rows, cols, x0, y0, x1, y1 = _clip(placement, size)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return "nothing"
    before = canvas[y0:y1, x0:x1].copy()
    local_written = blend_into(canvas, placed.pixels[rows, cols], placed.alpha, (rows, cols),
                               x0, y0, placement.blend)
    if local_written is None:
        return "nothing"
    if not placement.distractor and min_visibility > 0:
        written, source = canvas[y0:y1, x0:x1], placed.pixels[rows, cols]
        if any(visibility(written, source, part[rows, cols] & local_written) < min_visibility
               for part in placed.parts):
            canvas[y0:y1, x0:x1] = before
            return "ghost"
    written = np.zeros((size, size), bool)
    written[y0:y1, x0:x1] = local_written
    for visible, *_ in labelled:  # what this paste covers is no longer visible below it
        visible &= ~written
    for part_index, solid in enumerate(placed.parts):
        visible = np.zeros((size, size), bool)
        visible[y0:y1, x0:x1] = solid[rows, cols] & local_written
        total = int(np.count_nonzero(solid))
        truncated = int(np.count_nonzero(solid[rows, cols])) < total
        labelled.append((visible, total, truncated, placement, cutout, part_index))
    return "pasted"


def blend_into(canvas: np.ndarray, source: np.ndarray, alpha: np.ndarray,
               local: tuple[slice, slice], x: int, y: int, blend: str) -> np.ndarray | None:
    """Blend ``source`` (already cut to the canvas) at top-left ``(x, y)``. ``alpha`` is the whole
    placed mask and ``local`` the part of it on the canvas. Returns the local mask of the pixels
    that may have changed: always inside the placed mask (``alpha >= 128``)."""
    height, width = source.shape[:2]
    solid = alpha >= MASK_THRESHOLD
    region = canvas[y:y + height, x:x + width]
    if blend == "paste":
        written = solid[local]
        region[written] = source[written]
        return written
    weight = np.where(solid, alpha.astype(np.float32) / 255.0, 0.0)
    if blend == "feather":
        depth = depth_inside(solid)
        weight = np.minimum(weight, inward_ramp(depth, feather_width(depth)))
    elif blend in SEAMLESS_FLAGS:
        clone = (cv2.dilate(solid.astype(np.uint8), _MARGIN_KERNEL) * 255)[local]
        before = region.copy()
        changes = seamless_clone(canvas, source, x, y, SEAMLESS_FLAGS[blend], clone)
        if changes is None:
            return None
        source, region[:] = region.copy(), before  # blend the Poisson result like a cutout
        weight = np.minimum(weight, inward_ramp(depth_inside(solid), SEAMLESS_EDGE_PX))
        # Cut by the canvas edge, the clone region's border lies on it and stays the destination's:
        # those pixels are not written, so they are not part of the object's visible mask either.
        weight[local] = np.where(changes, weight[local], 0.0)
    weight = weight[local]
    written = weight > 0
    mixed = source * weight[..., None] + region * (1.0 - weight[..., None]) + 0.5
    region[written] = mixed.astype(np.uint8)[written]
    return written


def depth_inside(solid: np.ndarray) -> np.ndarray:
    """Per pixel of the mask, its distance to the nearest pixel outside it (1 on its outer
    pixels, also where the mask meets the array's edge); 0 outside."""
    return cv2.distanceTransform(np.pad(solid, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]


def inward_ramp(depth: np.ndarray, width: float) -> np.ndarray:
    """Opacity rising from the mask's edge inwards (``depth``: `depth_inside`): ``1 / width`` on
    its outer pixels, 1 from ``width`` pixels in; 0 outside the mask."""
    return np.clip(depth / max(width, 1.0), 0.0, 1.0).astype(np.float32)


def feather_width(depth: np.ndarray) -> float:
    """`CUTOUT_MARGIN` pixels, or half the object's thickness if that is less (a 12-px-high tag
    fades over 3 px and keeps an opaque middle)."""
    thickness = float(depth.max()) if depth.size else 0.0
    return max(1.0, min(float(CUTOUT_MARGIN), thickness / 2.0))


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
