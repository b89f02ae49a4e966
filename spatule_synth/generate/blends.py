"""Blend modes: how a warped cutout's pixels enter the canvas. Every mode changes only pixels of
the object's own mask (warped mask >= 128) and returns them, so the object's box (the bounding box
of that mask) holds every pixel a paste changed (see `spatule_synth.generate.render`).

``seamless_normal`` / ``seamless_mixed`` use spatule_synth's own Poisson solver
(`spatule_synth.generate.poisson`) on the placed rectangle, with the canvas (reflected beyond its
edge) as boundary; ``seamless_normal_opencv`` / ``seamless_mixed_opencv`` call
``cv2.seamlessClone``, kept for comparison. Both keep the result only inside the object's mask.
"""

from __future__ import annotations

import cv2
import numpy as np

from spatule_synth.core.annotations import MASK_THRESHOLD
from spatule_synth.core.transform import CUTOUT_MARGIN
from spatule_synth.generate.placing import on_canvas
from spatule_synth.generate.poisson import clone_into_canvas

POISSON_MODES = {"seamless_normal": "normal", "seamless_mixed": "mixed"}  # spatule_synth's solver
OPENCV_FLAGS = {"seamless_normal_opencv": cv2.NORMAL_CLONE, "seamless_mixed_opencv": cv2.MIXED_CLONE}
SEAMLESS_EDGE_PX = 2  # the Poisson result fades in over this many pixels inside the object's mask
_MARGIN_KERNEL = np.ones((2 * CUTOUT_MARGIN + 1, 2 * CUTOUT_MARGIN + 1), np.uint8)


def blend_into(canvas: np.ndarray, pixels: np.ndarray, alpha: np.ndarray, x: int, y: int,
               blend: str) -> np.ndarray | None:
    """Blend the placed ``pixels`` and mask ``alpha`` (whole, top-left at ``(x, y)``, possibly
    partly off the canvas) into ``canvas``. Returns the mask of the pixels that may have changed,
    over the on-canvas part of the placement (`spatule_synth.generate.placing.on_canvas`): always
    inside the placed mask (``alpha >= 128``); None if nothing was blended."""
    height, width = pixels.shape[:2]
    rows, cols, x0, y0, x1, y1 = on_canvas(x, y, width, height, canvas.shape[0])
    local = (rows, cols)
    source = pixels[local]
    solid = alpha >= MASK_THRESHOLD
    region = canvas[y0:y1, x0:x1]
    if blend == "paste":
        written = solid[local]
        region[written] = source[written]
        return written
    weight = np.where(solid, alpha.astype(np.float32) / 255.0, 0.0)
    if blend == "feather":
        depth = depth_inside(solid)
        weight = np.minimum(weight, inward_ramp(depth, feather_width(depth)))
    elif blend in POISSON_MODES:
        source = clone_into_canvas(pixels, canvas, x, y, POISSON_MODES[blend])[local]
        weight = np.minimum(weight, inward_ramp(depth_inside(solid), SEAMLESS_EDGE_PX))
    elif blend in OPENCV_FLAGS:
        clone = (cv2.dilate(solid.astype(np.uint8), _MARGIN_KERNEL) * 255)[local]
        before = region.copy()
        changes = seamless_clone(canvas, source, x0, y0, OPENCV_FLAGS[blend], clone)
        if changes is None:
            return None
        source, region[:] = region.copy(), before  # blend the Poisson result like a cutout
        weight = np.minimum(weight, inward_ramp(depth_inside(solid), SEAMLESS_EDGE_PX))
        # Cut by the canvas edge, OpenCV's clone region has its border on it, and that border
        # stays the destination's: not written, so not part of the object's visible mask either.
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
