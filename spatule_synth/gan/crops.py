"""Cutouts -> square RGBA crops for the GAN, and back.

A crop is the object's box of a cutout (no margin), letterboxed into a square (the longer side
fills it, centred; the padding is transparent) and reduced to ``size`` x ``size``; RGB and alpha
(the cutout's mask) are scaled to [-1, 1], the generator's tanh range. `typical_sizes` keeps each
class's median box, so generated instances are pasted at the size of the real ones.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from spatule_synth.generate.cutouts import Cutout


@dataclasses.dataclass(frozen=True, eq=False)
class CropSet:
    crops: np.ndarray  # (n, size, size, 4) float32 in [-1, 1]: RGB, alpha
    labels: np.ndarray  # (n,) int32: index into classes
    identities: tuple[str, ...]  # each crop's cutout identity
    classes: tuple[str, ...]  # class names, label-map order
    typical_sizes: dict[str, tuple[int, int]]  # class -> median (width, height) of its boxes


def square_crop(cutout: Cutout, size: int) -> np.ndarray:
    """The cutout's object box as a ``size`` x ``size`` RGBA float32 crop in [-1, 1]."""
    x0, y0, x1, y1 = cutout.object_box.voc_ints()
    rgba = np.dstack([cutout.pixels[y0:y1, x0:x1], cutout.alpha[y0:y1, x0:x1]])
    height, width = rgba.shape[:2]
    side = max(height, width)
    square = np.zeros((side, side, 4), np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    square[top:top + height, left:left + width] = rgba
    reduced = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
    return reduced.astype(np.float32) / 127.5 - 1.0


def crop_set(cutouts: list[Cutout], class_order: list[str], size: int) -> CropSet:
    """The crops of every labelled cutout (by its main class)."""
    classes = tuple(name for name in class_order if any(c.class_name == name for c in cutouts))
    kept = [c for c in cutouts if c.class_name in classes]
    typical = {}
    for name in classes:
        boxes = [(c.object_box.width, c.object_box.height) for c in kept if c.class_name == name]
        typical[name] = (int(round(float(np.median([b[0] for b in boxes])))),
                         int(round(float(np.median([b[1] for b in boxes])))))
    crops = np.stack([square_crop(c, size) for c in kept]) if kept else np.zeros((0, size, size, 4), np.float32)
    labels = np.array([classes.index(c.class_name) for c in kept], np.int32)
    return CropSet(crops, labels, tuple(c.identity for c in kept), classes, typical)


def to_uint8(crops: np.ndarray) -> np.ndarray:
    """[-1, 1] floats -> uint8."""
    return np.clip(np.round((crops + 1.0) * 127.5), 0, 255).astype(np.uint8)


def on_checkerboard(rgba: np.ndarray, scale: int = 2) -> np.ndarray:
    """uint8 RGBA -> RGB over a grey checkerboard (what a sample sheet shows), enlarged."""
    size = rgba.shape[0]
    ys, xs = np.mgrid[0:size, 0:size]
    board = np.where(((ys // 4) + (xs // 4)) % 2 == 0, 150, 110).astype(np.float32)[..., None]
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + board * (1.0 - alpha)
    rgb = np.round(rgb).astype(np.uint8)
    return cv2.resize(rgb, (size * scale, size * scale), interpolation=cv2.INTER_NEAREST)
