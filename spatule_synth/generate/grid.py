"""The exhaustive layout (``--layout=grid``): every cutout of a split, and its horizontal mirror
where the class may be flipped (not in ``--no_flip_classes``), on every background photo of that
split at ``--grid_positions`` K distinct positions: one object per image, the classic
foreground / background / mask data set recipe.

Image ``index`` of a split is ``((B * V) + v) * K + k``: background ``B`` outermost (so a worker
decodes each photo once per chunk), then variant ``v`` (cutout ``F`` in the split's pool order,
mirrored or not), then position ``k``. Its file stem is ``fg{F}_bg{B}_flip{0|1}_{k}`` (numbers
zero-padded to the width of the largest, so names sort in grid order); ``F`` and ``B`` index the
split's cutouts and background photos as the manifest lists them (``cutouts``, ``backgrounds``).

Every image of one (cutout, background, mirror) group shares one draw from the ``grid`` stream of
``(seed, split, F, B, mirror)``: scale (``--scale_range``), blend mode and object augmentation
(its horizontal flip is the variant's), then K distinct top-left corners among every corner that
keeps the object on the canvas (with ``--allow_truncation``: its centre on the canvas). When the
group has fewer than K such corners, they repeat in order. An object whose drawn scale and
augmentation never fit the canvas (`MAX_PLACEMENT_ATTEMPTS` draws) is pasted unaugmented at the
largest scale that fits. The canvas is the centre window of the background photo (upscaled first
if it is smaller than the canvas), the same for every image of that photo, so ``OUT/background``
holds one picture per photo. Image augmentation is drawn per image, from the ``image`` stream as
in the random layout.

Labels come first: a paste that the visibility check (``--min_visibility``) finds no longer
recognisable after blending is re-drawn at another corner with another blend mode, as in the random
layout (the manifest entry gives where it really went, and ``redrawn``), and after 4 tries dropped,
leaving the image without a label. So with blends that can wash an object out, a few images leave
their planned corner; ``--blend=paste`` or ``alpha`` (which never wash out) or
``--min_visibility=0`` keep every planned corner.
"""

from __future__ import annotations

import dataclasses


from spatule_synth.core.augment import draw_image, draw_object
from spatule_synth.core.config import PlacementConfig
from spatule_synth.core.transform import CUTOUT_MARGIN, placement_geometry
from spatule_synth.generate.plan import MAX_PLACEMENT_ATTEMPTS, Placement, SampleSpec, SplitPool, covering_size, \
    plan_sample
from spatule_synth.generate.random_streams import stream
from spatule_synth.generate.split import SPLIT_IDS

GRID_CHUNK = 256  # images per chunk (unit of work and of --resume): chunks need not follow photos


@dataclasses.dataclass(frozen=True)
class GridShape:
    """One split's grid: its (cutout, mirrored) variants, background count and positions."""

    variants: tuple[tuple[int, int], ...]  # (cutout index, 0 or 1)
    backgrounds: int
    positions: int

    @property
    def images(self) -> int:
        return len(self.variants) * self.backgrounds * self.positions

    def coordinates(self, index: int) -> tuple[int, int, int, int]:
        """``(F, B, flip, k)`` of image ``index``."""
        rest, k = divmod(index, self.positions)
        background, variant = divmod(rest, len(self.variants))
        cutout, flip = self.variants[variant]
        return cutout, background, flip, k

    def stem(self, index: int, cutouts: int) -> str:
        cutout, background, flip, k = self.coordinates(index)
        return (f"fg{cutout:0{_digits(cutouts)}d}_bg{background:0{_digits(self.backgrounds)}d}"
                f"_flip{flip}_{k:0{_digits(self.positions)}d}")


def _digits(count: int) -> int:
    return len(str(max(count - 1, 0)))


def grid_shape(config: PlacementConfig, pool: SplitPool) -> GridShape:
    """The grid of ``pool``'s split (module docstring)."""
    no_flip = set(config.no_flip_classes)
    variants = []
    for index, cutout in enumerate(pool.cutouts):
        variants.append((index, 0))
        if not cutout.class_names & no_flip:
            variants.append((index, 1))
    return GridShape(tuple(variants), len(pool.backgrounds), config.grid_positions)


def plan_image(config: PlacementConfig, seed: int, pool: SplitPool, index: int) -> SampleSpec:
    """The spec of image ``index`` of ``pool.split`` in the run's layout: grid or random."""
    if config.layout == "grid":
        return plan_grid_sample(config, seed, pool, index)
    return plan_sample(config, seed, pool, index)


def plan_grid_sample(config: PlacementConfig, seed: int, pool: SplitPool, index: int) -> SampleSpec:
    """The spec of grid image ``index`` of ``pool.split`` (module docstring)."""
    shape = grid_shape(config, pool)
    cutout_index, background, flip, k = shape.coordinates(index)
    size = config.canvas_size
    width, height = covering_size(pool.backgrounds[background], size)
    window = ((width - size) // 2, (height - size) // 2)
    placement = _group_placements(config, seed, pool, cutout_index, background, flip)[k]
    image_augment = draw_image(stream(seed, "image", SPLIT_IDS[pool.split], index), config.image_augment)
    return SampleSpec(pool.split, index, background, window, (placement,), image_augment,
                      stem=shape.stem(index, len(pool.cutouts)))


def _group_placements(config: PlacementConfig, seed: int, pool: SplitPool, cutout_index: int,
                      background: int, flip: int) -> list[Placement]:
    """The K placements of one (cutout, background, mirror) group: one draw, K corners."""
    rng = stream(seed, "grid", SPLIT_IDS[pool.split], cutout_index, background, flip)
    cutout, size = pool.cutouts[cutout_index], config.canvas_size
    for _ in range(MAX_PLACEMENT_ATTEMPTS):
        scale = float(rng.uniform(*config.scale_range))
        augment = dataclasses.replace(draw_object(rng, config.object_augment, may_flip=True),
                                      flip_h=bool(flip))
        if augment.flip_v and cutout.class_names & set(config.no_flip_classes):
            augment = dataclasses.replace(augment, flip_v=False)
        blend = config.blend[int(rng.integers(len(config.blend)))]
        geometry = placement_geometry(cutout.size, cutout.object_box, scale, augment)
        if geometry.width <= size and geometry.height <= size:
            break
    else:  # never fits as drawn: unaugmented (but for the mirror), at the largest scale that fits
        augment = dataclasses.replace(type(augment)(), flip_h=bool(flip))
        room = size - 2 * CUTOUT_MARGIN
        scale = min(room / cutout.object_box.width, room / cutout.object_box.height)
        geometry = placement_geometry(cutout.size, cutout.object_box, scale, augment)
        while (geometry.width > size or geometry.height > size) and scale > 0:
            scale *= 0.99
            geometry = placement_geometry(cutout.size, cutout.object_box, scale, augment)
    width, height = geometry.width, geometry.height
    if config.allow_truncation:
        low_x, low_y, span_x, span_y = -(width // 2), -(height // 2), size, size
    else:
        low_x, low_y, span_x, span_y = 0, 0, size - width + 1, size - height + 1
    corners = span_x * span_y
    chosen = rng.choice(corners, size=min(config.grid_positions, corners), replace=False)
    return [Placement(cutout_index, low_x + int(chosen[k % len(chosen)]) % span_x,
                      low_y + int(chosen[k % len(chosen)]) // span_x, width, height, scale, blend, augment)
            for k in range(config.grid_positions)]
