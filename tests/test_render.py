"""Render: boxes inside the canvas and tight on the pixels actually written, for every blend mode."""

import numpy as np
import pytest

from spatule_synth.core.boxes import Box
from spatule_synth.core.config import BLEND_MODES
from spatule_synth.generate.cutouts import Cutout, CutoutPart
from spatule_synth.generate.plan import Placement, SampleSpec, SplitPool
from spatule_synth.generate.blends import seamless_clone
from spatule_synth.generate.render import render
from spatule_synth.core.transform import CUTOUT_MARGIN as M, placement_geometry

SIZE = 128
W, H = 24 + 2 * M, 14 + 2 * M  # the pasted size of tag_cutout() at scale 1


def tag_cutout(width=24, height=14):
    """A flat white tag with dark characters, and a grey margin around it."""
    pixels = np.full((height + 2 * M, width + 2 * M, 3), 128, np.uint8)
    pixels[M:M + height, M:M + width] = 250
    pixels[M + 3:M + height - 3, M + 3:M + width - 3:4] = 10
    alpha = np.zeros(pixels.shape[:2], np.uint8)
    alpha[M:M + height, M:M + width] = 255
    return Cutout("photo.jpg#0", "photo.jpg", pixels, alpha, Box(M, M, M + width, M + height),
                  (CutoutPart("tag", 1, alpha.copy(), 0),), "photo.jpg")


def at(x, y, blend, scale=1.0):
    cutout = tag_cutout()
    geometry = placement_geometry(cutout.size, cutout.object_box, scale)
    return Placement(0, x, y, geometry.width, geometry.height, scale, blend)


def dark_canvas(seed=0):
    return np.random.default_rng(seed).integers(0, 50, (SIZE, SIZE, 3), dtype=np.uint8)


def render_one(placements, blend_canvas_seed=0, cutout=None):
    pool = SplitPool("train", (cutout or tag_cutout(),), ())
    canvas = dark_canvas(blend_canvas_seed)
    before = canvas.copy()
    sample = render(SampleSpec("train", 0, 0, (0, 0), tuple(placements)), pool, canvas)
    return sample, before


def contrast(pixels, box):
    """Mean brightness inside ``box`` minus that of the 3-px ring around it."""
    luminance = pixels.astype(float).mean(axis=-1)
    x0, y0, x1, y1 = (int(v) for v in (box.xmin, box.ymin, box.xmax, box.ymax))
    outer = luminance[y0 - 3:y1 + 3, x0 - 3:x1 + 3]
    inner = luminance[y0:y1, x0:x1]
    return inner.mean() - (outer.sum() - inner.sum()) / (outer.size - inner.size)


def changed(before, after):
    return (before != after).any(axis=-1)


def box_of(mask):
    rows, cols = np.nonzero(mask)
    return Box(cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)


@pytest.mark.parametrize("blend", BLEND_MODES)
@pytest.mark.parametrize("x, y, scale", [(20, 30, 1.0), (0, 0, 1.0), (SIZE - W, SIZE - H, 1.0),
                                         (0, SIZE - H, 1.0), (10, 10, 0.6), (5, 40, 1.7)])
def test_box_is_the_written_object_inside_the_canvas(blend, x, y, scale):
    placement = at(x, y, blend, scale)
    sample, before = render_one([placement])
    [obj] = sample.objects
    assert obj.box.is_inside(SIZE, SIZE) and not obj.truncated
    # The box is the object's box: the scaled object, CUTOUT_MARGIN inside the pasted rectangle.
    assert obj.box == Box(x + M, y + M, x + placement.width - M, y + placement.height - M)
    assert (obj.box.width, obj.box.height) == (round(24 * scale), round(14 * scale))
    # Tight on the pixels: no pixel changed at all outside the box (no context painted around the
    # object), and the pixels changed by more than 8 levels reach its every side: exactly for
    # paste and alpha, within 1 px for the blends that ramp inside the mask.
    assert box_inside(box_of(changed(before, sample.pixels)), obj.box)
    painted = box_of(np.abs(sample.pixels.astype(int) - before.astype(int)).max(axis=-1) > 8)
    if blend in ("paste", "alpha"):
        assert painted == obj.box
    else:
        assert box_inside(painted, obj.box) and box_inside(obj.box, grown(painted, 1)), (painted, obj.box)


def box_inside(inner, outer):
    return (outer.xmin <= inner.xmin and outer.ymin <= inner.ymin and inner.xmax <= outer.xmax
            and inner.ymax <= outer.ymax)


def grown(box, pixels):
    return Box(box.xmin - pixels, box.ymin - pixels, box.xmax + pixels, box.ymax + pixels)


def seamless_trials(seed, make_source, flags=1, trials=30):
    """Seamless-clone random sources at random places; yields (placement, region, changed box)."""
    rng = np.random.default_rng(seed)
    for _ in range(trials):
        width, height = int(rng.integers(6, 40)), int(rng.integers(6, 40))
        x, y = int(rng.integers(0, SIZE - width + 1)), int(rng.integers(0, SIZE - height + 1))
        canvas = dark_canvas(2)
        before = canvas.copy()
        region = box_of(seamless_clone(canvas, make_source(rng, width, height), x, y, flags))
        region = Box(region.xmin + x, region.ymin + y, region.xmax + x, region.ymax + y)
        yield (x, y, width, height), region, box_of(changed(before, canvas))


@pytest.mark.parametrize("flags", [1, 2])  # cv2.NORMAL_CLONE, cv2.MIXED_CLONE
def test_seamless_writes_nothing_outside_the_region_it_reports(flags):
    def textured(rng, width, height):
        return rng.integers(100, 256, (height, width, 3), dtype=np.uint8)

    for (x, y, width, height), region, written in seamless_trials(1, textured, flags):
        assert region.xmin <= written.xmin and region.ymin <= written.ymin, (x, y, width, height)
        assert written.xmax <= region.xmax and written.ymax <= region.ymax, (x, y, width, height)


def test_seamless_region_is_exactly_what_a_bright_object_changes():
    def white(rng, width, height):
        return np.full((height, width, 3), 255, np.uint8)

    for placement, region, written in seamless_trials(3, white):
        assert written == region, placement


def test_flat_object_survives_seamless_cloning():
    """cv2.seamlessClone ignores source gradients within 4 px of its mask edge: with a smaller
    margin a flat white tag comes out as background. The cutout margin keeps it whole."""
    for blend in ("seamless_normal", "seamless_mixed"):
        sample, _ = render_one([at(30, 30, blend)])
        [obj] = sample.objects
        assert contrast(sample.pixels, obj.box) > 80, blend  # 250 on 128 in the cutout: 122


@pytest.mark.parametrize("blend", BLEND_MODES)
def test_truncated_objects_are_clipped_and_flagged(blend):
    sample, before = render_one([at(-12, SIZE - 20, blend)])
    [obj] = sample.objects
    assert obj.truncated and obj.box.is_inside(SIZE, SIZE)
    assert obj.box.xmin >= 0 and obj.box.ymax <= SIZE
    assert box_of(changed(before, sample.pixels)).xmin >= 0


def test_later_paste_takes_covered_pixels_out_of_earlier_boxes():
    sample, _ = render_one([at(10, 10, "paste"), at(25, 10, "paste")])
    first, second = sample.objects
    assert first.box == Box(18, 18, 33, 32)  # its right part is under the second object
    assert second.box == Box(33, 18, 57, 32)
    assert not (first.mask & second.mask).any()


def test_fully_covered_object_gets_no_label():
    sample, _ = render_one([at(10, 10, "paste"), at(10, 10, "paste")])
    assert len(sample.objects) == 1 and sample.hidden == 1


def test_every_seamless_composite_keeps_its_object():
    """Guard for OpenCV 5.0.0, whose seamlessClone writes into the mask it is given: a mask
    reused between calls would make every second composite lose its object, silently."""
    placements = [at(2 + 42 * (i % 3), 2 + 32 * (i // 3), "seamless_normal") for i in range(6)]
    sample, _ = render_one(placements)
    assert len(sample.objects) == 6
    for obj in sample.objects:
        assert contrast(sample.pixels, obj.box) > 80, obj.box
