"""Geometry of a pasted object: scale, flips, rotation and perspective as one projective map,
applied to the cutout's pixels and to every one of its masks with the same matrix.

Coordinates are pixel edges (see `spatule_synth.core.boxes`): the object box of a cutout maps onto the
box ``[MARGIN, MARGIN + w) x [MARGIN, MARGIN + h)`` of the placed image when only scaling is
involved (each side scaled to exactly the planned whole number of pixels), and onto the bounding
box of its transformed corners otherwise; the placed image keeps ``CUTOUT_MARGIN`` pixels of
(transformed, edge-repeated) context on every side, which seamless cloning needs. Labels never
come from this arithmetic: they are re-derived from the warped masks (`mask >= 128`).
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from spatule_synth.core.augment import ObjectAugment
from spatule_synth.core.boxes import Box

CUTOUT_MARGIN = 8


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Where a cutout's pixels go: a 3x3 map of pixel-edge coordinates, and the placed size."""

    matrix: tuple[float, ...]  # row-major 3x3, cutout -> placed, pixel edges
    width: int
    height: int
    identity: bool  # the cutout is pasted as it is

    def as_array(self) -> np.ndarray:
        return np.array(self.matrix, np.float64).reshape(3, 3)


def _translate(dx: float, dy: float) -> np.ndarray:
    return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], np.float64)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    homogeneous = np.c_[points, np.ones(len(points))] @ matrix.T
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def scaled_side(object_side: int, scale: float) -> int:
    """The object's side once scaled: a whole number of pixels, at least one."""
    return max(1, round(object_side * scale))


def placement_geometry(cutout_size: tuple[int, int], object_box: Box, scale: float,
                       draw: ObjectAugment = ObjectAugment()) -> Geometry:
    """The map that pastes a cutout of ``cutout_size`` (its object at ``object_box``) at ``scale``
    with the geometric part of ``draw``."""
    width0, height0 = int(object_box.width), int(object_box.height)
    if draw.is_geometric:
        fx = fy = scale
    else:
        fx, fy = scaled_side(width0, scale) / width0, scaled_side(height0, scale) / height0
    cx, cy = (object_box.xmin + object_box.xmax) / 2, (object_box.ymin + object_box.ymax) / 2
    matrix = np.diag([fx * (-1 if draw.flip_h else 1), fy * (-1 if draw.flip_v else 1), 1.0])
    matrix = matrix @ _translate(-cx, -cy)
    if draw.angle:
        theta = math.radians(draw.angle)
        rotation = np.array([[math.cos(theta), -math.sin(theta), 0],
                             [math.sin(theta), math.cos(theta), 0], [0, 0, 1]])
        matrix = rotation @ matrix
    corners = np.array([[object_box.xmin, object_box.ymin], [object_box.xmax, object_box.ymin],
                        [object_box.xmax, object_box.ymax], [object_box.xmin, object_box.ymax]])
    if draw.perspective:
        before = _apply(matrix, corners).astype(np.float32)
        shifts = np.array(draw.perspective, np.float64).reshape(4, 2) * [fx * width0, fy * height0]
        after = (before + shifts).astype(np.float32)
        matrix = cv2.getPerspectiveTransform(before, after).astype(np.float64) @ matrix
    placed = _apply(matrix, corners)
    low, high = placed.min(axis=0), placed.max(axis=0)
    matrix = _translate(CUTOUT_MARGIN - low[0], CUTOUT_MARGIN - low[1]) @ matrix
    width = math.ceil(high[0] - low[0] - 1e-6) + 2 * CUTOUT_MARGIN
    height = math.ceil(high[1] - low[1] - 1e-6) + 2 * CUTOUT_MARGIN
    identity = (width, height) == cutout_size and np.allclose(matrix, np.eye(3))
    return Geometry(tuple(float(v) for v in matrix.ravel()), width, height, bool(identity))


def warp(image: np.ndarray, geometry: Geometry, is_mask: bool) -> np.ndarray:
    """``image`` (pixels, or a uint8 mask) placed by ``geometry``; bilinear. Pixels repeat their
    edge beyond the cutout (context for seamless cloning); masks are zero there."""
    if geometry.identity:
        return image
    # Pixel centres sit half a pixel inside the edges: shift into OpenCV's centre coordinates.
    matrix = _translate(-0.5, -0.5) @ geometry.as_array() @ _translate(0.5, 0.5)
    border = cv2.BORDER_CONSTANT if is_mask else cv2.BORDER_REPLICATE
    size = (geometry.width, geometry.height)
    if np.allclose(matrix[2], [0, 0, 1]):
        return cv2.warpAffine(image, matrix[:2], size, flags=cv2.INTER_LINEAR, borderMode=border,
                              borderValue=0)
    return cv2.warpPerspective(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=border,
                               borderValue=0)
