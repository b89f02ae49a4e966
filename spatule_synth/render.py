"""The render stage: a `SampleSpec` and a canvas in, pixels and tight boxes out. No randomness.

Boxes come from the pixels actually written, never from centre arithmetic:

* ``paste`` / ``alpha`` / ``feather`` write the whole (canvas-clipped) cutout rectangle. Cutouts
  are box-only so far, so their alpha mask is the full rectangle and ``alpha`` equals ``paste``;
  ``feather`` ramps the mask over the cutout's margin so the object itself stays opaque.
* ``seamless_normal`` / ``seamless_mixed`` call ``cv2.seamlessClone``, which zeroes the outer
  1-px ring of the mask and centres the clone region on the bounding rectangle of what is left;
  its Poisson solver then keeps the outer ring of that region as the fixed boundary. So
  `seamless_clone` picks the centre that puts the clone region one pixel inside the pasted
  rectangle, and reports as written the pixels two inside it (the tests check this against the
  pixels that really change). (OpenCV 5.0.0 also writes into the mask it
  is given: each call gets a fresh mask, so one composite can never silently lose its object.)

An object's box is the part of its box that was written and not overwritten by a later paste;
``truncated`` marks objects cut by the canvas edge.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from spatule_synth.boxes import Box
from spatule_synth.plan import Placement, SampleSpec, SplitPool
from spatule_synth.sources import CUTOUT_MARGIN, Cutout

SEAMLESS_FLAGS = {"seamless_normal": cv2.NORMAL_CLONE, "seamless_mixed": cv2.MIXED_CLONE}


@dataclasses.dataclass(frozen=True)
class SampleObject:
    class_name: str
    class_id: int
    box: Box  # canvas pixel edges, tight on the visible written object
    truncated: bool
    cutout_id: str
    blend: str


@dataclasses.dataclass(frozen=True, eq=False)
class Sample:
    spec: SampleSpec
    pixels: np.ndarray  # (size, size, 3) uint8 RGB
    objects: tuple[SampleObject, ...]


def render(spec: SampleSpec, pool: SplitPool, canvas: np.ndarray) -> Sample:
    """Paste the placements of ``spec`` onto ``canvas`` (modified in place) in order."""
    size = canvas.shape[0]
    visible: list[np.ndarray] = []  # per object: canvas mask of its visible box
    placed: list[tuple[Placement, Cutout, Box]] = []
    for placement in spec.placements:
        cutout = pool.cutouts[placement.cutout]
        pixels, object_box = scaled_cutout(cutout, placement)
        x0, y0 = max(placement.x, 0), max(placement.y, 0)
        x1 = min(placement.x + placement.width, size)
        y1 = min(placement.y + placement.height, size)
        source = pixels[y0 - placement.y:y1 - placement.y, x0 - placement.x:x1 - placement.x]
        written = blend_into(canvas, source, x0, y0, placement.blend)
        if written is None:
            continue
        for mask in visible:  # what this paste covers is no longer visible below it
            mask[written[1]:written[3], written[0]:written[2]] = False
        on_canvas = Box(object_box.xmin + placement.x, object_box.ymin + placement.y,
                        object_box.xmax + placement.x, object_box.ymax + placement.y)
        mask = np.zeros((size, size), bool)
        wx0, wy0 = max(int(on_canvas.xmin), written[0]), max(int(on_canvas.ymin), written[1])
        wx1, wy1 = min(int(on_canvas.xmax), written[2]), min(int(on_canvas.ymax), written[3])
        mask[wy0:max(wy0, wy1), wx0:max(wx0, wx1)] = True
        visible.append(mask)
        placed.append((placement, cutout, on_canvas))
    objects = []
    for mask, (placement, cutout, on_canvas) in zip(visible, placed):
        box = mask_box(mask)
        if box is not None:
            objects.append(SampleObject(cutout.class_name, cutout.class_id, box,
                                        truncated=not on_canvas.is_inside(size, size),
                                        cutout_id=cutout.cutout_id, blend=placement.blend))
    return Sample(spec, canvas, tuple(objects))


def mask_box(mask: np.ndarray) -> Box | None:
    """Pixel-edge bounding box of the True pixels of ``mask``, or None if there are none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return Box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def scaled_cutout(cutout: Cutout, placement: Placement) -> tuple[np.ndarray, Box]:
    """The cutout at ``placement.scale``: the object resized to exactly the planned size, with
    CUTOUT_MARGIN px of (equally resized) context around it; returns pixels and object box."""
    margin = CUTOUT_MARGIN
    object_box = Box(margin, margin, placement.width - margin, placement.height - margin)
    if (placement.width, placement.height) == cutout.size:
        return cutout.pixels, object_box
    fx = object_box.width / cutout.object_box.width
    fy = object_box.height / cutout.object_box.height
    # Pixel centres: source c = (c' + 0.5 - margin) / f + margin - 0.5, so object edges map exactly.
    inverse = np.float32([[1 / fx, 0, (0.5 - margin) / fx + margin - 0.5],
                          [0, 1 / fy, (0.5 - margin) / fy + margin - 0.5]])
    pixels = cv2.warpAffine(cutout.pixels, inverse, (placement.width, placement.height),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
    return pixels, object_box


def blend_into(canvas: np.ndarray, source: np.ndarray, x: int, y: int,
               blend: str) -> tuple[int, int, int, int] | None:
    """Blend ``source`` onto ``canvas`` at top-left ``(x, y)``; the region written, or None."""
    height, width = source.shape[:2]
    if blend in SEAMLESS_FLAGS:
        return seamless_clone(canvas, source, x, y, SEAMLESS_FLAGS[blend])
    region = canvas[y:y + height, x:x + width]
    if blend == "feather":
        alpha = feather_alpha(width, height)[..., None]
        region[:] = (source * alpha + region * (1.0 - alpha) + 0.5).astype(np.uint8)
    else:  # "paste", and "alpha" with the full rectangular mask of a box-only cutout
        region[:] = source
    return x, y, x + width, y + height


def seamless_clone(canvas: np.ndarray, source: np.ndarray, x: int, y: int,
                   flags: int) -> tuple[int, int, int, int] | None:
    """Poisson-blend ``source`` so that its pixels land at ``(x, y)``; returns the changed region.

    OpenCV clones the mask's bounding rectangle after zeroing its outer ring, i.e. source pixels
    ``[1, w-1) x [1, h-1)``, centred on ``center``: top-left = center - ((w-2)//2, (h-2)//2). The
    solver keeps that region's own outer ring from the canvas, so ``[2, w-2) x [2, h-2)`` changes.
    """
    height, width = source.shape[:2]
    if width < 5 or height < 5:
        return None
    mask = np.full((height, width), 255, np.uint8)  # fresh per call: OpenCV 5.0.0 writes into it
    center = (x + 1 + (width - 2) // 2, y + 1 + (height - 2) // 2)
    canvas[:] = cv2.seamlessClone(source, canvas, mask, center, flags)
    return x + 2, y + 2, x + width - 2, y + height - 2


def feather_alpha(width: int, height: int, ramp: int = CUTOUT_MARGIN) -> np.ndarray:
    """Opacity rising linearly over ``ramp`` pixels from each edge of a rectangle to 1 inside."""
    xs = np.minimum(np.arange(width), np.arange(width)[::-1]) + 0.5
    ys = np.minimum(np.arange(height), np.arange(height)[::-1]) + 0.5
    return np.clip(np.minimum.outer(ys, xs) / ramp, 0.0, 1.0).astype(np.float32)
