import math

import pytest

from spatule_synth.core.boxes import Box, BoxError


def test_pixel_edge_convention_covers_whole_pixels():
    box = Box(10, 20, 15, 30)  # columns 10..14, rows 20..29
    assert (box.width, box.height, box.area) == (5, 10, 50)
    assert box.normalized(100, 50) == (0.1, 0.4, 0.15, 0.6)
    assert Box.from_normalized(*box.normalized(100, 50), 100, 50) == box


@pytest.mark.parametrize("coords, words", [
    ((5, 5, 5, 9), "zero-area box (xmin=5 ymin=5 xmax=5 ymax=9)"),
    ((9, 5, 4, 9), "inverted box (xmin=9 ymin=5 xmax=4 ymax=9)"),
    ((0, math.nan, 4, 9), "coordinates must be finite numbers"),
])
def test_invalid_boxes_are_refused_with_their_values(coords, words):
    with pytest.raises(BoxError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Box(*coords)


def test_voc_ints_round_outwards_so_no_pixel_is_lost():
    assert Box(10.4, 20.6, 15.2, 30.0).voc_ints() == (10, 20, 16, 30)


def test_clipping_to_the_image():
    assert Box(-5, -1, 50, 40).clipped_to(40, 30) == Box(0, 0, 40, 30)
    assert Box(50, 0, 60, 10).clipped_to(40, 30) is None
    assert Box(0, 0, 40, 30).is_inside(40, 30)
    assert not Box(0, 0, 40.5, 30).is_inside(40, 30)
