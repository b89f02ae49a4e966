"""Decoded background photos, kept within a memory budget (least recently used goes first).

Decoding a 3264x2448 JPEG costs several times more than everything else an output image needs,
so each worker keeps recently used photos decoded (and upscaled, for photos smaller than the
canvas); the planner gives consecutive images the same photo, so a photo is decoded about once
per block of images.
"""

from __future__ import annotations

import collections
import os

import cv2
import numpy as np

from spatule_synth.core.images import ImageReadError, read_pixels
from spatule_synth.generate.plan import covering_size
from spatule_synth.generate.sources import Background
from spatule_synth.core import storage


class BackgroundCache:
    def __init__(self, canvas_size: int, budget_bytes: int = 1 << 30) -> None:
        self.canvas_size = canvas_size
        self.budget_bytes = budget_bytes
        self._pixels: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self.decodes = 0

    def pixels(self, background: Background) -> np.ndarray:
        """The photo decoded (EXIF-rotated, RGB), upscaled to cover the canvas if it is smaller."""
        cached = self._pixels.get(background.path)
        if cached is not None:
            self._pixels.move_to_end(background.path)
            return cached
        try:
            source = background.local if background.local and os.path.exists(background.local) else \
                storage.local_copy(background.path, storage.input_cache_dir())  # another machine: fetch it
            pixels = read_pixels(source)
        except ImageReadError as error:  # it decoded when the run started: changed on disk?
            raise ImageReadError(f"{background.path}: {error} (it was readable when the run "
                                 "started; changed on disk?)") from error
        self.decodes += 1
        if (pixels.shape[1], pixels.shape[0]) != (background.width, background.height):
            raise ImageReadError(f"{background.path}: decodes to {pixels.shape[1]}x{pixels.shape[0]}, "
                                 f"was {background.width}x{background.height} when the run started; "
                                 "changed on disk?")
        width, height = covering_size(background, self.canvas_size)
        if (width, height) != (background.width, background.height):
            pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_LINEAR)
        self._pixels[background.path] = pixels
        while len(self._pixels) > 1 and sum(p.nbytes for p in self._pixels.values()) > self.budget_bytes:
            self._pixels.popitem(last=False)
        return pixels

    def window(self, background: Background, x: int, y: int) -> np.ndarray:
        """A writable copy of the canvas-sized window at ``(x, y)``."""
        size = self.canvas_size
        return self.pixels(background)[y:y + size, x:x + size].copy()
