"""Cutting big labelled photos into fixed-size square windows ("tiles") at full resolution.

A detector trained on 640x640 crops at full resolution must be evaluated on real photos at the same
scale, not on 3264x2448 photos shrunk five times. This module holds the pure logic: where the
windows go, which labels each window keeps, the window pixels, and which object-free windows to
keep as negatives. Coordinates follow `spatule_synth.core.boxes` (float pixel edges); a tile's boxes are
in the tile's own frame (origin at its top-left corner).

Window placement (`tile_origins`, per axis; the tiles of a photo are the grid of both axes):

* The first window starts at 0 and the last ends at the photo edge (``length - tile``); between
  them the fewest windows that overlap each other by at least ``overlap`` px, spread evenly
  (consecutive strides differ by at most 1 px). Every pixel is in some window.
* A photo side shorter than the tile gets one window at 0, and the tile is padded (see
  `tile_pixels`).

Guarantees (proved in `tile_origins` and tested):

* **Whole objects.** An object whose box is at most ``overlap`` px wide *and* at most ``overlap``
  px high lies entirely inside at least one tile (``visible_fraction == 1``). This is the only
  size up to which wholeness is guaranteed: an object wider than ``overlap`` (even one smaller
  than ``tile - overlap``) can straddle every boundary between two windows.
* **Partly visible objects.** Along one axis, an object of extent ``w`` shows at least
  ``covered(w) = w`` if ``w <= overlap``, else ``min(tile, (overlap + w) / 2)`` px in its best
  window; the tiles being a grid, its best tile shows at least the product of both axes'
  fractions (`worst_case_visible_fraction`). An object is only ever *lost* (kept by no tile) when
  that bound is below ``min_visible``; `lost_objects` names them so the caller can report them.
  E.g. tile 640, overlap 100, min_visible 0.5: squares up to 100 px are always whole, squares up
  to 241 px always appear at >= 50 %, a 300x300 object may appear at best 4/9 visible and be lost.
  For a square of side ``w <= tile`` to never be lost, use ``overlap >= (2 * sqrt(min_visible) - 1) * w``.

Labels of a tile (`cut_tiles`): each object box is clipped to the tile. It is kept when its
visible area is at least ``min_visible`` of its full area, flagged ``truncated`` if it was already
truncated or lost any area to the tile edge. Below ``min_visible`` it is a *sliver*: dropped from
the tile's labels but counted in ``Tile.unlabelled_parts``, because the tile still shows part of an
object nobody labelled there (a detector finding it would be scored as a false positive). We keep
such tiles by default and count them; a caller that wants clean tiles drops those with
``unlabelled_parts > 0``. A tile is object-free (`Tile.is_object_free`, a candidate negative) only
when it has neither labels nor slivers.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import random
from typing import Iterable, Sequence

import numpy as np

from spatule_synth.core.boxes import Box


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = operator.index(value)
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def _check_tiling(tile: int, overlap: int) -> tuple[int, int]:
    tile = _positive_int(tile, "tile size")
    if isinstance(overlap, bool):
        raise TypeError(f"tile overlap must be an integer, got {overlap!r}")
    overlap = operator.index(overlap)
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be at least 0 and less than the tile size {tile}, "
                         f"got {overlap}")
    return tile, overlap


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Window starts along one axis of ``length`` px: windows of ``tile`` px overlapping >= ``overlap``.

    ``[0]`` when ``length <= tile`` (one padded window). Otherwise ``n = ceil((length - tile) /
    (tile - overlap)) + 1`` windows, the fewest whose strides (each at most ``tile - overlap``)
    reach ``length - tile``; origin ``i`` is ``floor(i * (length - tile) / (n - 1))``, so the
    first is 0, the last ``length - tile``, and each stride is the floor or the ceiling of the even
    stride ``(length - tile) / (n - 1) <= tile - overlap``, hence at most ``tile - overlap``.

    Why an interval ``[a, b)`` inside ``[0, length)`` with ``b - a <= overlap`` is inside a window:
    take the last origin ``o_i <= a``. If it is the last window, that window reaches ``length``.
    Otherwise ``o_{i+1} > a`` and window ``i`` ends at ``o_i + tile >= o_{i+1} + overlap > a +
    overlap >= b``.
    """
    length = _positive_int(length, "length")
    tile, overlap = _check_tiling(tile, overlap)
    if length <= tile:
        return [0]
    span = length - tile
    strides = -(-span // (tile - overlap))  # ceil
    return [i * span // strides for i in range(strides + 1)]


def covered_extent(extent: float, tile: int, overlap: int) -> float:
    """The least length of an object's ``extent`` that its best window shows, along one axis.

    Holds wherever the object sits in a photo of any size (see the module docstring): ``extent``
    if ``extent <= overlap``, else ``min(tile, (overlap + extent) / 2)``, capped at ``extent``.
    The bound is reached when the windows are exactly ``tile - overlap`` apart and the object sits
    centred on the overlap of two windows.
    """
    tile, overlap = _check_tiling(tile, overlap)
    if extent <= overlap:
        return float(extent)
    return float(min(extent, tile, (overlap + extent) / 2))


def worst_case_visible_fraction(width: float, height: float, tile: int, overlap: int) -> float:
    """Lower bound of the best `TileObject.visible_fraction` of a ``width`` x ``height`` object.

    1.0 means the object is guaranteed whole in some tile; below ``min_visible`` it may be lost.
    """
    if not (width > 0 and height > 0):
        raise ValueError(f"object size must be positive, got {width}x{height}")
    return (covered_extent(width, tile, overlap) / width) * (covered_extent(height, tile, overlap)
                                                             / height)


@dataclasses.dataclass(frozen=True)
class TileObject:
    """One object label of a tile, its box in the tile's frame."""

    name: str
    class_id: int
    box: Box  # tile coordinates, inside [0, tile.size] on both axes
    truncated: bool  # truncated in the photo already, or cut by the tile edge
    visible_fraction: float  # visible area in this tile / full area of the photo's box (1.0: whole)
    source_index: int  # position of the object in the list given to `cut_tiles`


@dataclasses.dataclass(frozen=True)
class Tile:
    """A ``size`` x ``size`` window of a photo whose top-left corner is ``(x, y)`` in the photo.

    The window may extend beyond a photo smaller than the tile; that part is padding
    (`tile_pixels`) and holds no box.
    """

    x: int
    y: int
    size: int
    objects: tuple[TileObject, ...] = ()
    unlabelled_parts: int = 0  # slivers: objects partly in the tile but under min_visible, unlabelled

    @property
    def window(self) -> Box:
        """The window in photo coordinates (may extend beyond a photo smaller than the tile)."""
        return Box(self.x, self.y, self.x + self.size, self.y + self.size)

    @property
    def is_object_free(self) -> bool:
        """True when the tile shows no object at all: no label and no unlabelled sliver."""
        return not self.objects and not self.unlabelled_parts


ObjectSpec = tuple[str, int, Box, bool]  # (name, class_id, box in photo coordinates, truncated)


def cut_tiles(width: int, height: int, objects: Iterable[ObjectSpec], tile_size: int,
              overlap: int, min_visible: float = 0.5) -> list[Tile]:
    """Every tile of a ``width`` x ``height`` photo, row by row, with its labels and sliver count.

    ``objects`` are ``(name, class_id, box, truncated)`` with boxes in photo coordinates, inside
    the photo (`ValueError` otherwise: clip them first, as `labelimg` does). ``source_index`` of a
    `TileObject` is the object's position in ``objects``, to find its other fields (difficult,
    pose, XML index). Keeping rules: see the module docstring. ``min_visible`` is in [0, 1]; 0
    keeps every object that shows any area in a tile.
    """
    width, height = _positive_int(width, "photo width"), _positive_int(height, "photo height")
    tile_size, overlap = _check_tiling(tile_size, overlap)
    if not 0 <= min_visible <= 1:
        raise ValueError(f"min_visible must be between 0 and 1, got {min_visible}")
    specs = list(objects)
    for index, (name, _class_id, box, _truncated) in enumerate(specs):
        if not box.is_inside(width, height):
            raise ValueError(f"object #{index} ({name!r}): box ({box}) is not inside the "
                             f"{width}x{height} photo")
    tiles = []
    for y in tile_origins(height, tile_size, overlap):
        for x in tile_origins(width, tile_size, overlap):
            kept, slivers = [], 0
            for index, (name, class_id, box, truncated) in enumerate(specs):
                shifted = Box(box.xmin - x, box.ymin - y, box.xmax - x, box.ymax - y)
                clipped = shifted.clipped_to(tile_size, tile_size)
                if clipped is None:
                    continue
                fraction = 1.0 if clipped == shifted else min(1.0, clipped.area / box.area)
                if fraction < min_visible:
                    slivers += 1
                    continue
                kept.append(TileObject(name, class_id, clipped, bool(truncated) or fraction < 1,
                                       fraction, index))
            tiles.append(Tile(x, y, tile_size, tuple(kept), slivers))
    return tiles


def lost_objects(tiles: Iterable[Tile], object_count: int) -> list[int]:
    """Indices (in the ``objects`` given to `cut_tiles`) of the objects that no tile labels.

    Only objects whose `worst_case_visible_fraction` is below ``min_visible`` can be lost; the
    caller should report them (their pixels are in the tiles, as unlabelled slivers).
    """
    seen = {obj.source_index for tile in tiles for obj in tile.objects}
    return [index for index in range(object_count) if index not in seen]


def tile_pixels(pixels: np.ndarray, tile: Tile) -> np.ndarray:
    """The ``tile.size`` x ``tile.size`` window of ``pixels`` (``(H, W)`` or ``(H, W, C)``).

    Where the window extends beyond the photo (a photo side shorter than the tile) it is padded
    with zeros (black) at the bottom and right, so tile boxes need no shift. Black rather than
    replicated edges: replicating would smear any object touching the edge into stripes that
    look like unlabelled content; black padding is plainly "no photo" (as letterboxing).
    A new contiguous array of the same dtype, never a view of ``pixels``.
    """
    height, width = pixels.shape[:2]
    if not (0 <= tile.x < width and 0 <= tile.y < height):
        raise ValueError(f"tile origin ({tile.x}, {tile.y}) is outside the {width}x{height} photo")
    crop = pixels[tile.y:tile.y + tile.size, tile.x:tile.x + tile.size]
    out = np.zeros((tile.size, tile.size) + pixels.shape[2:], dtype=pixels.dtype)
    out[:crop.shape[0], :crop.shape[1]] = crop
    return out


def choose_negatives(tiles: Sequence[Tile], fraction: float, seed: int) -> list[Tile]:
    """A deterministic share ``fraction`` of the object-free tiles, in their input order.

    The caller keeps every labelled tile plus these. Only `Tile.is_object_free` tiles are
    candidates (a tile with a sliver shows an unlabelled object: never a negative). Of ``n``
    candidates, ``floor(fraction * n)`` are kept, plus one more with probability equal to the
    remainder, so that calling once per photo keeps ``fraction`` of the negatives on average
    instead of rounding every photo's share to 0. The same tiles, fraction and seed always give
    the same choice; vary the seed per photo (e.g. derive it from the run seed and the source
    id), or the same window positions are chosen in every photo of one size.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"negative fraction must be between 0 and 1, got {fraction}")
    if isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    rng = random.Random(operator.index(seed))
    candidates = [index for index, tile in enumerate(tiles) if tile.is_object_free]
    wanted = fraction * len(candidates)
    count = math.floor(wanted)
    if rng.random() < wanted - count:
        count += 1
    chosen = set(rng.sample(candidates, count))
    return [tile for index, tile in enumerate(tiles) if index in chosen]
