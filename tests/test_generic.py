"""Generic objects end to end: masks, groups, augmentation, occlusion, instance-mask outputs.

Inputs are drawn here: coloured ellipses and stars ("disc", "star") on noise, labelled with boxes
in labelImg XML; alpha-PNG cutouts; distractors; object-free backgrounds.
"""

import filecmp
import json
import os

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from spatule_synth.core.boxes import Box
from spatule_synth.core.augment import parse_ranges
from spatule_synth.core.config import GenerateConfig, PlacementConfig
from spatule_synth.generate.cutouts import Cutout, CutoutPart
from spatule_synth.formats.label_map import LabelMap, write_label_map
from spatule_synth.generate.plan import Placement, SampleSpec, SplitPool, plan_sample
from spatule_synth.core.annotations import mask_box
from spatule_synth.generate.render import render
from spatule_synth.generate.run import run_generate
from spatule_synth.formats.tfrecord import read_records
from spatule_synth.core.transform import CUTOUT_MARGIN as M, placement_geometry
from spatule_synth.formats.voc import read_voc
from spatule_synth.formats.yolo import read_yolo_folder
from spatule_synth.core.problems import ProblemLog
from conftest import labelimg_xml

CANVAS = 128


def ellipse_photo(rng, width=160, height=120, count=2):
    """Noise with ``count`` bright ellipses; returns pixels, boxes and true masks."""
    pixels = rng.integers(0, 70, (height, width, 3), dtype=np.uint8)
    objects = []
    for k in range(count):
        cx, cy = 35 + 80 * k, int(rng.integers(30, height - 30))
        ax, ay = int(rng.integers(12, 22)), int(rng.integers(8, 16))
        mask = np.zeros((height, width), np.uint8)
        cv2.ellipse(mask, (cx, cy), (ax, ay), 0, 0, 360, 255, -1)
        pixels[mask > 0] = (230, 60 + 80 * k, 40)
        objects.append(mask > 0)
    return pixels, objects


@pytest.fixture
def generic_inputs(tmp_path):
    rng = np.random.default_rng(7)
    labelled, backgrounds = tmp_path / "labelled", tmp_path / "backgrounds"
    labelled.mkdir()
    backgrounds.mkdir()
    for index in range(6):
        pixels, masks = ellipse_photo(rng)
        names = ["disc", "star"]
        boxes = [(names[k], *mask_box(m).voc_ints()) for k, m in enumerate(masks)]
        Image.fromarray(pixels).save(labelled / f"P{index}.png")
        (labelled / f"P{index}.xml").write_text(labelimg_xml(f"P{index}.png", 160, 120, boxes))
    for index in range(4):
        Image.fromarray(rng.integers(0, 255, (150, 170, 3), dtype=np.uint8)).save(backgrounds / f"B{index}.jpg")
    cutouts = tmp_path / "cutouts" / "disc"
    cutouts.mkdir(parents=True)
    for index in range(3):
        alpha = np.zeros((30, 40), np.uint8)
        cv2.circle(alpha, (20, 15), 12, 255, -1)
        rgba = np.dstack([np.full((30, 40, 3), (40, 200, 240), np.uint8), alpha])
        Image.fromarray(rgba).save(cutouts / f"C{index}.png")
    distractors = tmp_path / "distractors"
    distractors.mkdir()
    alpha = np.zeros((24, 24), np.uint8)
    alpha[4:20, 4:20] = 255
    rgba = np.dstack([np.full((24, 24, 3), (10, 240, 10), np.uint8), alpha])
    Image.fromarray(rgba).save(distractors / "leaf.png")
    write_label_map(LabelMap.from_names(["disc", "star"]), str(tmp_path / "label_map.pbtxt"))
    return tmp_path


def generic_config(inputs, out, **overrides):
    settings = dict(input_dirs=(str(inputs / "labelled"),), background_dirs=(str(inputs / "backgrounds"),),
                    cutout_dirs=(str(inputs / "cutouts"),), distractor_dirs=(str(inputs / "distractors"),),
                    label_map_path=str(inputs / "label_map.pbtxt"), output_dir=str(out), num_images=24,
                    canvas_size=CANVAS, objects_per_image=(2, 4), eval_fraction=0.25, seed=5,
                    blend=("paste", "alpha", "feather", "seamless_normal"), scale_range=(0.8, 1.3),
                    object_augment=parse_ranges("rotate=40,flip=hv,perspective=0.1,brightness=0.1", "object"),
                    image_augment=parse_ranges("noise=3,motion_blur=0:5,jpeg_quality=80:95", "image"),
                    max_occlusion=0.5, min_visible=0.3, allow_truncation=True, instance_masks=True,
                    yolo_output=True, identity="object", num_workers=1, report=False)
    settings.update(overrides)
    return GenerateConfig.from_settings(**settings)


def test_masks_agree_in_png_tfrecord_coco_and_boxes(generic_inputs, tmp_path):
    out = tmp_path / "out"
    run_generate(generic_config(generic_inputs, out))
    checked = 0
    for split in ("train", "eval"):
        coco = COCO(str(out / "annotations" / f"{split}_coco.json"))
        assert len({image["id"] for image in coco.dataset["images"]}) == len(coco.dataset["images"])
        by_name = {image["file_name"]: image["id"] for image in coco.dataset["images"]}
        records = {r.filename: r for r in read_records([out / "annotations" / f"{split}.record"])}
        assert set(records) == set(by_name)
        for name, record in records.items():
            stem = name[:-4]
            plane = np.array(Image.open(out / "masks" / split / f"{stem}.png"))
            voc = read_voc(str(out / "images" / split / f"{stem}.xml"))
            annotations = coco.loadAnns(coco.getAnnIds(imgIds=[by_name[name]]))
            assert len(voc.objects) == len(record.objects) == len(annotations) == int(plane.max())
            for index, (obj, voc_obj, annotation) in enumerate(zip(record.objects, voc.objects, annotations), 1):
                from_png = plane == index
                from_record = np.array(Image.open(__import__("io").BytesIO(obj.mask_png))) > 0
                from_coco = coco.annToMask(annotation) > 0
                assert from_png.any()
                np.testing.assert_array_equal(from_record, from_png)
                np.testing.assert_array_equal(from_coco, from_png)
                assert voc_obj.box == mask_box(from_png)  # every box is its visible mask's box
                assert obj.box(CANVAS, CANVAS) == mask_box(from_png)
                assert annotation["category_id"] == obj.class_label
                assert annotation["bbox"] == [voc_obj.box.xmin, voc_obj.box.ymin,
                                              voc_obj.box.width, voc_obj.box.height]
                checked += 1
    assert checked >= 24  # 2-4 objects tried per image; heavily hidden ones are not labelled


def test_outputs_are_byte_identical_with_one_and_two_workers(generic_inputs, tmp_path):
    run_generate(generic_config(generic_inputs, tmp_path / "out", num_workers=1))
    os.rename(tmp_path / "out", tmp_path / "one")
    run_generate(generic_config(generic_inputs, tmp_path / "out", num_workers=2))
    compared = 0
    for root, _, files in os.walk(tmp_path / "one"):
        for name in files:
            path = os.path.join(root, name)
            other = os.path.join(tmp_path / "out", os.path.relpath(path, tmp_path / "one"))
            assert filecmp.cmp(path, other, shallow=False), path
            compared += 1
    assert compared > 24 * 4


@pytest.mark.slow
def test_grabcut_outputs_are_byte_identical_with_one_and_two_workers_and_a_warm_cache(
        generic_inputs, tmp_path, monkeypatch):
    """--mask=grabcut: masks refined in the parent without cache, on 2 workers into a cold cache,
    then from the warm cache give the same files, manifest (problems in the same order) included."""
    def generate(workers, cache, renamed):
        monkeypatch.setenv("SPATULE_SYNTH_MASK_CACHE", cache)
        result = run_generate(generic_config(generic_inputs, tmp_path / "out", num_workers=workers,
                                             mask="grabcut", cutout_dirs=(), num_images=8))
        os.rename(tmp_path / "out", tmp_path / renamed)  # the manifest names the output folder
        return result

    serial = generate(1, "off", "serial")
    assert serial.problems.counts().get("mask_fallback", 0) < 12  # GrabCut masks are kept
    generate(2, str(tmp_path / "cache"), "cold")
    assert len(list((tmp_path / "cache").rglob("*.mask"))) == 12
    generate(2, str(tmp_path / "cache"), "warm")
    files = [os.path.relpath(os.path.join(root, name), tmp_path / "serial")
             for root, _, names in os.walk(tmp_path / "serial") for name in names]
    assert "manifest.json" in files and len(files) > 8 * 3
    for run in ("cold", "warm"):
        match, mismatch, errors = filecmp.cmpfiles(tmp_path / "serial", tmp_path / run, files, shallow=False)
        assert not mismatch and not errors, (run, mismatch, errors)


def test_yolo_output_reads_back_as_the_xml_boxes(generic_inputs, tmp_path):
    out = tmp_path / "out"
    run_generate(generic_config(generic_inputs, out))
    images = read_yolo_folder(str(out / "images" / "train"), ProblemLog())
    assert images
    for image in images:
        voc = read_voc(image.image_path[:-4] + ".xml")
        assert [o.class_name for o in image.objects] == [o.name for o in voc.objects]
        for obj, voc_obj in zip(image.objects, voc.objects):
            for mine, theirs in zip((obj.box.xmin, obj.box.ymin, obj.box.xmax, obj.box.ymax),
                                    (voc_obj.box.xmin, voc_obj.box.ymin, voc_obj.box.xmax, voc_obj.box.ymax)):
                assert abs(mine - theirs) < 1e-3


def test_distractors_are_pasted_and_never_labelled(generic_inputs, tmp_path):
    out = tmp_path / "out"
    run_generate(generic_config(generic_inputs, out, distractors_per_image=(2, 2)))
    manifest = json.loads((out / "manifest.json").read_text())
    images = manifest["images"]["train"] + manifest["images"]["eval"]
    pasted = [p for image in images for p in image["placements"] if p["distractor"]]
    assert len(pasted) >= len(images)  # two tried per image; a crowded canvas may refuse some
    assert all("leaf.png" in p["cutout"] for p in pasted)
    assert not any("leaf.png" in o["cutout"] for image in images for o in image["objects"])


def test_classes_listed_in_no_flip_classes_are_never_mirrored(generic_inputs, tmp_path):
    out = tmp_path / "out"
    run_generate(generic_config(generic_inputs, out, no_flip_classes=("star",), num_images=40))
    manifest = json.loads((out / "manifest.json").read_text())
    flips = {}
    for image in manifest["images"]["train"] + manifest["images"]["eval"]:
        for placement in image["placements"]:
            augment = placement.get("augment", {})
            kind = "star" if "#1" in placement["cutout"] and "labelled" in placement["cutout"] else "other"
            flips.setdefault(kind, []).append(bool(augment.get("flip_h") or augment.get("flip_v")))
    assert not any(flips["star"]) and any(flips["other"])


def test_uniform_class_balance_draws_classes_evenly(generic_inputs, tmp_path):
    out = tmp_path / "out"
    # Train holds many discs (alpha cutouts too) and fewer stars.
    config = generic_config(generic_inputs, out, class_balance="uniform", num_images=60, eval_fraction=0.2,
                            max_occlusion=0.0, max_overlap=1.0, objects_per_image=(3, 3),
                            distractors_per_image=(0, 0), min_visible=0.0)
    run_generate(config)
    manifest = json.loads((out / "manifest.json").read_text())
    classes = [o["class"] for image in manifest["images"]["train"] for o in image["objects"]]
    share = classes.count("star") / len(classes)
    assert 0.35 < share < 0.65, share


# --- render-level properties over many random layouts ------------------------------------------

def ellipse_cutout(rng, class_id=1):
    width, height = int(rng.integers(14, 40)), int(rng.integers(10, 30))
    pixels = rng.integers(0, 255, (height + 2 * M, width + 2 * M, 3), dtype=np.uint8)
    mask = np.zeros(pixels.shape[:2], np.uint8)
    cv2.ellipse(mask, (M + width // 2, M + height // 2), (width // 2, height // 2), 0, 0, 360, 255, -1)
    pixels[mask > 0] = (250, 250, 250)
    return Cutout(f"c#{class_id}", "c", pixels, mask, Box(M, M, M + width, M + height),
                  (CutoutPart("disc", class_id, mask.copy(), 0),), "c")


def test_every_box_is_its_visible_mask_box_over_many_random_layouts():
    rng = np.random.default_rng(0)
    pool = SplitPool("train", tuple(ellipse_cutout(rng) for _ in range(5)),
                     ({"path": "bg"},), 1)
    config = PlacementConfig(canvas_size=CANVAS, objects_per_image=(2, 6),
                             blend=("paste", "alpha", "feather", "seamless_normal", "seamless_mixed"),
                             scale_range=(0.5, 2.0), allow_truncation=True, max_occlusion=0.7,
                             object_augment=parse_ranges("rotate=180,flip=hv,perspective=0.15", "object"),
                             min_visible=0.2)
    pool = SplitPool("train", pool.cutouts, (type("B", (), {"width": CANVAS, "height": CANVAS,
                                                             "path": "bg"})(),), 1)
    labelled = 0
    for index in range(150):
        spec = plan_sample(config, 0, pool, index)
        canvas = np.zeros((CANVAS, CANVAS, 3), np.uint8)
        sample = render(spec, pool, canvas, config.min_visible)
        union = np.zeros((CANVAS, CANVAS), int)
        for obj in sample.objects:
            assert obj.box == mask_box(obj.mask) and obj.box.is_inside(CANVAS, CANVAS)
            union += obj.mask
        assert union.max() <= 1  # instances never share a pixel
        assert len(sample.objects) + sample.hidden == sum(1 for p in spec.placements if not p.distractor)
        labelled += len(sample.objects)
    assert labelled > 150


def test_no_label_for_an_object_under_min_visible():
    rng = np.random.default_rng(1)
    cutout = ellipse_cutout(rng)
    pool = SplitPool("train", (cutout,), (), 1)
    geometry = placement_geometry(cutout.size, cutout.object_box, 1.0)
    below = Placement(0, 20, 20, geometry.width, geometry.height, 1.0, "paste")
    above = Placement(0, 26, 20, geometry.width, geometry.height, 1.0, "paste")  # hides most of it
    spec = SampleSpec("train", 0, 0, (0, 0), (below, above))
    canvas = np.zeros((CANVAS, CANVAS, 3), np.uint8)
    hidden_share = render(spec, pool, canvas.copy(), 0.0)
    first_visible = np.count_nonzero(hidden_share.objects[0].mask) / np.count_nonzero(cutout.alpha >= 128)
    assert 0 < first_visible < 0.5
    kept = render(spec, pool, canvas.copy(), first_visible - 0.01)
    dropped = render(spec, pool, canvas.copy(), first_visible + 0.01)
    assert len(kept.objects) == 2 and len(dropped.objects) == 1 and dropped.hidden == 1
    assert dropped.objects[0].box == kept.objects[1].box


@pytest.mark.parametrize("angle", [17.0, 45.0, 90.0, 133.0])
def test_rotation_keeps_box_and_mask_tight_on_the_written_object(angle):
    rng = np.random.default_rng(2)
    cutout = ellipse_cutout(rng)
    draw = parse_ranges(f"rotate={angle}:{angle}", "object")
    from spatule_synth.core.augment import draw_object
    augment = draw_object(np.random.default_rng(0), draw, may_flip=False)
    geometry = placement_geometry(cutout.size, cutout.object_box, 1.0, augment)
    placement = Placement(0, 30, 30, geometry.width, geometry.height, 1.0, "paste", augment)
    canvas = np.zeros((CANVAS, CANVAS, 3), np.uint8)
    sample = render(SampleSpec("train", 0, 0, (0, 0), (placement,)), SplitPool("train", (cutout,), (), 1),
                    canvas, 0.0)
    [obj] = sample.objects
    written = (sample.pixels != 0).any(axis=-1)
    np.testing.assert_array_equal(obj.mask, written)  # paste writes exactly the object
    assert obj.box == mask_box(written)
    # The rotated ellipse keeps its area (within interpolation).
    assert abs(np.count_nonzero(written) / np.count_nonzero(cutout.alpha >= 128) - 1) < 0.08


def test_model_masks_reach_the_outputs(generic_inputs, tmp_path):
    """--mask=model end to end: a tiny Keras model that calls red pixels foreground; the discs and
    stars are red-dominant on dark noise, so their masks hug the ellipses, not the boxes."""
    import tensorflow as tf
    from test_masks import redness_model
    redness_model(tf.keras).save(tmp_path / "red.keras")
    out = tmp_path / "out"
    result = run_generate(generic_config(generic_inputs, out, mask="model", mask_model=str(tmp_path / "red.keras"),
                                         cutout_dirs=(), object_augment=parse_ranges("", "object"),
                                         scale_range=(1.0, 1.0), blend=("paste",), max_occlusion=0.0,
                                         allow_truncation=False, image_augment=parse_ranges("", "image")))
    assert result.problems.counts().get("mask_fallback", 0) == 0
    coco = COCO(str(out / "annotations" / "train_coco.json"))
    fills = [a["area"] / (a["bbox"][2] * a["bbox"][3]) for a in coco.dataset["annotations"]]
    assert fills and all(0.6 < fill < 0.9 for fill in fills), fills  # an ellipse fills pi/4 of its box


# --- every input format reaches the outputs with its own masks ---------------------------------

def ellipse_sources(tmp_path, count=4):
    """Ellipse photos (pixels + true masks + classes), written as PNGs into ``tmp_path/photos``."""
    rng = np.random.default_rng(11)
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = []
    for index in range(count):
        pixels, masks = ellipse_photo(rng)
        Image.fromarray(pixels).save(folder / f"E{index}.png")
        photos.append((f"E{index}.png", masks))
    return folder, photos


def fill_ratios(out):
    coco = COCO(str(out / "annotations" / "train_coco.json"))
    return [a["area"] / (a["bbox"][2] * a["bbox"][3]) for a in coco.dataset["annotations"]]


def plain_config(inputs, out, **formats):
    settings = dict(input_dirs=(), cutout_dirs=(), distractor_dirs=(), object_augment=parse_ranges("", "object"),
                    image_augment=parse_ranges("", "image"), scale_range=(1.0, 1.0), blend=("paste",),
                    max_occlusion=0.0, allow_truncation=False, eval_fraction=0.0, num_images=12)
    return generic_config(inputs, out, **(settings | formats))


def test_coco_polygon_and_rle_masks_reach_the_outputs(generic_inputs, tmp_path):
    from spatule_synth.formats.coco import CocoImage, CocoInstance, coco_document, write_coco
    folder, photos = ellipse_sources(tmp_path)
    images = [CocoImage(i + 1, name, 160, 120, [CocoInstance(k + 1, mask) for k, mask in enumerate(masks)])
              for i, (name, masks) in enumerate(photos)]
    write_coco(str(tmp_path / "instances.json"), coco_document(images, [(1, "disc"), (2, "star")]))
    out = tmp_path / "out"
    run_generate(plain_config(generic_inputs, out, coco_json=(str(tmp_path / "instances.json"),),
                              coco_image_dirs=(str(folder),)))
    ratios = fill_ratios(out)
    assert ratios and all(0.65 < r < 0.88 for r in ratios), ratios  # ellipses, not boxes


def test_yolo_boxes_become_box_masks(generic_inputs, tmp_path):
    from spatule_synth.formats.yolo import write_classes, yolo_lines
    folder, photos = ellipse_sources(tmp_path)
    write_classes(str(folder / "classes.txt"), ["disc", "star"])
    for name, masks in photos:
        (folder / (name[:-4] + ".txt")).write_text(yolo_lines(
            [(["disc", "star"][k], mask_box(m)) for k, m in enumerate(masks)], 160, 120, ["disc", "star"]))
    out = tmp_path / "out"
    run_generate(plain_config(generic_inputs, out, yolo_dirs=(str(folder),)))
    ratios = fill_ratios(out)
    assert ratios and all(r == 1.0 for r in ratios)  # --mask=box: the whole box is the object


def test_overlapping_objects_are_cut_as_one_group_with_disjoint_masks(generic_inputs, tmp_path):
    """A 'star' box inside a 'disc' box in the source: pasted together, both labelled, the star
    keeps its pixels and the disc loses them."""
    folder = tmp_path / "group"
    folder.mkdir()
    pixels = np.random.default_rng(3).integers(0, 60, (120, 160, 3), dtype=np.uint8)
    pixels[30:90, 40:120] = (200, 80, 40)
    pixels[50:70, 70:90] = (40, 80, 220)
    Image.fromarray(pixels).save(folder / "G.png")
    (folder / "G.xml").write_text(labelimg_xml("G.png", 160, 120, [("disc", 40, 30, 120, 90),
                                                                  ("star", 70, 50, 90, 70)]))
    out = tmp_path / "out"
    run_generate(plain_config(generic_inputs, out, input_dirs=(str(folder),), objects_per_image=(1, 1)))
    manifest = json.loads((out / "manifest.json").read_text())
    for image in manifest["images"]["train"]:
        assert [o["class"] for o in image["objects"]] == ["disc", "star"]
        assert image["objects"][0]["cutout"].endswith("G.png#0+1")
        disc, star = (Box(*o["box"]) for o in image["objects"])
        assert (star.width, star.height) == (20, 20) and (disc.width, disc.height) == (80, 60)
        plane = np.array(Image.open(out / "masks" / "train" / f"{image['name']}.png"))
        assert np.count_nonzero(plane == 2) == 400 and np.count_nonzero(plane == 1) == 80 * 60 - 400
