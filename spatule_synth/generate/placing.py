"""Where a placement's pixels and masks land on the canvas: the cutout warped for it, with its
parts made disjoint again, and the on-canvas rectangle. Shared by the plan stage (which checks
overlap on the real warped masks) and the render stage."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from spatule_synth.core.annotations import MASK_THRESHOLD
from spatule_synth.core.augment import augment_object_pixels
from spatule_synth.core.transform import placement_geometry, warp
from spatule_synth.generate.cutouts import Cutout

if TYPE_CHECKING:
    from spatule_synth.generate.plan import Placement


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


def on_canvas(x: int, y: int, width: int, height: int, size: int) -> tuple[slice, slice, int, int, int, int]:
    """Local slices of the on-canvas part of a ``width`` x ``height`` rectangle at ``(x, y)`` on a
    ``size`` canvas, and its canvas rectangle ``x0, y0, x1, y1``."""
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + width, size), min(y + height, size)
    return slice(y0 - y, y1 - y), slice(x0 - x, x1 - x), x0, y0, x1, y1


def clip(placement: Placement, size: int) -> tuple[slice, slice, int, int, int, int]:
    """`on_canvas` of a placement."""
    return on_canvas(placement.x, placement.y, placement.width, placement.height, size)


def placed_regions(cutout: Cutout, placement: Placement, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The canvas region a placement will write (its placed mask: every blend writes only there)
    and its parts' masks on the canvas."""
    placed = place(cutout, placement, with_pixels=False)
    rows, cols, x0, y0, x1, y1 = clip(placement, size)
    written = np.zeros((size, size), bool)
    written[y0:y1, x0:x1] = (placed.alpha >= MASK_THRESHOLD)[rows, cols]
    parts = []
    for mask in placed.parts:
        canvas_mask = np.zeros((size, size), bool)
        canvas_mask[y0:y1, x0:x1] = mask[rows, cols]
        parts.append(canvas_mask)
    return written, parts
