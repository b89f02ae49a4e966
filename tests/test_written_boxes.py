"""Every box exact in the written pixels, and no ghost: generate end to end, then the written JPEG,
XML and record are compared with the background window the manifest names (re-read from its
lossless PNG), so the pixels a paste changed are known without trusting any code under test.

The objects are grayscale (luma is not subsampled by JPEG) and the images are written at quality
100, so a JPEG error never reaches the 8 levels that count as "changed".
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from spatule_synth.core.augment import parse_ranges
from spatule_synth.core.config import GenerateConfig, PlacementConfig
from spatule_synth.generate.cutouts import Cutout, CutoutPart
from spatule_synth.core.boxes import Box
from spatule_synth.generate.plan import Placement, SampleSpec, SplitPool
from spatule_synth.generate.render import render
from spatule_synth.generate.run import run_generate
from spatule_synth.formats.tfrecord import read_records
from spatule_synth.core.transform import CUTOUT_MARGIN as M, placement_geometry
from spatule_synth.modes.verify import verify_output
from spatule_synth.formats.voc import read_voc
from painted import voc_xml

CANVAS = 96
CHANGED = 8  # levels: a pixel changed by more than this is visibly painted


def tag_photo(folder, name, boxes, context=40, seed=0):
    """A dark photo with white tags (rows of black characters) in ``boxes``; its XML beside it."""
    rng = np.random.default_rng(seed)
    pixels = np.full((120, 160), context, np.uint8) + rng.integers(0, 6, (120, 160), dtype=np.uint8)
    for x0, y0, x1, y1 in boxes:
        pixels[y0:y1, x0:x1] = 235
        pixels[y0 + 3:y1 - 3, x0 + 3:x1 - 3:3] = 15  # vertical strokes: the characters
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(np.stack([pixels] * 3, -1)).save(os.path.join(folder, name), quality=98)
    with open(os.path.join(folder, name.rsplit(".", 1)[0] + ".xml"), "w") as handle:
        handle.write(voc_xml(name, (160, 120), [("tag", box) for box in boxes]))


def background_pngs(folder, level, count=3):
    os.makedirs(folder, exist_ok=True)
    for index in range(count):
        rng = np.random.default_rng(100 + index)
        plane = np.full((140, 180), level, np.int16) + rng.integers(-3, 4, (140, 180))
        Image.fromarray(np.stack([plane.clip(0, 255).astype(np.uint8)] * 3, -1)).save(
            os.path.join(folder, f"BG{index}.png"))


def generate(tmp_path, background_level=90, **options):
    labelled = tmp_path / "labelled"
    if not labelled.exists():
        tag_photo(labelled, "A.jpg", [(20, 30, 50, 50)])
        tag_photo(labelled, "B.jpg", [(70, 40, 96, 58)], seed=1)
    background_pngs(tmp_path / f"backgrounds{background_level}", background_level)
    settings = dict(input_dirs=(str(labelled),),
                    background_dirs=(str(tmp_path / f"backgrounds{background_level}"),),
                    output_dir=str(tmp_path / "out"), overwrite=True, num_images=8,
                    canvas_size=CANVAS, eval_fraction=0.0, objects_per_image=(1, 1), jpeg_quality=100,
                    num_workers=1, seed=0, report=False)
    settings.update(options)
    run_generate(GenerateConfig.from_settings(**settings))
    return json.loads((tmp_path / "out" / "manifest.json").read_text())


def written_images(out, manifest):
    """Per image: written pixels, the background window before pasting, XML boxes, record boxes."""
    records = {r.filename: r for r in read_records(
        [os.path.join(out, p) for p in manifest["splits"]["train"]["records"]])}
    for entry in manifest["images"]["train"]:
        name = entry["name"]
        pixels = np.asarray(Image.open(os.path.join(out, "images", "train", f"{name}.jpg")), np.int16)
        x, y = entry["background"]["window"]
        photo = np.asarray(Image.open(entry["background"]["file"]).convert("RGB"), np.int16)
        before = photo[y:y + CANVAS, x:x + CANVAS]
        xml = read_voc(os.path.join(out, "images", "train", f"{name}.xml"))
        record = records[f"{name}.jpg"]
        yield name, pixels, before, [o.box for o in xml.objects], \
            [o.box(record.width, record.height) for o in record.objects]


def extent(mask):
    rows, cols = np.nonzero(mask)
    return Box(int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)


@pytest.mark.parametrize("blend", ["paste", "alpha", "seamless_normal", "seamless_mixed", "feather"])
def test_written_box_is_the_painted_extent(tmp_path, blend):
    manifest = generate(tmp_path, blend=(blend,))
    labelled = 0
    for name, pixels, before, xml_boxes, record_boxes in written_images(tmp_path / "out", manifest):
        changed = np.abs(pixels - before).max(axis=-1) > CHANGED
        if not xml_boxes:
            assert not changed.any(), name
            continue
        labelled += 1
        [box], [record_box] = xml_boxes, record_boxes
        assert all(abs(getattr(record_box, k) - getattr(box, k)) < 1e-3
                   for k in ("xmin", "ymin", "xmax", "ymax")), (name, record_box, box)
        painted = extent(changed)
        sides = [painted.xmin - box.xmin, painted.ymin - box.ymin, box.xmax - painted.xmax,
                 box.ymax - painted.ymax]
        if blend in ("paste", "alpha"):
            assert sides == [0, 0, 0, 0], (name, painted, box)
        else:  # ramps inside the mask: the outermost ring may change by 8 levels or less
            assert all(0 <= side <= 1 for side in sides), (name, painted, box)
    assert labelled >= 6


def test_a_white_tag_on_a_white_background_never_gets_a_ghost_label(tmp_path):
    """Seamless cloning onto white washes a tag's characters out (its dark context becomes the
    white around it); the visibility check re-draws or drops it. Without the check the same run
    labels washed-out tags: the test can fail."""
    def character_contrast(pixels, box):
        x0, y0, x1, y1 = (int(v) for v in (box.xmin, box.ymin, box.xmax, box.ymax))
        luma = pixels[y0 + 3:y1 - 3, x0 + 3:x1 - 3].mean(axis=-1)
        return np.percentile(luma, 95) - np.percentile(luma, 5)

    contrasts = {}
    for min_visibility in (0.0, 0.6):
        manifest = generate(tmp_path, background_level=245, blend=("seamless_normal", "paste"),
                            min_visibility=min_visibility, num_images=12)
        contrasts[min_visibility] = [character_contrast(pixels, box)
                                     for _, pixels, _, boxes, _ in written_images(tmp_path / "out", manifest)
                                     for box in boxes]
        redrawn = manifest["splits"]["train"]["redrawn"]
        assert (redrawn > 0) == (min_visibility > 0)
    assert min(contrasts[0.0]) < 60  # ghosts, labelled: what the check exists for
    assert len(contrasts[0.6]) >= 10 and min(contrasts[0.6]) > 150  # source: 235 vs 15


def blob_cutout():
    """A GrabCut-like irregular mask (an ellipse with a bite out of it) over a textured object."""
    height, width = 30, 40
    yy, xx = np.mgrid[:height + 2 * M, :width + 2 * M]
    inside = ((xx - M - 20) / 19.5) ** 2 + ((yy - M - 15) / 14.5) ** 2 <= 1
    inside &= ~(((xx - M - 34) ** 2 + (yy - M - 4) ** 2) < 60)
    alpha = np.where(inside, 255, 0).astype(np.uint8)
    rng = np.random.default_rng(3)
    pixels = rng.integers(150, 256, (height + 2 * M, width + 2 * M, 3), dtype=np.uint8)
    pixels[~inside] = 30  # dark context of the source photo around the object
    return Cutout("p.jpg#0", "p", pixels, alpha, Box(M, M, M + width, M + height),
                  (CutoutPart("thing", 1, alpha.copy(), 0),), "p.jpg")


@pytest.mark.parametrize("blend", ["seamless_normal", "seamless_mixed", "feather", "alpha"])
@pytest.mark.parametrize("rotate", [0.0, 33.0])
def test_rotated_irregular_masks_change_nothing_outside_their_box(blend, rotate):
    from spatule_synth.core.augment import ObjectAugment
    cutout = blob_cutout()
    augment = ObjectAugment(angle=rotate)
    geometry = placement_geometry(cutout.size, cutout.object_box, 1.2, augment)
    placement = Placement(0, 20, 25, geometry.width, geometry.height, 1.2, blend, augment)
    canvas = np.random.default_rng(0).integers(60, 120, (CANVAS + 32,) * 2 + (3,), dtype=np.uint8)
    before = canvas.copy()
    sample = render(SampleSpec("train", 0, 0, (0, 0), (placement,)),
                    SplitPool("train", (cutout,), ()), canvas)
    [obj] = sample.objects
    changed = np.abs(sample.pixels.astype(int) - before).max(axis=-1) > CHANGED
    outside = changed.copy()
    outside[int(obj.box.ymin):int(obj.box.ymax), int(obj.box.xmin):int(obj.box.xmax)] = False
    assert not outside.any(), (blend, rotate, extent(outside), obj.box)
    assert not (changed & ~obj.mask).any() or blend != "paste"
    assert (np.abs(sample.pixels.astype(int) - before).max(axis=-1)[~obj.mask] == 0).all()


def test_a_scaled_and_rotated_two_object_group_passes_verify(tmp_path):
    labelled = tmp_path / "labelled"
    tag_photo(labelled, "G.jpg", [(30, 30, 70, 60), (55, 45, 90, 75)])  # overlapping: one group
    tag_photo(labelled, "H.jpg", [(40, 20, 80, 50), (70, 40, 100, 70)], seed=2)
    manifest = generate(tmp_path, num_images=16, canvas_size=128, instance_masks=True,
                        blend=("seamless_normal", "feather", "alpha", "paste"),
                        scale_range=(0.7, 1.3), objects_per_image=(1, 2),
                        object_augment=parse_ranges("rotate=35,perspective=0.1", "object"))
    groups = sum(len([o for o in entry["objects"]]) >= 2 for entry in manifest["images"]["train"])
    assert groups >= 4
    report = verify_output(str(tmp_path / "out"))
    assert not report.failed, report.table()


def test_group_parts_stay_disjoint_and_cover_the_paste_after_warping():
    """Two objects cut out together, the larger one's soft edge reaching into the smaller one (as
    anti-aliased COCO or alpha masks do): after rotation each pasted pixel belongs to exactly one
    of them, so instance PNGs, record masks and COCO can agree, and no pasted pixel is unlabelled."""
    height, width = 30, 50
    shape = (height + 2 * M, width + 2 * M)
    small = np.zeros(shape, np.uint8)
    small[M + 5:M + 25, M + 5:M + 25] = 255
    large = np.zeros(shape, np.uint8)
    large[M:M + height, M + 20:M + width] = 255
    large[M + 5:M + 25, M + 18:M + 25] = 120  # its soft edge, inside the small object
    alpha = np.maximum(small, large)
    pixels = np.random.default_rng(1).integers(100, 256, shape + (3,), dtype=np.uint8)
    cutout = Cutout("g.jpg#0+1", "g", pixels, alpha, Box(M, M, M + width, M + height),
                    (CutoutPart("tag", 1, small, 0), CutoutPart("leg", 2, large, 1)), "g.jpg")
    from spatule_synth.core.augment import ObjectAugment
    for angle in (7.0, 21.0, 33.0, 50.0):
        augment = ObjectAugment(angle=angle)
        geometry = placement_geometry(cutout.size, cutout.object_box, 1.3, augment)
        placement = Placement(0, 10, 10, geometry.width, geometry.height, 1.3, "paste", augment)
        canvas = np.zeros((128, 128, 3), np.uint8)
        sample = render(SampleSpec("train", 0, 0, (0, 0), (placement,)),
                        SplitPool("train", (cutout,), ()), canvas)
        first, second = sample.objects
        assert not (first.mask & second.mask).any(), angle
        pasted = sample.pixels.any(axis=-1)
        assert not (pasted & ~(first.mask | second.mask)).any(), angle


def test_re_drawn_placements_respect_max_occlusion_with_the_layout_as_pasted():
    """Flat grey objects turn into ghosts when seamless-cloned onto white, so many placements are
    re-drawn; a re-draw is checked against where the earlier ones really went, so no labelled
    object loses more than --max_occlusion of its mask (and none drops under --min_visible)."""
    from spatule_synth.generate.plan import plan_sample, redraw_placement
    from spatule_synth.generate.sources import Background

    def grey(k):
        pixels = np.full((20 + 2 * M, 30 + 2 * M, 3), 120, np.uint8)
        pixels[M:M + 20, M:M + 30] = 128
        alpha = np.zeros(pixels.shape[:2], np.uint8)
        alpha[M:M + 20, M:M + 30] = 255
        return Cutout(f"c{k}", f"id{k}", pixels, alpha, Box(M, M, M + 30, M + 20),
                      (CutoutPart("tag", 1, alpha.copy(), 0),), f"c{k}.jpg")

    pool = SplitPool("train", tuple(grey(k) for k in range(3)), (Background("bg.jpg", 96, 96),))
    config = PlacementConfig(canvas_size=96, objects_per_image=(3, 3), blend=("seamless_normal", "paste"),
                             max_occlusion=0.3)
    redrawn = 0
    for index in range(300):
        spec = plan_sample(config, 0, pool, index)
        sample = render(spec, pool, np.full((96, 96, 3), 250, np.uint8), config.min_visible,
                        config.min_visibility,
                        lambda n, a, pasted, spec=spec: redraw_placement(config, 0, pool, spec, n, a, pasted))
        redrawn += sample.redrawn
        assert sample.hidden == 0, index
        for obj in sample.objects:
            assert obj.truncated or obj.mask.sum() >= 0.7 * 600, (index, int(obj.mask.sum()))
    assert redrawn > 100


@pytest.mark.parametrize("blend", ["seamless_normal", "seamless_mixed", "feather", "paste"])
def test_an_object_cut_by_the_canvas_edge_has_its_box_on_what_was_painted(blend):
    """The clone region's border on the canvas edge stays the destination's: the box starts where
    the paste changed pixels, not on untouched background."""
    cutout = blob_cutout()
    geometry = placement_geometry(cutout.size, cutout.object_box, 1.0)
    for x, y in ((-20, 30), (40, -15), (CANVAS - 30, 20), (30, CANVAS - 25)):
        placement = Placement(0, x, y, geometry.width, geometry.height, 1.0, blend)
        canvas = np.random.default_rng(1).integers(60, 120, (CANVAS, CANVAS, 3), dtype=np.uint8)
        before = canvas.copy()
        sample = render(SampleSpec("train", 0, 0, (0, 0), (placement,)),
                        SplitPool("train", (cutout,), ()), canvas)
        [obj] = sample.objects
        assert obj.truncated
        painted = extent(np.abs(sample.pixels.astype(int) - before).max(axis=-1) > CHANGED)
        sides = [painted.xmin - obj.box.xmin, painted.ymin - obj.box.ymin,
                 obj.box.xmax - painted.xmax, obj.box.ymax - painted.ymax]
        assert all(0 <= side <= (0 if blend == "paste" else 1) for side in sides), (x, y, painted, obj.box)
