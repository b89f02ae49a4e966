"""The plan stage: everything random about one synthetic image, drawn once, as plain data.

`plan_sample` draws a `SampleSpec` from ``np.random.default_rng([seed, split_id, index])`` only,
so image ``index`` of a split is the same whatever the number of workers or the order they run in.
Backgrounds are assigned in blocks of ``pool.windows_per_background`` consecutive images (a
seeded permutation of the split's photos per cycle), so a worker decodes each photo once per block
instead of once per image. Blocks are as long as they can be without leaving photos unused (see
`windows_per_background`): decoding a 3264x2448 JPEG costs about ten times the rest of an image.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from spatule_synth.config import GenerateConfig
from spatule_synth.sources import Background, Cutout, scaled_size
from spatule_synth.split import SPLIT_IDS

MAX_WINDOWS_PER_BACKGROUND = 16
MAX_PLACEMENT_ATTEMPTS = 30
_BACKGROUND_STREAM = 0xB6


@dataclasses.dataclass(frozen=True, eq=False)
class SplitPool:
    """What the images of one split may draw from: only that split's cutouts and backgrounds."""

    split: str
    cutouts: tuple[Cutout, ...]
    backgrounds: tuple[Background, ...]
    windows_per_background: int = 1  # consecutive images that share one photo


def windows_per_background(images: int, photos: int) -> int:
    """Images per decoded photo: every photo is used once before blocks grow beyond one image,
    and blocks stop at `MAX_WINDOWS_PER_BACKGROUND` (more windows of one photo buy little)."""
    return max(1, min(MAX_WINDOWS_PER_BACKGROUND, images // max(photos, 1)))


@dataclasses.dataclass(frozen=True)
class Placement:
    """One cutout on the canvas: scale, pasted size (see `placed_size`), top-left corner (may be
    < 0 when truncation is allowed) and blend mode."""

    cutout: int  # index into SplitPool.cutouts
    x: int
    y: int
    width: int
    height: int
    scale: float
    blend: str


def placed_size(cutout: Cutout, scale: float) -> tuple[int, int]:
    """Width and height of ``cutout`` pasted at ``scale``: the object scaled, the margin not."""
    box = cutout.object_box
    return scaled_size(int(box.width), scale), scaled_size(int(box.height), scale)


@dataclasses.dataclass(frozen=True)
class SampleSpec:
    split: str
    index: int
    background: int  # index into SplitPool.backgrounds
    window: tuple[int, int]  # top-left of the canvas in the (covering) background
    placements: tuple[Placement, ...]

    @property
    def name(self) -> str:
        return f"{self.split}_{self.index:06d}"


def covering_size(background: Background, canvas_size: int) -> tuple[int, int]:
    """Size of the background once upscaled (if needed) so that a canvas fits inside it."""
    scale = max(1.0, canvas_size / min(background.width, background.height))
    if scale == 1.0:
        return background.width, background.height
    return (max(canvas_size, math.ceil(background.width * scale)),
            max(canvas_size, math.ceil(background.height * scale)))


def background_for(index: int, pool: SplitPool, seed: int) -> int:
    """The background of image ``index``: blocks of consecutive images share one photo."""
    block = index // pool.windows_per_background
    cycle, position = divmod(block, len(pool.backgrounds))
    rng = np.random.default_rng([seed, SPLIT_IDS[pool.split], _BACKGROUND_STREAM, cycle])
    return int(rng.permutation(len(pool.backgrounds))[position])


def is_negative(index: int, negative_fraction: float) -> bool:
    """Exactly ``round``-ish ``negative_fraction`` of the images, spread evenly over the indices."""
    return math.floor((index + 1) * negative_fraction) > math.floor(index * negative_fraction)


def plan_sample(config: GenerateConfig, pool: SplitPool, index: int) -> SampleSpec:
    """Draw the spec of image ``index`` of ``pool.split``."""
    rng = np.random.default_rng([config.seed, SPLIT_IDS[pool.split], index])
    size = config.canvas_size
    background = background_for(index, pool, config.seed)
    width, height = covering_size(pool.backgrounds[background], size)
    window = (int(rng.integers(0, width - size + 1)), int(rng.integers(0, height - size + 1)))
    count = 0
    if not is_negative(index, config.negative_fraction):
        count = int(rng.integers(config.objects_per_image[0], config.objects_per_image[1] + 1))
    placements: list[Placement] = []
    for _ in range(count):
        placement = _place_one(config, pool, rng, placements)
        if placement is not None:
            placements.append(placement)
    return SampleSpec(pool.split, index, background, window, tuple(placements))


def _place_one(config: GenerateConfig, pool: SplitPool, rng: np.random.Generator,
               placed: list[Placement]) -> Placement | None:
    """A placement that respects the canvas and ``max_overlap``, or None after many attempts."""
    size = config.canvas_size
    for _ in range(MAX_PLACEMENT_ATTEMPTS):
        cutout = int(rng.integers(len(pool.cutouts)))
        scale = float(rng.uniform(*config.scale_range))
        width, height = placed_size(pool.cutouts[cutout], scale)
        if width > size or height > size:
            continue
        if config.allow_truncation:  # the centre stays on the canvas
            x = int(rng.integers(-(width // 2), size - width // 2))
            y = int(rng.integers(-(height // 2), size - height // 2))
        else:
            x, y = int(rng.integers(0, size - width + 1)), int(rng.integers(0, size - height + 1))
        blend = config.blend[int(rng.integers(len(config.blend)))]
        candidate = Placement(cutout, x, y, width, height, scale, blend)
        if all(_overlap(candidate, other, size) <= config.max_overlap for other in placed):
            return candidate
    return None


def _overlap(a: Placement, b: Placement, size: int) -> float:
    """Intersection of the two pasted regions over the smaller one (on the canvas)."""
    def clipped(p: Placement) -> tuple[int, int, int, int]:
        return max(p.x, 0), max(p.y, 0), min(p.x + p.width, size), min(p.y + p.height, size)

    ax0, ay0, ax1, ay1 = clipped(a)
    bx0, by0, bx1, by1 = clipped(b)
    inter = max(0, min(ax1, bx1) - max(ax0, bx0)) * max(0, min(ay1, by1) - max(ay0, by0))
    smaller = min((ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0))
    return inter / smaller if smaller > 0 else 1.0
