"""Seamless cloning by Poisson image editing (Pérez, Gangnet and Blake, 2003), solved exactly on a
rectangle with a fast sine transform.

The unknown is every pixel of the pasted rectangle; its Dirichlet boundary is the ring of
destination pixels just around it. Inside, the result's discrete Laplacian equals the divergence of
a guidance field built from 4-neighbour differences:

* ``normal``: the source's own differences, so the object keeps its gradients and takes its
  colours from the destination around it;
* ``mixed``: per channel and neighbour pair, whichever of the source's and the destination's
  differences is larger in magnitude (OpenCV's MIXED_CLONE rule), so strong background texture
  shows through weak object texture.

The 5-point Laplacian with zero boundary is diagonalised by the type-I discrete sine transform
(eigenvalues ``4 - 2 cos(pi k / (H + 1)) - 2 cos(pi l / (W + 1))``), so one forward and one inverse
``scipy.fft.dstn`` solve the system: no iteration, no tolerance, the same result on every machine
for the same input (numpy and scipy's pocketfft are deterministic). Unlike ``cv2.seamlessClone``
this needs no mask (the caller keeps the result where it wants it: `spatule_synth.generate.blends`
keeps it inside the object's mask), uses every source gradient up to the rectangle's edge (OpenCV
drops those within 4 px of its mask's edge), and works where the rectangle meets the canvas edge
if the caller gives it a destination ring there (blends reflects the canvas).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from scipy import fft

MODES = ("normal", "mixed")


@functools.lru_cache(maxsize=256)
def _eigenvalues(height: int, width: int) -> np.ndarray:
    """The Laplacian's eigenvalues for an interior of ``height`` x ``width``, shape (h, w, 1)."""
    rows = 2.0 - 2.0 * np.cos(np.pi * np.arange(1, height + 1) / (height + 1))
    cols = 2.0 - 2.0 * np.cos(np.pi * np.arange(1, width + 1) / (width + 1))
    return (rows[:, None] + cols[None, :])[..., None].astype(np.float32)


def fast_size(length: int) -> int:
    """The smallest size >= ``length`` whose sine transform is fast: a DST-I of size n runs an FFT
    of size 2 (n + 1), which pocketfft does 4x faster when n + 1 has only small prime factors
    (149 -> 4x slower than 150). Callers solve on a rectangle grown to these sizes."""
    return fft.next_fast_len(length + 1, real=True) - 1


def poisson_clone(source: np.ndarray, destination: np.ndarray, mode: str = "normal") -> np.ndarray:
    """The cloned pixels of a rectangle.

    ``source``: (h, w, c) pixels to paste. ``destination``: (h + 2, w + 2, c), what the canvas holds
    at the rectangle and its 1-px ring (the ring is the boundary; its inside is only read by
    ``mixed``). Returns (h, w, c) uint8: the solution, rounded and clipped to 0..255."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    src = source.astype(np.float32)
    dst = destination.astype(np.float32)
    height, width = src.shape[:2]
    # Guidance differences between each pixel and its right / lower neighbour, over the rectangle
    # plus its ring, so that pixels next to the ring get a guidance difference there too. The
    # source has no ring: its edge pixels are repeated, giving a zero source difference there.
    padded = np.pad(src, ((1, 1), (1, 1), (0, 0)), mode="edge")
    right = padded[:, 1:] - padded[:, :-1]  # (h + 2, w + 1, c): p(i, j + 1) - p(i, j)
    down = padded[1:, :] - padded[:-1, :]  # (h + 1, w + 2, c)
    if mode == "mixed":
        dst_right = dst[:, 1:] - dst[:, :-1]
        dst_down = dst[1:, :] - dst[:-1, :]
        right = np.where(np.abs(dst_right) > np.abs(right), dst_right, right)
        down = np.where(np.abs(dst_down) > np.abs(down), dst_down, down)
    # Divergence of the guidance at every pixel of the rectangle (negative Laplacian form):
    # sum over the 4 neighbours q of v(p, q) = p - q.
    guidance = (right[1:-1, :-1] - right[1:-1, 1:]) + (down[:-1, 1:-1] - down[1:, 1:-1])
    # Known boundary values enter the right-hand side of 4 u_p - sum u_q = guidance.
    rhs = guidance
    rhs[0, :] += dst[0, 1:-1]
    rhs[-1, :] += dst[-1, 1:-1]
    rhs[:, 0] += dst[1:-1, 0]
    rhs[:, -1] += dst[1:-1, -1]
    spectrum = fft.dstn(rhs, type=1, axes=(0, 1))
    solution = fft.idstn(spectrum / _eigenvalues(height, width), type=1, axes=(0, 1))
    return np.clip(np.rint(solution), 0, 255).astype(np.uint8)


def clone_into_canvas(pixels: np.ndarray, canvas: np.ndarray, x: int, y: int, mode: str) -> np.ndarray:
    """`poisson_clone` of ``pixels`` placed at ``(x, y)`` on ``canvas``, solved on the rectangle
    grown evenly to `fast_size` on each axis (the source edge-repeated there: no guidance), with
    the canvas around it (`with_ring`) as boundary; returns the clone of ``pixels``' rectangle."""
    height, width = pixels.shape[:2]
    grow_h, grow_w = fast_size(height) - height, fast_size(width) - width
    top, left = grow_h // 2, grow_w // 2
    grown = np.pad(pixels, ((top, grow_h - top), (left, grow_w - left), (0, 0)), mode="edge")
    ring = with_ring(canvas, x - left, y - top, width + grow_w, height + grow_h)
    return poisson_clone(grown, ring, mode)[top:top + height, left:left + width]


def with_ring(canvas: np.ndarray, x: int, y: int, width: int, height: int) -> np.ndarray:
    """The canvas under a ``width`` x ``height`` rectangle at ``(x, y)`` and its 1-px ring; where
    that reaches beyond the canvas, the canvas reflected at its edge (so an object cut by the
    canvas edge is cloned as if the background went on)."""
    size_h, size_w = canvas.shape[:2]
    top, left, bottom, right = y - 1, x - 1, y + height + 1, x + width + 1
    if top >= 0 and left >= 0 and bottom <= size_h and right <= size_w:
        return canvas[top:bottom, left:right]
    pad = (max(0, -top), max(0, bottom - size_h), max(0, -left), max(0, right - size_w))
    padded = cv2.copyMakeBorder(canvas, *pad, cv2.BORDER_REFLECT_101)
    return padded[top + pad[0]:bottom + pad[0], left + pad[2]:right + pad[2]]
