import re

import cv2
import numpy as np
import pytest

from spatule_synth.core.boxes import Box
from spatule_synth.core.masks import BOX_AGREEMENT_PX, GRABCUT_MAX_SIDE, MIN_BOX_SHARE, MaskModel, \
    MaskModelError, RefinedMask, context_window, grabcut_foreground, load_mask_model, refine_mask

# Keras 3 itself triggers this NumPy 2 warning when saving a model.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

RED = (210, 40, 40)


def textured_background(width, height, seed):
    """Blocks of greens, blues and greys (never red), with pixel noise."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 200, size=(height // 6 + 1, width // 6 + 1, 3))
    blocks[..., 0] = np.minimum(blocks[..., 0], blocks[..., 1:].min(axis=-1))  # red never dominates
    photo = cv2.resize(blocks.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    return np.clip(photo + rng.normal(0, 6, photo.shape), 0, 255).astype(np.uint8)


def draw_shape(shape, width, height, centre, size, seed):
    """A bool mask of ``shape`` ('ellipse', 'polygon' or 'ring') around ``centre``."""
    rng = np.random.default_rng(seed)
    canvas = np.zeros((height, width), np.uint8)
    cx, cy = centre
    if shape == "ellipse":
        cv2.ellipse(canvas, (cx, cy), (size, int(size * 0.6)), float(rng.uniform(0, 180)), 0, 360, 255, -1)
    elif shape == "polygon":
        angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
        radii = rng.uniform(0.6, 1.0, 7) * size
        points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(canvas, [points.round().astype(np.int32)], 255)
    else:  # a thick ring: the hole is background
        cv2.circle(canvas, (cx, cy), size, 255, -1)
        cv2.circle(canvas, (cx, cy), size // 2, 0, -1)
    return canvas > 0


def scene(shape="ellipse", seed=0, size=(240, 200), centre=None, radius=60, colour=RED):
    """A textured photo with one noisy object of ``colour``; returns (pixels, true mask, tight box)."""
    width, height = size
    rng = np.random.default_rng(seed + 100)
    photo = textured_background(width, height, seed)
    truth = draw_shape(shape, width, height, centre or (width // 2, height // 2), radius, seed)
    shade = np.clip(np.array(colour) + rng.normal(0, 10, (height, width, 3)), 0, 255).astype(np.uint8)
    photo[truth] = shade[truth]
    rows, cols = np.flatnonzero(truth.any(axis=1)), np.flatnonzero(truth.any(axis=0))
    return photo, truth, Box(cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)


def crop_of(truth, box):
    x0, y0, x1, y1 = box.voc_ints()
    return truth[y0:y1, x0:x1]


def iou(mask, truth):
    solid = mask >= 128
    return (solid & truth).sum() / (solid | truth).sum()


@pytest.mark.parametrize("shape,seed", [("ellipse", 0), ("ellipse", 1), ("polygon", 2), ("polygon", 3),
                                        ("ring", 4)])
def test_grabcut_recovers_a_synthetic_object(shape, seed):
    pixels, truth, box = scene(shape, seed)
    mask, used_fallback = refine_mask(pixels, box, "grabcut")
    assert not used_fallback
    assert mask.dtype == np.uint8 and mask.shape == (box.height, box.width)
    assert set(np.unique(mask)) <= {0, 255}
    assert iou(mask, crop_of(truth, box)) >= 0.8


def grabcut_in_box(pixels, box):
    """GrabCut's own foreground over the integer box, before refine_mask judges it."""
    height, width = pixels.shape[:2]
    x0, y0, x1, y1 = box.voc_ints()
    cx0, cy0, cx1, cy1 = context_window((x0, y0, x1, y1), width, height)
    foreground = grabcut_foreground(np.ascontiguousarray(pixels[cy0:cy1, cx0:cx1]),
                                    (x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0))
    return foreground[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]


@pytest.mark.parametrize("shape,seed", [("ellipse", 0), ("polygon", 1)])
def test_grabcut_two_tone_object_loses_its_tips_so_the_box_is_kept(shape, seed):
    """Yellow/blue stripes on blocks of every colour: GrabCut gets most of the object (IoU >= 0.8)
    but drops whole stripes at its top or bottom tip, so its mask's box would be short of the
    tight box by more than BOX_AGREEMENT_PX: the whole box is used, and the reason names the side
    (checked against the true shape: those rows hold object pixels the mask lacks)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(35, 41, 3)).astype(np.uint8)
    pixels = cv2.resize(blocks, (240, 200), interpolation=cv2.INTER_NEAREST)
    truth = draw_shape(shape, 240, 200, (120, 100), 60, seed)
    stripes = np.zeros_like(pixels)
    stripes[:] = (230, 200, 30)
    stripes[(np.arange(200) // 5) % 2 == 0] = (40, 40, 160)
    pixels[truth] = np.clip(stripes + rng.normal(0, 10, pixels.shape), 0, 255).astype(np.uint8)[truth]
    rows, cols = np.flatnonzero(truth.any(axis=1)), np.flatnonzero(truth.any(axis=0))
    box = Box(cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    grabbed = grabcut_in_box(pixels, box)
    assert iou(grabbed.astype(np.uint8) * 255, crop_of(truth, box)) >= 0.8
    mask, reason = refine_mask(pixels, box, "grabcut")
    assert (mask == 255).all() and mask.shape == (box.height, box.width)
    named = re.findall(r"(top|bottom)(?: side)? by (\d+) px", reason)
    assert reason.startswith("its mask misses the box's ") and named
    in_truth = crop_of(truth, box)
    for side, distance in named:
        band = slice(0, int(distance)) if side == "top" else slice(-int(distance), None)
        assert int(distance) > BOX_AGREEMENT_PX
        assert in_truth[band].any(axis=1).all()  # the object is in every missed row...
        assert not grabbed[band].any()  # ...and GrabCut kept none of them
        next_row = int(distance) if side == "top" else -int(distance) - 1
        assert grabbed[next_row].any()  # the distance is exact: the mask starts on the next row


def test_grabcut_object_touching_the_photo_edge():
    pixels, truth, box = scene("ellipse", 5, centre=(40, 100))
    assert box.xmin == 0
    mask, used_fallback = refine_mask(pixels, box, "grabcut")
    assert not used_fallback
    assert iou(mask, crop_of(truth, box)) >= 0.8


def test_grabcut_large_box_is_shrunk_and_still_recovered():
    pixels, truth, box = scene("polygon", 6, size=(700, 640), radius=290)
    x0, y0, x1, y1 = context_window(box.voc_ints(), 700, 640)
    assert max(x1 - x0, y1 - y0) > GRABCUT_MAX_SIDE
    mask, used_fallback = refine_mask(pixels, box, "grabcut")
    assert not used_fallback and mask.shape == (box.height, box.width)
    assert iou(mask, crop_of(truth, box)) >= 0.9


def test_grabcut_is_deterministic():
    pixels, _, box = scene("polygon", 7)
    first, _ = refine_mask(pixels, box, "grabcut")
    cv2.setRNGSeed(12345)  # whatever the global RNG state
    np.testing.assert_array_equal(refine_mask(pixels, box, "grabcut").mask, first)


def test_grabcut_does_not_depend_on_opencv_threads():
    """Mask workers run OpenCV on one thread, the parent on all cores: the same masks (and a
    crop shrunk for GrabCut, the costliest case)."""
    for pixels, _, box in (scene("polygon", 7), scene("ellipse", 2, size=(900, 700), radius=300)):
        first = refine_mask(pixels, box, "grabcut")
        threads = cv2.getNumThreads()
        try:
            cv2.setNumThreads(1)
            again = refine_mask(pixels, box, "grabcut")
        finally:
            cv2.setNumThreads(threads)
        np.testing.assert_array_equal(again.mask, first.mask)
        assert again.fallback_reason == first.fallback_reason


def test_box_method_is_the_full_box_and_fractional_boxes_round_outwards():
    pixels, _, _ = scene()
    mask, used_fallback = refine_mask(pixels, Box(10.5, 20.2, 40.1, 30), "box")
    assert mask.shape == (10, 31) and mask.dtype == np.uint8 and (mask == 255).all()
    assert not used_fallback
    assert refine_mask(pixels, Box(10.5, 20.2, 40.1, 30), "grabcut").mask.shape == (10, 31)


@pytest.mark.parametrize("box", [Box(50, 50, 57, 90), Box(50, 50, 90, 55)])
def test_tiny_box_falls_back_to_the_full_box(box):
    pixels, _, _ = scene()
    mask, reason = refine_mask(pixels, box, "grabcut")
    assert (mask == 255).all() and mask.shape == (box.height, box.width)
    assert reason == "cannot refine a box narrower or lower than 8 px"


def test_box_covering_the_whole_photo_falls_back():
    pixels, _, _ = scene(size=(80, 60), radius=20)
    mask, reason = refine_mask(pixels, Box(0, 0, 80, 60), "grabcut")
    assert mask.shape == (60, 80) and (mask == 255).all()
    assert reason == "has no background to learn from: the box covers the whole photo"


def test_box_outside_the_photo_or_unknown_method_is_refused():
    pixels, _, _ = scene(size=(80, 60), radius=20)
    with pytest.raises(ValueError, match=r"not inside the 80x60 photo"):
        refine_mask(pixels, Box(70, 10, 81, 20), "box")
    with pytest.raises(ValueError, match="mask method must be one of"):
        refine_mask(pixels, Box(10, 10, 20, 20), "sam")
    with pytest.raises(ValueError, match="needs a model"):
        refine_mask(pixels, Box(10, 10, 20, 20), "model")
    with pytest.raises(ValueError, match="RGB uint8"):
        refine_mask(pixels[..., 0], Box(10, 10, 20, 20), "grabcut")


def redness(batch):
    """Foreground probability of a (1, H, W, 3) [0, 1] batch: how much red dominates."""
    rgb = batch[0]
    logit = 20 * rgb[..., 0] - 10 * rgb[..., 1] - 10 * rgb[..., 2] - 3
    return 1 / (1 + np.exp(-logit))


def fake_model(call, size=(64, 64)):
    return MaskModel("fake.keras", "keras", size, call)


@pytest.mark.parametrize("output", [lambda p: p[None, :, :, None], lambda p: p[None],
                                    lambda p: 100 * (np.log(p) - np.log1p(-p))[None]])  # logits
def test_model_output_shapes_and_logits(output):
    pixels, truth, box = scene("polygon", 8)
    mask, used_fallback = refine_mask(pixels, box, "model", fake_model(lambda b: output(redness(b))))
    assert not used_fallback and mask.shape == (box.height, box.width)
    assert iou(mask, crop_of(truth, box)) >= 0.9


def test_model_input_is_the_context_crop_resized_rgb_in_unit_range():
    pixels, _, box = scene()
    seen = []
    refine_mask(pixels, box, "model", fake_model(lambda b: seen.append(b) or redness(b)[None], (32, 48)))
    (batch,) = seen
    assert batch.shape == (1, 32, 48, 3) and batch.dtype == np.float32
    x0, y0, x1, y1 = context_window(box.voc_ints(), 240, 200)
    expected = cv2.resize(pixels[y0:y1, x0:x1], (48, 32), interpolation=cv2.INTER_AREA) / 255.0
    np.testing.assert_allclose(batch[0], expected, atol=1e-6)


def test_model_breaking_the_contract_is_named():
    pixels, _, box = scene()
    with pytest.raises(MaskModelError, match=r"fake.keras: model output has shape \(1, 64, 64, 2\)"):
        refine_mask(pixels, box, "model", fake_model(lambda b: np.zeros((1, 64, 64, 2))))
    with pytest.raises(MaskModelError, match="NaN or infinite"):
        refine_mask(pixels, box, "model", fake_model(lambda b: np.full((1, 64, 64), np.nan)))


def test_model_seeing_nothing_falls_back():
    pixels, _, box = scene()
    refined = refine_mask(pixels, box, "model", fake_model(lambda b: np.zeros((1, 64, 64))))
    assert (refined.mask == 255).all() and refined.used_fallback
    assert refined.fallback_reason == "found no object in the box"


REDNESS_WEIGHTS = [np.array([20.0, -10.0, -10.0]).reshape(1, 1, 3, 1), np.array([-3.0])]


@pytest.fixture(scope="module")
def keras():
    tf = pytest.importorskip("tensorflow")
    return tf.keras


def redness_model(keras, input_shape=(64, 64, 3), activation="sigmoid"):
    inputs = keras.Input(input_shape)
    outputs = keras.layers.Conv2D(1, 1, activation=activation)(inputs)
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights(REDNESS_WEIGHTS)
    return model


def check_model_mask(path, input_size):
    model = load_mask_model(str(path))
    assert model.input_size == input_size
    pixels, truth, box = scene("ellipse", 9)
    mask, used_fallback = refine_mask(pixels, box, "model", model)
    assert not used_fallback and mask.shape == (box.height, box.width)
    assert iou(mask, crop_of(truth, box)) >= 0.9


def test_keras_file_model(keras, tmp_path):
    redness_model(keras).save(tmp_path / "red.keras")
    check_model_mask(tmp_path / "red.keras", (64, 64))


def test_h5_model_with_dynamic_input_and_logits(keras, tmp_path):
    redness_model(keras, (None, None, 3), activation=None).save(tmp_path / "red.h5")
    check_model_mask(tmp_path / "red.h5", (256, 256))


def test_saved_model(keras, tmp_path):
    redness_model(keras, (48, 80, 3)).export(str(tmp_path / "saved"), verbose=False)
    check_model_mask(tmp_path / "saved", (48, 80))


def test_keras2_file_model(keras, tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    redness_model(tf_keras, (None, 64, 3)).save(tmp_path / "legacy.keras")
    check_model_mask(tmp_path / "legacy.keras", (64, 64))


def test_bad_model_paths(tmp_path):
    with pytest.raises(MaskModelError, match="no such mask model"):
        load_mask_model(str(tmp_path / "missing.keras"))
    (tmp_path / "weights.pt").write_bytes(b"x")
    with pytest.raises(MaskModelError, match="not a mask model"):
        load_mask_model(str(tmp_path / "weights.pt"))


def test_folder_that_is_not_a_saved_model(keras, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MaskModelError, match="cannot load SavedModel"):
        load_mask_model(str(tmp_path / "empty"))


# --- a kept mask gives the human box back: every side within BOX_AGREEMENT_PX, MIN_BOX_SHARE covered --

def flat_photo(width=200, height=160, seed=0):
    """A flat grey-green photo with faint noise: nothing in it stands out."""
    rng = np.random.default_rng(seed)
    flat = np.full((height, width, 3), (120, 130, 125)) + rng.normal(0, 4, (height, width, 3))
    return np.clip(flat, 0, 255).astype(np.uint8)


def bounds(solid):
    """(x0, y0, x1, y1) pixel edges of the True pixels of ``solid``."""
    rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def test_grabcut_sliver_at_one_side_of_a_flat_box_falls_back_naming_the_sides():
    """A box around a flat area with one small red blob at its left side (a tag whose characters
    GrabCut cannot see): GrabCut keeps only the blob, whose box would miss the top, right and
    bottom of the human box by the blob's distances to them; the whole box is used."""
    pixels = flat_photo()
    cv2.circle(pixels, (47, 80), 7, RED, -1)
    bx0, by0, bx1, by1 = bounds((pixels == RED).all(axis=-1))
    assert bx0 == 40  # the blob touches the box's left side
    box = Box(40, 40, 160, 120)
    assert bounds(grabcut_in_box(pixels, box)) == (bx0 - 40, by0 - 40, bx1 - 40, by1 - 40)  # the blob
    mask, reason = refine_mask(pixels, box, "grabcut")
    assert (mask == 255).all() and mask.shape == (80, 120)
    assert reason == (f"its mask misses the box's top side by {by0 - 40} px, right by {160 - bx1} px and "
                      f"bottom by {120 - by1} px")
    assert (by0 - 40, 160 - bx1, 120 - by1) == (33, 105, 32)


@pytest.mark.parametrize("loose", [0, 1, 2])
def test_grabcut_mask_reaching_a_box_drawn_up_to_2_px_loose_is_kept(loose):
    pixels, truth, tight = scene("ellipse", 0)
    box = Box(tight.xmin - loose, tight.ymin - loose, tight.xmax + loose, tight.ymax + loose)
    refined = refine_mask(pixels, box, "grabcut")
    assert isinstance(refined, RefinedMask) and refined.fallback_reason is None
    assert not refined.used_fallback
    x0, y0, x1, y1 = bounds(refined.mask == 255)
    height, width = refined.mask.shape
    assert max(x0, y0, width - x1, height - y1) <= BOX_AGREEMENT_PX
    assert iou(refined.mask, crop_of(truth, box)) >= 0.8


def test_grabcut_mask_of_a_box_drawn_4_px_loose_falls_back():
    pixels, truth, tight = scene("ellipse", 0)
    box = Box(tight.xmin - 4, tight.ymin - 4, tight.xmax + 4, tight.ymax + 4)
    grabbed = grabcut_in_box(pixels, box)
    assert bounds(grabbed) == (4, 4, box.width - 4, box.height - 4)  # GrabCut finds the ellipse...
    mask, reason = refine_mask(pixels, box, "grabcut")  # ...whose box is not the one drawn
    assert (mask == 255).all()
    assert reason == "its mask misses the box's left side by 4 px, top by 4 px, right by 4 px and bottom by 4 px"


RECT = (60, 50, 160, 130)  # x0, y0, x1, y1 of the painted object in the tests below (100 x 80)


def painted(region):
    """A textured photo with ``region`` (bool, 240 x 200) painted pure red."""
    pixels = textured_background(240, 200, 3)
    pixels[region] = RED
    return pixels


def exact_model(pixels, box):
    """A fake model calling red pixels foreground, sized to the crop so nothing is resized: its
    mask is exactly the red pixels."""
    height, width = pixels.shape[:2]
    x0, y0, x1, y1 = context_window(box.voc_ints(), width, height)
    return fake_model(lambda batch: redness(batch)[None], (y1 - y0, x1 - x0))


def rectangle(x0, y0, x1, y1):
    region = np.zeros((200, 240), bool)
    region[y0:y1, x0:x1] = True
    return region


@pytest.mark.parametrize("box,reason", [
    (Box(*RECT), None),
    (Box(58, 48, 162, 132), None),  # 2 px loose on every side: kept
    (Box(57, 50, 160, 130), "its mask misses the box's left side by 3 px"),
    (Box(57.5, 50, 160, 130), "its mask misses the box's left side by 2.5 px"),  # fractional edge
    (Box(58.5, 50, 160, 130), None),  # 1.5 px: the mask is over the integer box 58..160
    (Box(60, 46, 160, 130), "its mask misses the box's top side by 4 px"),
    (Box(60, 50, 163, 130), "its mask misses the box's right side by 3 px"),
    (Box(60, 50, 160, 140), "its mask misses the box's bottom side by 10 px"),
    (Box(55, 45, 165, 135), "its mask misses the box's left side by 5 px, top by 5 px, right by 5 px and "
                            "bottom by 5 px"),
])
def test_model_mask_sides_are_measured_from_the_box_drawn(box, reason):
    region = rectangle(*RECT)
    pixels = painted(region)
    mask, fell_back = refine_mask(pixels, box, "model", exact_model(pixels, box))
    assert fell_back == reason
    x0, y0, x1, y1 = box.voc_ints()
    assert mask.shape == (y1 - y0, x1 - x0)
    if reason is None:
        np.testing.assert_array_equal(mask, np.where(region[y0:y1, x0:x1], 255, 0))
    else:
        assert (mask == 255).all()


def test_model_sliver_falls_back_naming_the_side():
    """The model sees only a 6-px strip at the left of the box (a tag's edge, not its characters)."""
    pixels = painted(rectangle(60, 50, 66, 130))
    box = Box(*RECT)
    mask, reason = refine_mask(pixels, box, "model", exact_model(pixels, box))
    assert reason == "its mask misses the box's right side by 94 px" and (mask == 255).all()


@pytest.mark.parametrize("thickness,area,kept", [(2, 8000 - 96 * 76, False),  # 8.8% of the box
                                                 (3, 8000 - 94 * 74, False),  # 13.05%
                                                 (4, 8000 - 92 * 72, True)])  # 17.2%
def test_model_mask_reaching_every_side_must_cover_15_percent_of_the_box(thickness, area, kept):
    """A red frame of the box's size: it reaches all four sides, and covers ``area`` of its 8000 px."""
    assert MIN_BOX_SHARE == 0.15
    region = rectangle(*RECT)
    x0, y0, x1, y1 = RECT
    region[y0 + thickness:y1 - thickness, x0 + thickness:x1 - thickness] = False
    assert np.count_nonzero(region) == area
    pixels = painted(region)
    box = Box(*RECT)
    mask, reason = refine_mask(pixels, box, "model", exact_model(pixels, box))
    if kept:
        assert reason is None
        np.testing.assert_array_equal(mask, np.where(region[y0:y1, x0:x1], 255, 0))
    else:
        assert reason == f"its mask covers {100 * area // 8000}% of the box (at least 15% needed)"
        assert (mask == 255).all()
