"""The plan stage: everything random about one synthetic image, drawn once, as plain data.

`plan_sample` draws a `SampleSpec` from the ``image`` stream of ``(seed, split, index)`` only
(`spatule_synth.generate.random_streams`), so image ``index`` of a split is the same whatever the number of
workers or the order they run in.
Backgrounds are assigned in blocks of ``pool.windows_per_background`` consecutive images (a
seeded permutation of the split's photos per cycle), so a worker decodes each photo once per block
instead of once per image. Blocks are as long as they can be without leaving photos unused (see
`windows_per_background`): decoding a 3264x2448 JPEG costs about ten times the rest of an image.

Placements: labelled cutouts first (``--class_balance``: ``proportional`` draws cutouts
uniformly, ``uniform`` draws a class first; with ``--rendered_fraction`` / ``--gan_fraction``
and more than one kind of cutout in the split, a draw first picks rendered / generated ones with
that probability, the others with the rest, then a cutout among them), then distractors. Each gets its scale, blend mode and
object augmentation. Overlap is bounded by ``--max_overlap`` (pasted rectangles, intersection over
the smaller) unless ``--max_occlusion`` is set: then overlap is allowed as long as no labelled
object already placed loses more than that fraction of its mask to later pastes (checked on the
real warped masks, with `spatule_synth.generate.placing.placed_regions`).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from spatule_synth.core.augment import ImageAugment, ObjectAugment, draw_image, draw_object
from spatule_synth.core.config import PlacementConfig
from spatule_synth.generate.cutouts import Cutout
from spatule_synth.generate.placing import placed_regions
from spatule_synth.generate.random_streams import stream
from spatule_synth.generate.sources import Background
from spatule_synth.generate.split import SPLIT_IDS
from spatule_synth.core.transform import placement_geometry

MAX_WINDOWS_PER_BACKGROUND = 16
MAX_PLACEMENT_ATTEMPTS = 30


@dataclasses.dataclass(frozen=True, eq=False)
class SplitPool:
    """What the images of one split may draw from: only that split's cutouts and backgrounds
    (distractors are never labelled, so every split may use them)."""

    split: str
    cutouts: tuple[Cutout, ...]
    backgrounds: tuple[Background, ...]
    windows_per_background: int = 1  # consecutive images that share one photo
    distractors: tuple[Cutout, ...] = ()

    def cutout_of(self, placement: Placement) -> Cutout:
        return (self.distractors if placement.distractor else self.cutouts)[placement.cutout]

    @functools.cached_property
    def cutout_by_id(self) -> dict[str, Cutout]:
        return {cutout.cutout_id: cutout for cutout in self.cutouts}


def windows_per_background(images: int, photos: int) -> int:
    """Images per decoded photo: every photo is used once before blocks grow beyond one image,
    and blocks stop at `MAX_WINDOWS_PER_BACKGROUND` (more windows of one photo buy little)."""
    return max(1, min(MAX_WINDOWS_PER_BACKGROUND, images // max(photos, 1)))


@dataclasses.dataclass(frozen=True)
class Placement:
    """One cutout on the canvas: top-left corner of its placed image (may be < 0 when truncation
    is allowed), placed size (see `spatule_synth.core.transform.placement_geometry`), scale, blend mode
    and object augmentation."""

    cutout: int  # index into SplitPool.cutouts, or SplitPool.distractors for a distractor
    x: int
    y: int
    width: int
    height: int
    scale: float
    blend: str
    augment: ObjectAugment = ObjectAugment()
    distractor: bool = False


@dataclasses.dataclass(frozen=True)
class SampleSpec:
    split: str
    index: int
    background: int  # index into SplitPool.backgrounds
    window: tuple[int, int]  # top-left of the canvas in the (covering) background
    placements: tuple[Placement, ...]
    image_augment: ImageAugment = ImageAugment()
    stem: str = ""  # the file name without extension, when not SPLIT_INDEX (`spatule_synth.generate.grid`)

    @property
    def name(self) -> str:
        return self.stem or f"{self.split}_{self.index:06d}"


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
    rng = stream(seed, "background_order", SPLIT_IDS[pool.split], cycle)
    return int(rng.permutation(len(pool.backgrounds))[position])


def is_negative(index: int, negative_fraction: float) -> bool:
    """Exactly ``round``-ish ``negative_fraction`` of the images, spread evenly over the indices."""
    return math.floor((index + 1) * negative_fraction) > math.floor(index * negative_fraction)


def plan_sample(config: PlacementConfig, seed: int, pool: SplitPool, index: int) -> SampleSpec:
    """Draw the spec of image ``index`` of ``pool.split`` in the random layout (``--layout=grid``:
    `spatule_synth.generate.grid.plan_image` chooses)."""
    rng = stream(seed, "image", SPLIT_IDS[pool.split], index)
    size = config.canvas_size
    background = background_for(index, pool, seed)
    width, height = covering_size(pool.backgrounds[background], size)
    window = (int(rng.integers(0, width - size + 1)), int(rng.integers(0, height - size + 1)))
    count = 0
    if not is_negative(index, config.negative_fraction):
        count = int(rng.integers(config.objects_per_image[0], config.objects_per_image[1] + 1))
    distractors = 0
    if pool.distractors:
        low, high = config.distractors_per_image
        distractors = int(rng.integers(low, high + 1))
    layout = _Layout(config, pool)
    for number in range(count + distractors):
        layout.place_one(rng, distractor=number >= count)
    image_augment = draw_image(rng, config.image_augment)
    return SampleSpec(pool.split, index, background, window, tuple(layout.placements), image_augment)


class _Layout:
    """The placements of one image so far, and what they cover (for ``--max_occlusion``)."""

    def __init__(self, config: PlacementConfig, pool: SplitPool) -> None:
        self.config, self.pool = config, pool
        self.placements: list[Placement] = []
        self._parts: list[tuple[np.ndarray, int]] = []  # labelled masks on the canvas, pixel counts
        self._kinds = _cutout_kinds(pool.cutouts, {"rendered": config.rendered_fraction,
                                                    "gan": config.gan_fraction})

    def _draw_cutout(self, rng: np.random.Generator, distractor: bool) -> int:
        if distractor:
            return int(rng.integers(len(self.pool.distractors)))
        candidates = self._kinds[0][0]
        if len(self._kinds) > 1:  # --rendered_fraction, --gan_fraction
            draw = rng.random()
            candidates = next((group for group, below in self._kinds if draw < below), self._kinds[-1][0])
        if self.config.class_balance == "uniform":
            classes = sorted({self.pool.cutouts[i].class_name for i in candidates})
            name = classes[int(rng.integers(len(classes)))]
            members = [i for i in candidates if self.pool.cutouts[i].class_name == name]
            return members[int(rng.integers(len(members)))]
        return candidates[int(rng.integers(len(candidates)))]

    def place_one(self, rng: np.random.Generator, distractor: bool) -> None:
        """Add a placement that respects the canvas and the overlap rule, if one is found."""
        config, size = self.config, self.config.canvas_size
        for _ in range(MAX_PLACEMENT_ATTEMPTS):
            index = self._draw_cutout(rng, distractor)
            cutout = (self.pool.distractors if distractor else self.pool.cutouts)[index]
            scale = float(rng.uniform(*config.scale_range))
            may_flip = not (cutout.class_names & set(config.no_flip_classes))
            augment = draw_object(rng, config.object_augment, may_flip)
            geometry = placement_geometry(cutout.size, cutout.object_box, scale, augment)
            width, height = geometry.width, geometry.height
            if width > size or height > size:
                continue
            x, y = _position(rng, config, width, height)
            blend = config.blend[int(rng.integers(len(config.blend)))]
            candidate = Placement(index, x, y, width, height, scale, blend, augment, distractor)
            if self._accepts(candidate):
                self.placements.append(candidate)
                return

    def accepts_in_order(self, placements: list[Placement]) -> bool:
        """Whether ``placements``, added in order, all respect the overlap rule."""
        for placement in placements:
            if not self._accepts(placement):
                return False
            self.placements.append(placement)
        return True

    def _accepts(self, candidate: Placement) -> bool:
        if self.config.max_occlusion <= 0:
            return all(_overlap(candidate, other, self.config.canvas_size) <= self.config.max_overlap
                       for other in self.placements)
        written, parts = placed_regions(self.pool.cutout_of(candidate), candidate, self.config.canvas_size)
        for mask, total in self._parts:
            if np.count_nonzero(mask & ~written) < (1.0 - self.config.max_occlusion) * total:
                return False
        for mask, _ in self._parts:
            mask &= ~written
        self._parts.extend((part, int(np.count_nonzero(part))) for part in parts)
        return True


def _cutout_kinds(cutouts: tuple[Cutout, ...], fractions: dict[str, float | None]
                  ) -> list[tuple[list[int], float]]:
    """``(cutout indices, cumulative probability)`` per kind a draw picks first: each origin with
    a fraction and cutouts, in ``fractions`` order, then every other cutout with the rest;
    renormalised when a kind is missing. One group (no draw) when there is nothing to choose."""
    groups, claimed = [], set()
    for origin, fraction in fractions.items():
        members = [i for i, c in enumerate(cutouts) if c.origin == origin]
        if fraction is not None and members:
            groups.append((members, fraction))
            claimed.update(members)
    rest = [i for i in range(len(cutouts)) if i not in claimed]
    if rest:
        groups.append((rest, max(0.0, 1.0 - sum(f for _, f in groups))))
    total = sum(f for _, f in groups)
    if len(groups) < 2 or total <= 0:
        return [(list(range(len(cutouts))), 1.0)]
    kinds, below = [], 0.0
    for members, fraction in groups:
        below += fraction / total
        kinds.append((members, below))
    return kinds


def _position(rng: np.random.Generator, config: PlacementConfig, width: int, height: int) -> tuple[int, int]:
    """Top-left corner of a ``width`` x ``height`` placement: inside the canvas, or (with
    ``--allow_truncation``) anywhere its centre stays on it."""
    size = config.canvas_size
    if config.allow_truncation:
        return (int(rng.integers(-(width // 2), size - width // 2)),
                int(rng.integers(-(height // 2), size - height // 2)))
    return int(rng.integers(0, size - width + 1)), int(rng.integers(0, size - height + 1))


def redraw_placement(config: PlacementConfig, seed: int, pool: SplitPool, spec: SampleSpec,
                     number: int, attempt: int, pasted: tuple[Placement, ...]) -> Placement | None:
    """Placement ``number`` of ``spec`` somewhere else, with a blend mode drawn again (same cutout,
    scale and augmentation), from the ``redraw`` stream of ``(seed, split, index, number,
    attempt)``; None if no position respects the overlap rule with the layout as it now is:
    ``pasted`` (the placements before it, where they really went) and the planned ones after it."""
    rng = stream(seed, "redraw", SPLIT_IDS[pool.split], spec.index, number, attempt)
    planned = spec.placements[number]
    for _ in range(MAX_PLACEMENT_ATTEMPTS):
        x, y = _position(rng, config, planned.width, planned.height)
        blend = config.blend[int(rng.integers(len(config.blend)))]
        candidate = dataclasses.replace(planned, x=x, y=y, blend=blend)
        layout = [*pasted, candidate, *spec.placements[number + 1:]]
        if _Layout(config, pool).accepts_in_order(layout):
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
