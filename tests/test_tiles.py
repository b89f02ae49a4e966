import itertools
import math
import random

import numpy as np
import pytest

from spatule_synth.core.boxes import Box
from spatule_synth.modes.tiles import Tile, TileObject, choose_negatives, covered_extent, cut_tiles, \
    lost_objects, tile_origins, tile_pixels, worst_case_visible_fraction

TILINGS = [(1, 0), (2, 1), (3, 0), (3, 2), (7, 3), (16, 0), (16, 5), (64, 8), (64, 63), (640, 0),
           (640, 64), (640, 100), (640, 320), (640, 639)]
LENGTHS = list(range(1, 150)) + [639, 640, 641, 1000, 1279, 1280, 1281, 1720, 2448, 3264, 4032]


def _shift(box, x, y):
    return Box(box.xmin - x, box.ymin - y, box.xmax - x, box.ymax - y)


def _random_objects(rng, width, height, count, max_side):
    objects = []
    for _ in range(count):
        w = rng.uniform(1, min(max_side, width))
        h = rng.uniform(1, min(max_side, height))
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        box = Box(x, y, min(x + w, width), min(y + h, height))
        objects.append((rng.choice("ab"), rng.randint(1, 2), box, rng.random() < 0.2))
    return objects


# --- origins ---------------------------------------------------------------------------------

@pytest.mark.parametrize("tile, overlap", TILINGS)
def test_origins_cover_the_length_with_the_overlap_evenly_and_minimally(tile, overlap):
    for length in LENGTHS:
        origins = tile_origins(length, tile, overlap)
        assert origins[0] == 0
        if length <= tile:
            assert origins == [0]
            continue
        assert origins[-1] == length - tile  # last window ends at the photo edge
        strides = [b - a for a, b in zip(origins, origins[1:])]
        assert all(0 < s <= tile - overlap for s in strides)  # overlap >= asked, no gap
        assert max(strides) - min(strides) <= 1  # evenly spread
        # minimal: one window fewer could not reach the edge at the allowed stride
        assert (len(origins) - 2) * (tile - overlap) < length - tile
        covered = np.zeros(length, bool)
        for origin in origins:
            covered[origin:origin + tile] = True
        assert covered.all()


def test_origins_of_a_camera_photo():
    assert tile_origins(3264, 640, 64) == [0, 524, 1049, 1574, 2099, 2624]
    assert tile_origins(2448, 640, 64) == [0, 452, 904, 1356, 1808]
    assert tile_origins(640, 640, 64) == [0]
    assert tile_origins(500, 640, 64) == [0]


@pytest.mark.parametrize("length, tile, overlap", [
    (100, 64, 64), (100, 64, 65), (100, 64, -1), (100, 0, 0), (0, 64, 8), (-5, 64, 8)])
def test_origins_refuse_impossible_tilings(length, tile, overlap):
    with pytest.raises(ValueError):
        tile_origins(length, tile, overlap)


def test_origins_refuse_non_integers():
    with pytest.raises(TypeError):
        tile_origins(100.0, 64, 8)
    with pytest.raises(TypeError):
        tile_origins(100, 64, True)


@pytest.mark.parametrize("tile, overlap", [(t, o) for t, o in TILINGS if t <= 64])
def test_any_interval_no_longer_than_the_overlap_is_inside_one_window(tile, overlap):
    rng = random.Random(tile * 1000 + overlap)
    for length in LENGTHS[:150]:
        windows = [(o, o + tile) for o in tile_origins(length, tile, overlap)]
        starts = [(a, w) for w in range(1, min(overlap, length) + 1) for a in range(length - w + 1)]
        starts += [(a, w) for a, w in ((rng.uniform(0, length), rng.uniform(0, overlap))
                                       for _ in range(50)) if w > 0 and a + w <= length]
        for a, w in starts:
            assert any(lo <= a and a + w <= hi for lo, hi in windows), (length, a, w)


# --- the visibility bound --------------------------------------------------------------------

@pytest.mark.parametrize("tile, overlap", [(16, 0), (16, 5), (64, 8), (64, 40), (100, 30)])
def test_covered_extent_is_a_tight_lower_bound_of_the_best_window(tile, overlap):
    for length in (tile, tile + 1, 2 * tile + 7, 5 * tile - 3, tile + 3 * (tile - overlap)):
        origins = tile_origins(length, tile, overlap)
        for w in [x / 2 for x in range(1, 2 * length + 1)]:
            bound = covered_extent(w, tile, overlap)
            worst = min(max(min(a + w, o + tile) - max(a, o) for o in origins)
                        for a in [x / 2 for x in range(0, int(2 * (length - w)) + 1)])
            assert worst >= bound - 1e-9, (length, w)
            if w <= overlap:
                assert bound == w
    # windows exactly tile - overlap apart: the bound is reached (object centred on an overlap)
    length = tile + 3 * (tile - overlap)
    origins = tile_origins(length, tile, overlap)
    assert {b - a for a, b in zip(origins, origins[1:])} == {tile - overlap}
    w = (overlap + tile) / 2
    a = (tile + (tile - overlap) - w) / 2
    best = max(min(a + w, o + tile) - max(a, o) for o in origins)
    assert best == pytest.approx(covered_extent(w, tile, overlap))
    assert best < w


def test_worst_case_visible_fraction_examples():
    assert worst_case_visible_fraction(100, 100, 640, 100) == 1.0
    assert worst_case_visible_fraction(101, 50, 640, 100) < 1.0
    assert worst_case_visible_fraction(300, 300, 640, 100) == pytest.approx(4 / 9)
    assert worst_case_visible_fraction(241, 241, 640, 100) >= 0.5  # the docstring's example
    assert worst_case_visible_fraction(243, 243, 640, 100) < 0.5
    assert worst_case_visible_fraction(2000, 100, 640, 100) == pytest.approx(640 / 2000)
    with pytest.raises(ValueError):
        worst_case_visible_fraction(0, 10, 640, 100)


# --- labels of the tiles ---------------------------------------------------------------------

def test_a_box_cut_by_a_tile_edge_is_clipped_truncated_and_measured():
    # 1000x700 photo, tile 640, overlap 100: x origins [0, 360], y origins [0, 60]
    objects = [("tag", 1, Box(560, 100, 660, 200), False),
               ("tag", 1, Box(400, 300, 500, 400), True)]  # truncated in the photo already
    tiles = cut_tiles(1000, 700, objects, 640, 100)
    assert [(t.x, t.y, t.size) for t in tiles] == [(0, 0, 640), (360, 0, 640), (0, 60, 640),
                                                   (360, 60, 640)]
    first = tiles[0]
    assert first.objects == (
        TileObject("tag", 1, Box(560, 100, 640, 200), True, 0.8, 0),
        TileObject("tag", 1, Box(400, 300, 500, 400), True, 1.0, 1))
    assert first.unlabelled_parts == 0
    assert tiles[1].objects == (
        TileObject("tag", 1, Box(200, 100, 300, 200), False, 1.0, 0),
        TileObject("tag", 1, Box(40, 300, 140, 400), True, 1.0, 1))
    assert tiles[3].objects[0] == TileObject("tag", 1, Box(200, 40, 300, 140), False, 1.0, 0)


def test_slivers_below_min_visible_are_dropped_and_counted():
    objects = [("tag", 1, Box(600, 10, 700, 50), False),   # 40 % in tile x=0, whole in x=360
               ("tag", 1, Box(0, 10, 50, 50), False)]      # whole in x=0, outside x=360
    tiles = cut_tiles(1000, 640, objects, 640, 100, min_visible=0.5)
    left, right = tiles
    assert [o.source_index for o in left.objects] == [1]
    assert left.unlabelled_parts == 1 and not left.is_object_free
    assert [o.source_index for o in right.objects] == [0] and right.unlabelled_parts == 0
    # the same sliver is kept (clipped, truncated) with a lower threshold
    lenient = cut_tiles(1000, 640, objects, 640, 100, min_visible=0.4)
    assert lenient[0].objects[0] == TileObject("tag", 1, Box(600, 10, 640, 50), True, 0.4, 0)
    assert lenient[0].unlabelled_parts == 0
    # min_visible=1 keeps whole boxes only; 0 keeps every box that shows any area
    assert cut_tiles(1000, 640, objects, 640, 100, min_visible=1.0)[0].unlabelled_parts == 1
    assert len(cut_tiles(1000, 640, objects, 640, 100, min_visible=0.0)[0].objects) == 2


def test_a_box_only_touching_a_tile_edge_is_neither_label_nor_sliver():
    tiles = cut_tiles(1280, 640, [("tag", 1, Box(640, 0, 700, 60), False)], 640, 0)
    assert tiles[0].objects == () and tiles[0].unlabelled_parts == 0 and tiles[0].is_object_free
    assert tiles[1].objects[0].box == Box(0, 0, 60, 60)


def test_small_photo_gives_one_padded_tile_with_untouched_boxes():
    objects = [("tag", 3, Box(10.5, 20, 499, 300), False)]
    (tile,) = cut_tiles(500, 300, objects, 640, 64)
    assert (tile.x, tile.y, tile.size, tile.unlabelled_parts) == (0, 0, 640, 0)
    assert tile.objects == (TileObject("tag", 3, Box(10.5, 20, 499, 300), False, 1.0, 0),)
    assert tile.window == Box(0, 0, 640, 640)


def test_cut_tiles_refuses_boxes_outside_the_photo_and_bad_thresholds():
    with pytest.raises(ValueError, match="not inside the 100x100 photo"):
        cut_tiles(100, 100, [("tag", 1, Box(90, 0, 101, 10), False)], 64, 8)
    for min_visible in (-0.1, 1.1):
        with pytest.raises(ValueError, match="min_visible"):
            cut_tiles(100, 100, [], 64, 8, min_visible=min_visible)
    with pytest.raises(ValueError, match="overlap"):
        cut_tiles(100, 100, [], 64, 64)


@pytest.mark.parametrize("seed", range(8))
def test_nothing_is_lost_between_photo_and_tiles(seed):
    rng = random.Random(seed)
    tile_size = rng.choice([64, 100, 160])
    overlap = rng.randrange(0, tile_size // 2 + 1)
    min_visible = rng.choice([0.3, 0.5, 0.7])
    width, height = rng.randint(30, 5 * tile_size), rng.randint(30, 5 * tile_size)
    objects = _random_objects(rng, width, height, 60, max_side=1.5 * tile_size)
    objects += [("small", 7, box, t) for _, _, box, t in
                _random_objects(rng, width, height, 40, max_side=max(overlap, 1))]
    tiles = cut_tiles(width, height, objects, tile_size, overlap, min_visible)

    assert len(tiles) == (len(tile_origins(width, tile_size, overlap))
                          * len(tile_origins(height, tile_size, overlap)))
    best = [0.0] * len(objects)
    for tile in tiles:
        intersecting = 0
        for name, class_id, box, truncated in objects:
            clipped = _shift(box, tile.x, tile.y).clipped_to(tile.size, tile.size)
            intersecting += clipped is not None
        assert len(tile.objects) + tile.unlabelled_parts == intersecting  # kept or counted
        for obj in tile.objects:
            name, class_id, box, truncated = objects[obj.source_index]
            assert (obj.name, obj.class_id) == (name, class_id)
            assert obj.box.is_inside(tile.size, tile.size)
            assert obj.box.is_inside(width - tile.x, height - tile.y)  # never in the padding
            assert obj.box == _shift(box, tile.x, tile.y).clipped_to(tile.size, tile.size)
            assert obj.visible_fraction == pytest.approx(obj.box.area / box.area)
            assert obj.visible_fraction >= min_visible
            assert obj.truncated == (truncated or obj.visible_fraction < 1)
            best[obj.source_index] = max(best[obj.source_index], obj.visible_fraction)

    lost = lost_objects(tiles, len(objects))
    assert lost == [i for i, fraction in enumerate(best) if fraction == 0.0]
    for index, (name, _, box, truncated) in enumerate(objects):
        bound = worst_case_visible_fraction(box.width, box.height, tile_size, overlap)
        if index in lost:
            assert bound < min_visible  # only objects the guarantee does not cover are lost
        else:
            assert best[index] >= min(bound, 1.0) - 1e-9
        if box.width <= overlap and box.height <= overlap:
            assert best[index] == 1.0  # small objects appear whole somewhere
            whole = [o for t in tiles for o in t.objects
                     if o.source_index == index and o.visible_fraction == 1.0]
            assert all(o.truncated == truncated for o in whole)
    appearing = {o.source_index for t in tiles for o in t.objects}
    assert len(appearing) + len(lost) == len(objects)
    covered = [i for i, (_, _, box, _) in enumerate(objects)
               if worst_case_visible_fraction(box.width, box.height, tile_size, overlap) >= min_visible]
    assert set(covered) <= appearing


def test_an_object_of_side_just_over_the_overlap_may_be_whole_nowhere():
    # windows at 0, 540, 1080 (tile 640, overlap 100): [539, 641) straddles the overlap [540, 640)
    tiles = cut_tiles(1720, 640, [("tag", 1, Box(539, 0, 641, 50), False)], 640, 100)
    assert [t.x for t in tiles] == [0, 540, 1080]
    assert max(o.visible_fraction for t in tiles for o in t.objects) < 1.0
    # nor is an object smaller than tile - overlap (300 < 540) guaranteed whole
    tiles = cut_tiles(1720, 640, [("tag", 1, Box(440, 0, 740, 300), False)], 640, 100)
    assert max(o.visible_fraction for t in tiles for o in t.objects) == pytest.approx(2 / 3)


def test_an_object_the_bound_does_not_cover_can_be_lost_and_is_named():
    box = Box(440, 440, 740, 740)  # centred on the overlaps of both axes
    tiles = cut_tiles(1720, 1720, [("tag", 1, box, False)], 640, 100, min_visible=0.5)
    assert lost_objects(tiles, 1) == [0]
    assert sum(t.unlabelled_parts for t in tiles) == 4  # its four quarters are counted slivers
    lenient = cut_tiles(1720, 1720, [("tag", 1, box, False)], 640, 100, min_visible=0.4)
    fractions = [o.visible_fraction for t in lenient for o in t.objects]
    assert max(fractions) == pytest.approx(4 / 9) == pytest.approx(
        worst_case_visible_fraction(300, 300, 640, 100))


# --- pixels ----------------------------------------------------------------------------------

def test_tile_pixels_are_the_photo_crop():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, size=(700, 1000, 3), dtype=np.uint8)
    tiles = cut_tiles(1000, 700, [], 640, 100)
    covered = np.zeros(photo.shape[:2], bool)
    for tile in tiles:
        pixels = tile_pixels(photo, tile)
        assert pixels.shape == (640, 640, 3) and pixels.dtype == np.uint8
        np.testing.assert_array_equal(pixels, photo[tile.y:tile.y + 640, tile.x:tile.x + 640])
        assert not np.shares_memory(pixels, photo)
        covered[tile.y:tile.y + 640, tile.x:tile.x + 640] = True
    assert covered.all()


def test_tile_pixels_of_a_small_photo_are_padded_black_bottom_right():
    rng = np.random.default_rng(1)
    photo = rng.integers(1, 256, size=(300, 500, 3), dtype=np.uint8)
    (tile,) = cut_tiles(500, 300, [], 640, 64)
    pixels = tile_pixels(photo, tile)
    assert pixels.shape == (640, 640, 3)
    np.testing.assert_array_equal(pixels[:300, :500], photo)
    assert not pixels[300:].any() and not pixels[:, 500:].any()
    # one side only shorter than the tile, and single-channel pixels
    gray = rng.integers(1, 256, size=(300, 1000), dtype=np.uint8)
    tiles = cut_tiles(1000, 300, [], 640, 64)
    assert [(t.x, t.y) for t in tiles] == [(0, 0), (360, 0)]
    pixels = tile_pixels(gray, tiles[1])
    assert pixels.shape == (640, 640)
    np.testing.assert_array_equal(pixels[:300], gray[:, 360:])
    assert not pixels[300:].any()


def test_tile_pixels_refuse_a_tile_outside_the_photo():
    with pytest.raises(ValueError, match="outside"):
        tile_pixels(np.zeros((100, 100, 3), np.uint8), Tile(100, 0, 64))


# --- negatives -------------------------------------------------------------------------------

def _tiles_for_negatives():
    labelled = TileObject("tag", 1, Box(0, 0, 10, 10), False, 1.0, 0)
    tiles = [Tile(x, 0, 64) for x in range(0, 20 * 50, 50)]  # 20 object-free tiles
    tiles += [Tile(5000, 0, 64, (labelled,)), Tile(5100, 0, 64, (), unlabelled_parts=2)]
    random.Random(3).shuffle(tiles)
    return tiles


def test_choose_negatives_is_deterministic_ordered_and_only_object_free():
    tiles = _tiles_for_negatives()
    chosen = choose_negatives(tiles, 0.25, seed=7)
    assert chosen == choose_negatives(list(tiles), 0.25, seed=7)
    assert len(chosen) == 5  # 0.25 of the 20 object-free tiles, exactly
    assert all(t.is_object_free for t in chosen)
    positions = [tiles.index(t) for t in chosen]
    assert positions == sorted(positions)  # input order kept
    others = {tuple(t.x for t in choose_negatives(tiles, 0.25, seed=s)) for s in range(20)}
    assert len(others) > 1  # the seed matters
    free = [t for t in tiles if t.is_object_free]
    assert choose_negatives(tiles, 1.0, seed=0) == free
    assert choose_negatives(tiles, 0.0, seed=0) == []
    assert choose_negatives([], 0.5, seed=0) == []


def test_choose_negatives_keeps_the_share_on_average_when_rounding_per_photo():
    tiles = [Tile(x, 0, 64) for x in range(0, 300, 100)]  # 3 object-free tiles per photo
    counts = [len(choose_negatives(tiles, 0.1, seed=seed)) for seed in range(2000)]
    assert set(counts) == {0, 1}  # floor(0.3) or one more
    assert sum(counts) / len(counts) == pytest.approx(0.3, abs=0.04)


def test_choose_negatives_refuses_bad_arguments():
    for fraction in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError):
            choose_negatives([], fraction, seed=0)
    with pytest.raises(TypeError):
        choose_negatives([], 0.5, seed=1.5)


def test_every_tiling_combination_has_consistent_grid_order():
    tiles = cut_tiles(1300, 900, [], 640, 64)
    xs, ys = tile_origins(1300, 640, 64), tile_origins(900, 640, 64)
    assert [(t.x, t.y) for t in tiles] == [(x, y) for y, x in itertools.product(ys, xs)]
