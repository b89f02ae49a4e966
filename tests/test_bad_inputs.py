"""No bad input ever becomes a wrong label: one test per rule of the "What you can rely on" table.

Each test builds its own small bad input with objects painted magenta (`painted`), runs convert or
generate, and checks what a user sees: the exact message, the counts in the summary and the
manifest, and, by reading the written records / images + XML back, that every painted pixel is
inside a box and every box is on paint.
"""

import glob
import os
import resource
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from spatule_synth.core.boxes import Box
from spatule_synth.core.config import ConvertConfig, GenerateConfig
from spatule_synth.modes.convert import run_convert
from spatule_synth.formats.label_map import LabelMapError, parse_label_map
from spatule_synth.formats.manifest import read_manifest
from spatule_synth.core.problems import Problem, ProblemLog, RunStopped
from spatule_synth.generate.run import run_generate
from spatule_synth.formats.tfrecord import read_records
from spatule_synth.formats.voc import read_voc
from painted import SIZE, assert_boxes_match_paint, coco_json, labelled_photo, save_photo, voc_xml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = (20, 30, 60, 50)


def convert(folder, out, **options):
    return run_convert(ConvertConfig(input_dirs=(str(folder),), output_dir=str(out), **options))


def check_records(result):
    """Every written record: painted pixels inside boxes, boxes on paint; the records."""
    records = list(read_records(result.shard_paths))
    for record in records:
        pixels = tf.io.decode_image(record.encoded, channels=3).numpy()
        boxes = [o.box(record.width, record.height) for o in record.objects]
        assert_boxes_match_paint(pixels, [(b.xmin, b.ymin, b.xmax, b.ymax) for b in boxes],
                                 record.filename)
    return records


def generate(tmp_path, name="out", **options):
    settings = dict(output_dir=str(tmp_path / name), num_images=12, canvas_size=96,
                    eval_fraction=0.0, blend=("paste",), objects_per_image=(1, 2),
                    negative_fraction=0.25, num_workers=1, seed=1, report=False,
                    background_dirs=(str(backgrounds(tmp_path)),))
    settings.update(options)
    return run_generate(GenerateConfig.from_settings(**settings))


def backgrounds(tmp_path):
    folder = tmp_path / "backgrounds"
    if not folder.exists():
        for index in range(2):
            save_photo(folder, f"BG{index}.jpg", seed=10 + index)
    return folder


def check_generated(out):
    """Every generated image against its XML, by the paint; the number of boxes seen."""
    boxes_seen = 0
    for path in sorted(glob.glob(str(out / "images" / "*" / "*.jpg"))):
        annotation = read_voc(path[:-4] + ".xml")
        boxes = [o.box.voc_ints() for o in annotation.objects]
        assert_boxes_match_paint(np.asarray(Image.open(path).convert("RGB")), boxes, path)
        boxes_seen += len(boxes)
    assert boxes_seen, "no object was pasted: the test would prove nothing"
    return boxes_seen


def used_photos(out):
    """``(cutout photos, background photos)`` of a finished run, by file name."""
    train = read_manifest(str(out))["splits"]["train"]
    return ({os.path.basename(s["file"]) for s in train["cutout_sources"].values()},
            {os.path.basename(path) for path in train["backgrounds"]})


def summary_line(kind_count, description, files):
    """The summary's line of one kind of problem, as printed (indented under "inputs skipped or
    noted" / "problems"): count, meaning and the files that had it."""
    return f"  {kind_count:6d}  {description}: {files}"


INCOMPLETE = "photo that lost an object's label (skipped whole: it would show an object without a box)"


# --- 1. a photo that lost an annotation is never object-free ---------------------------------------


def test_convert_skips_a_photo_that_lost_a_label_instead_of_writing_its_other_boxes(tmp_path):
    folder = tmp_path / "in"
    labelled_photo(folder, "good.jpg", [("tag", TAG)])
    labelled_photo(folder, "mixed.jpg", [("tag", TAG), ("tga", (90, 60, 150, 110))])
    labelled_photo(folder, "inverted.jpg", [("tag", TAG), ("tag", (150, 60, 90, 110))],
                   painted_boxes=[TAG, (90, 60, 150, 110)])
    result = convert(folder, tmp_path / "out")
    assert [os.path.basename(e["image"]) for e in result.examples] == ["good.jpg"]
    messages = [p.message() for p in result.problems.problems]
    assert messages == [
        f"{folder}/inverted.xml (image inverted.jpg), object #1 ('tag'): inverted box (xmin=150 "
        "ymin=60 xmax=90 ymax=110); object dropped",
        f"{folder}/inverted.xml (image inverted.jpg): image skipped whole: object #1 ('tag') lost its "
        "label (inverted box (xmin=150 ymin=60 xmax=90 ymax=110)), so the photo would show an object "
        "without a box. Fix the annotation (or list a class that is not a label in --ignore_classes)",
        f"{folder}/mixed.xml (image mixed.jpg), object #1 ('tga'): class 'tga' is not in the label "
        "map (classes: tag); did you mean 'tag'?; object dropped",
        f"{folder}/mixed.xml (image mixed.jpg): image skipped whole: object #1 ('tga') lost its label "
        "(class 'tga' is not in the label map (classes: tag); did you mean 'tag'?), so the photo "
        "would show an object without a box. Fix the annotation (or list a class that is not a label "
        "in --ignore_classes)"]
    assert summary_line(2, INCOMPLETE, f"{folder}/inverted.xml, {folder}/mixed.xml") in \
        result.summary().splitlines()
    assert read_manifest(result.output_dir)["counts"]["problems"] == {
        "box_invalid": 1, "unknown_class": 1, "image_incomplete": 2}
    [record] = check_records(result)
    assert record.filename == "good.jpg" and len(record.objects) == 1


def test_ignored_classes_are_not_labels_and_keep_their_photo(tmp_path):
    folder = tmp_path / "in"
    labelled_photo(folder, "birds.jpg", [("tag", TAG), ("bird", (90, 60, 150, 110))],
                   painted_boxes=[TAG])  # the bird is not painted: it is no object of the label map
    labelled_photo(folder, "typo.jpg", [("tag", TAG), ("Tag ", (90, 60, 150, 110))])
    result = convert(folder, tmp_path / "out", ignore_classes=("*",))
    assert [os.path.basename(e["image"]) for e in result.examples] == ["birds.jpg"]
    assert result.problems.counts() == {"unknown_class": 1, "image_incomplete": 1, "ignored_class": 1}
    assert result.problems.problems[0].message() == (
        f"{folder}/birds.xml (image birds.jpg), object #1 ('bird'): class 'bird' is in "
        "--ignore_classes: not a label, left out")
    check_records(result)
    with pytest.raises(LabelMapError, match=r"^--ignore_classes names 'tag', a class of the label "
                                            "map: a class is either a label or ignored$"):
        convert(folder, tmp_path / "out2", ignore_classes=("bird", "tag"))


def _labelimg_inputs(root):
    folder = root / "labelimg"
    for k in range(3):
        labelled_photo(folder, f"good{k}.jpg", [("tag", (20 + 10 * k, 30, 60 + 10 * k, 50))], seed=k)
    labelled_photo(folder, "lost.jpg", [("tga", (10, 10, 150, 110))], seed=5)
    labelled_photo(folder, "mixed.jpg", [("tag", TAG), ("tga", (90, 60, 150, 110))], seed=6)
    return dict(input_dirs=(str(folder),))


def _yolo_line(box, index=0):
    (x0, y0, x1, y1), (width, height) = box, SIZE
    return (f"{index} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
            f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}\n")


def _yolo_inputs(root):
    folder = root / "yolo"
    folder.mkdir()
    (folder / "classes.txt").write_text("tag\n")
    for k in range(3):
        box = (20 + 10 * k, 30, 60 + 10 * k, 50)
        save_photo(folder, f"good{k}.jpg", [box], seed=k)
        (folder / f"good{k}.txt").write_text(_yolo_line(box))
    save_photo(folder, "lost.jpg", [(10, 10, 150, 110)], seed=5)
    (folder / "lost.txt").write_text(_yolo_line((10, 10, 150, 110), index=5))  # class index 5
    save_photo(folder, "mixed.jpg", [TAG, (90, 60, 150, 110)], seed=6)
    (folder / "mixed.txt").write_text(_yolo_line(TAG) + _yolo_line((90, 60, 150, 110), index=5))
    return dict(yolo_dirs=(str(folder),))


def _coco_inputs(root):
    folder = root / "coco"
    images = []
    for k in range(3):
        x0, y0, x1, y1 = box = (20 + 10 * k, 30, 60 + 10 * k, 50)
        save_photo(folder, f"good{k}.jpg", [box], seed=k)
        images.append((f"good{k}.jpg", SIZE, [{"category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0]}]))
    save_photo(folder, "lost.jpg", [(10, 10, 150, 110)], seed=5)
    images.append(("lost.jpg", SIZE, [{"category_id": 1, "segmentation": [[10, 10, 150, 110]]}]))
    save_photo(folder, "mixed.jpg", [TAG, (90, 60, 150, 110)], seed=6)
    images.append(("mixed.jpg", SIZE, [{"category_id": 1, "bbox": [20, 30, 40, 20]},
                                       {"category_id": 9, "bbox": [90, 60, 60, 50]}]))
    coco_json(folder / "instances.json", images)
    return dict(coco_json=(str(folder / "instances.json"),))


def _voc_seg_inputs(root):
    folder = root / "voc"
    for sub in ("JPEGImages", "Annotations", "SegmentationObject"):
        (folder / sub).mkdir(parents=True)

    def photo(stem, named, regions, seed):
        save_photo(folder / "JPEGImages", f"{stem}.jpg", regions, seed=seed)
        indices = np.zeros((SIZE[1], SIZE[0]), np.uint8)
        for value, (x0, y0, x1, y1) in enumerate(regions, 1):
            indices[y0:y1, x0:x1] = value
        Image.fromarray(indices, mode="L").save(folder / "SegmentationObject" / f"{stem}.png")
        (folder / "Annotations" / f"{stem}.xml").write_text(
            voc_xml(f"{stem}.jpg", SIZE, [("tag", box) for box in regions[:named]]))

    for k in range(3):
        photo(f"good{k}", 1, [(20 + 10 * k, 30, 60 + 10 * k, 50)], k)
    photo("lost", 0, [(10, 10, 150, 110)], 5)  # instance pixels with no <object>: no class
    photo("mixed", 1, [TAG, (90, 60, 150, 110)], 6)
    return dict(voc_seg_dirs=(str(folder),))


LOST_FILES = {  # the files that name lost.jpg and mixed.jpg, as the summary lists them
    _labelimg_inputs: lambda root: f"{root}/labelimg/lost.xml, {root}/labelimg/mixed.xml",
    _yolo_inputs: lambda root: f"{root}/yolo/lost.txt, {root}/yolo/mixed.txt",
    _coco_inputs: lambda root: f"{root}/coco/instances.json (images lost.jpg, mixed.jpg)",
    _voc_seg_inputs: lambda root: f"{root}/voc/Annotations/lost.xml, {root}/voc/Annotations/mixed.xml"}


@pytest.mark.parametrize("make_inputs", [_labelimg_inputs, _yolo_inputs, _coco_inputs, _voc_seg_inputs],
                         ids=["labelimg", "yolo", "coco", "voc_segmentation"])
def test_generate_never_uses_a_photo_that_lost_a_label(tmp_path, make_inputs):
    result = generate(tmp_path, **make_inputs(tmp_path))
    out = tmp_path / "out"
    cutouts, backgrounds_used = used_photos(out)
    assert cutouts == {"good0.jpg", "good1.jpg", "good2.jpg"}
    assert backgrounds_used == {"BG0.jpg", "BG1.jpg"}  # lost.jpg shows a big object without label
    assert result.problems.counts()["image_incomplete"] == 2
    assert read_manifest(str(out))["problem_counts"]["image_incomplete"] == 2
    assert summary_line(2, INCOMPLETE, LOST_FILES[make_inputs](tmp_path)) in \
        result.summary().splitlines()
    check_generated(out)


# --- 2. a photo without annotation file is not known to be object-free ------------------------------


def test_photo_without_annotation_is_skipped_unless_said_to_be_a_negative(tmp_path):
    folder = tmp_path / "in"
    for k in range(2):
        labelled_photo(folder, f"good{k}.jpg", [("tag", TAG)], seed=k)
    save_photo(folder, "not_yet.jpg", [(10, 10, 150, 110)], seed=3)  # a tag nobody labelled yet
    result = generate(tmp_path, input_dirs=(str(folder),))
    assert [p.message() for p in result.problems.problems] == [
        f"{folder}/not_yet.jpg: no annotation file labels this image (not labelled yet?); skipped. "
        "If such photos show no object, pass --unlabelled=negative or give their folder as "
        "--background_dirs"]
    assert summary_line(1, "image with no annotation file: not labelled yet (skipped; "
                           "--unlabelled=negative takes it as object-free)",
                        f"{folder}/not_yet.jpg") in result.summary().splitlines()
    assert read_manifest(str(tmp_path / "out"))["problem_counts"] == {"no_annotation": 1}
    assert used_photos(tmp_path / "out")[1] == {"BG0.jpg", "BG1.jpg"}
    check_generated(tmp_path / "out")
    # the user says such photos are object-free: then they are backgrounds (and convert negatives)
    os.remove(folder / "not_yet.jpg")
    save_photo(folder, "empty_scene.jpg", seed=4)
    result = generate(tmp_path, "out2", input_dirs=(str(folder),), unlabelled="negative")
    assert result.problems.counts() == {"unlabelled_negative": 1}
    assert used_photos(tmp_path / "out2")[1] == {"BG0.jpg", "BG1.jpg", "empty_scene.jpg"}
    check_generated(tmp_path / "out2")
    converted = convert(folder, tmp_path / "real", unlabelled="negative")
    assert sorted(os.path.basename(e["image"]) for e in converted.examples if not e["objects"]) == \
        ["empty_scene.jpg"]
    check_records(converted)


def test_background_dirs_photo_with_objects_is_refused(tmp_path):
    folder = tmp_path / "in"
    for k in range(2):
        labelled_photo(folder, f"good{k}.jpg", [("tag", TAG)], seed=k)
    labelled_photo(folder, "empty.jpg", [], seed=3)
    result = generate(tmp_path, input_dirs=(str(folder),),
                      background_dirs=(str(backgrounds(tmp_path)), str(folder)))  # given twice
    assert [p.message() for p in result.problems.problems] == [
        f"{folder}/good{k}.jpg: its annotation file {folder}/good{k}.xml has 1 object: a photo with "
        "objects is not a background; skipped (give labelled folders as --input_dirs)" for k in range(2)]
    assert result.problems.counts() == {"background_labelled": 2}
    manifest = read_manifest(str(tmp_path / "out"))
    assert sorted(os.path.basename(p) for p in manifest["splits"]["train"]["backgrounds"]) == [
        "BG0.jpg", "BG1.jpg", "empty.jpg"]  # empty.jpg once, though it is in two folders
    check_generated(tmp_path / "out")


# --- 3. boxes follow the pixels the annotator saw ------------------------------------------------


def test_photo_resized_after_labelling_gets_its_boxes_scaled(tmp_path):
    folder = tmp_path / "in"
    save_photo(folder, "small.jpg", [(50, 30, 80, 45)])  # 160x120: the photo was halved...
    (folder / "small.xml").write_text(voc_xml("small.jpg", (320, 240), [("tag", (100, 60, 160, 90))]))
    result = convert(folder, tmp_path / "out")  # ...after labelImg saved its 320x240 boxes
    assert [p.message() for p in result.problems.problems] == [
        f"{folder}/small.xml (image small.jpg): the annotation says the image is 320x240 but it "
        "decodes to 160x120: the same photo scaled by 0.5, resized after labelling; its boxes are "
        "scaled by 0.5 too"]
    [record] = check_records(result)
    assert record.objects[0].box(160, 120) == Box(50, 30, 80, 45)


def test_other_size_mismatch_keeps_boxes_only_if_they_fit_the_photo(tmp_path):
    folder = tmp_path / "in"
    labelled_photo(folder, "fits.jpg", [("tag", TAG)], declared_size=(200, 90))
    labelled_photo(folder, "beyond.jpg", [("tag", (130, 60, 190, 100))], declared_size=(200, 100),
                   painted_boxes=[(130, 60, 160, 100)])
    result = convert(folder, tmp_path / "out")
    assert [p.message() for p in result.problems.problems] == [
        f"{folder}/beyond.xml (image beyond.jpg): the annotation says the image is 200x100 but it "
        "decodes to 160x120 (not the same photo resized), and the box of object #0 ('tag': "
        "xmin=130 ymin=60 xmax=190 ymax=100) lies beyond the decoded image: the boxes were drawn on "
        "another image; image skipped",
        f"{folder}/fits.xml (image fits.jpg): the annotation says the image is 200x90 but it decodes "
        "to 160x120; every box lies inside the decoded image, so the boxes are kept as drawn"]
    assert result.problems.counts() == {"size_conflict": 1, "size_mismatch": 1}
    [record] = check_records(result)
    assert record.filename == "fits.jpg"


def test_coco_size_scaled_moves_masks_and_boxes(tmp_path):
    folder = tmp_path / "coco"
    for k in range(2):
        save_photo(folder, f"half{k}.jpg", [(40, 30, 80, 50)], seed=k)
    coco_json(folder / "instances.json", [
        (f"half{k}.jpg", (320, 240), [{"category_id": 1, "segmentation": [[80, 60, 160, 60, 160, 100,
                                                                              80, 100]]}])
        for k in range(2)])
    result = generate(tmp_path, coco_json=(str(folder / "instances.json"),))
    assert result.problems.counts() == {"size_scaled": 2}
    sources = read_manifest(str(tmp_path / "out"))["splits"]["train"]["cutout_sources"]
    assert sorted(tuple(s["box"]) for s in sources.values()) == [(40, 30, 80, 50)] * 2
    check_generated(tmp_path / "out")


def test_xml_copied_from_a_sibling_photo_is_skipped(tmp_path):
    folder = tmp_path / "in"
    labelled_photo(folder, "IMG_1.jpg", [("tag", TAG)])
    labelled_photo(folder, "IMG_2.jpg", [("tag", TAG)], filename="IMG_1.jpg",  # copied XML...
                   painted_boxes=[(100, 70, 140, 90)])  # ...but IMG_2's tag is elsewhere
    labelled_photo(folder, "IMG_3.jpg", [("tag", TAG)], filename="img_3.JPEG")  # same photo
    labelled_photo(folder, "IMG_4.jpg", [("tag", TAG)], filename="renamed_since.jpg")
    result = convert(folder, tmp_path / "out")
    assert [p.message() for p in result.problems.problems] == [
        f"{folder}/IMG_2.xml (image IMG_2.jpg): its <filename> is 'IMG_1.jpg', another photo of the "
        f"folder ({folder}/IMG_1.jpg): the annotation was copied from that photo and its boxes are "
        "where that photo's objects are; image skipped"]
    assert [r.filename for r in check_records(result)] == ["IMG_1.jpg", "IMG_3.jpg", "IMG_4.jpg"]


def test_unicode_normalisation_does_not_break_pairing(tmp_path):
    folder = tmp_path / "in"
    nfd, nfc = (unicodedata.normalize(form, "Étang été") for form in ("NFD", "NFC"))
    assert nfd != nfc
    save_photo(folder, f"{nfd}.JPG", [TAG])  # saved on a Mac
    (folder / f"{nfc}.xml").write_text(voc_xml(f"{nfc}.JPG", SIZE, [("tag", TAG)]))  # on Windows
    labelled_photo(folder, "other.jpg", [("tag", TAG)], filename=f"{nfd}.jpg")
    result = convert(folder, tmp_path / "out")
    assert result.problems.problems == [] or [p.kind for p in result.problems.problems] == \
        ["filename_mismatch"]
    records = check_records(result)
    assert unicodedata.normalize("NFC", records[0].filename) == f"{nfc}.JPG"
    assert len(records[0].objects) == 1


def test_label_file_of_an_unsupported_photo_format_says_so(tmp_path):
    folder = tmp_path / "in"
    labelled_photo(folder, "IMG_2040.jpg", [("tag", TAG)])
    (folder / "IMG_2041.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (folder / "IMG_2041.xml").write_text(voc_xml("IMG_2041.HEIC", SIZE, [("tag", TAG)]))
    labelled_photo(folder, "IMG_2042.jpg", [("tag", TAG)])  # an iPhone's JPEG + HEIC pair:
    (folder / "IMG_2042.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")  # the JPEG is used
    result = convert(folder, tmp_path / "out")
    assert [p.message() for p in result.problems.problems] == [
        f"{folder}/IMG_2041.HEIC: HEIC is not supported; convert it to JPEG; image skipped"]
    assert [r.filename for r in check_records(result)] == ["IMG_2040.jpg", "IMG_2042.jpg"]
    (backgrounds(tmp_path) / "DSC_0001.NEF").write_bytes(b"II*\x00")  # a RAW is a TIFF whose
    # embedded preview Pillow would read as if it were the photo: never decoded
    result = generate(tmp_path, "gen", input_dirs=(str(folder),))
    assert f"{backgrounds(tmp_path)}/DSC_0001.NEF: Nikon RAW (NEF) is not supported; convert it to " \
           "JPEG; background skipped" in [p.message() for p in result.problems.problems]


# --- 4. duplicates and names ---------------------------------------------------------------------


def test_exact_duplicate_boxes_are_written_once(tmp_path):
    folder = tmp_path / "in"
    labelled_photo(folder, "twice.jpg", [("tag", TAG), ("tag", TAG), ("tag", (100, 70, 140, 90))])
    labelled_photo(folder, "once.jpg", [("tag", TAG)], seed=1)
    result = convert(folder, tmp_path / "out")
    assert [p.message() for p in result.problems.problems] == [
        f"{folder}/twice.xml (image twice.jpg), object #1 ('tag'): same class and box (xmin=20 ymin=30 "
        "xmax=60 ymax=50) as object #0: labelled twice; kept once"]
    records = {r.filename: r for r in check_records(result)}
    assert len(records["twice.jpg"].objects) == 2
    result = generate(tmp_path, "gen", input_dirs=(str(folder),), identity="object")
    assert result.problems.counts() == {"duplicate_object": 1}  # no mask_invalid: one cutout
    cutouts = read_manifest(str(tmp_path / "gen"))["splits"]["train"]["cutouts"]
    assert sorted(os.path.basename(c) for c in cutouts) == ["once.jpg#0", "twice.jpg#0", "twice.jpg#2"]
    check_generated(tmp_path / "gen")


@pytest.mark.parametrize("name, reason", [
    ("leg  tag", "class name 'leg  tag' contains two spaces in a row (labelImg turns them into a tab)"),
    ("leg\ttag", "class name 'leg\\ttag' contains the control character U+0009 (tab, newline, ...); "
                 "it cannot be written to VOC XML or classes.txt"),
    ("tag ", "class name 'tag ' starts or ends with a space (VOC <name> values are read without "
             "them, so no object could ever match it)"),
    ("", "class name '' is empty"),
])
def test_label_map_class_names_the_writers_would_refuse_are_refused_on_reading(name, reason):
    quoted = name.replace("\t", "\\t")
    with pytest.raises(LabelMapError) as refused:
        parse_label_map(f"item {{ id: 1 name: 'spoonbill' }} item {{ id: 2 name: '{quoted}' }}")
    assert str(refused.value) == f"id 2: {reason}"


def test_bad_label_map_stops_the_command_before_anything_is_written(tmp_path):
    labelled_photo(tmp_path / "in", "a.jpg", [("tag", TAG)])
    (tmp_path / "map.pbtxt").write_text("item { id: 1 name: 'leg  tag' }")
    out = tmp_path / "out"
    for mode in ("convert", "generate"):
        done = subprocess.run([sys.executable, os.path.join(REPO, "generate.py"), f"--mode={mode}",
                               f"--input_dirs={tmp_path / 'in'}", f"--label_map={tmp_path / 'map.pbtxt'}",
                               f"--output_dir={out}"], capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1] == (
            f"error: {tmp_path / 'map.pbtxt'}: id 1: class name 'leg  tag' contains two spaces in a "
            "row (labelImg turns them into a tab)")
        assert not out.exists()


# --- 5. messages name what to fix ------------------------------------------------------------------


def test_coco_messages_name_the_json_the_image_the_annotation_id_and_the_class(tmp_path):
    folder = tmp_path / "coco"
    save_photo(folder, "a.jpg", [TAG, (90, 60, 150, 110)])
    coco_json(folder / "instances.json", [("a.jpg", SIZE, [
        {"category_id": 1, "bbox": [20, 30, 40, 20]}, {"category_id": 2, "bbox": [90, 60, 60, 50]}])])
    labelled_photo(tmp_path / "in", "good.jpg", [("tag", TAG)])
    result = generate(tmp_path, input_dirs=(str(tmp_path / "in"),),
                      coco_json=(str(folder / "instances.json"),))
    assert [p.message() for p in result.problems.problems][0] == (
        f"{folder}/instances.json (image a.jpg), object #1 ('dog', annotation id 2): class 'dog' is "
        "not in the label map (classes: tag); object dropped")
    check_generated(tmp_path / "out")


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE")
def test_convert_write_error_names_the_file(tmp_path):
    for k in range(6):
        labelled_photo(tmp_path / "in", f"p{k}.png", [("tag", TAG)], seed=k)  # ~55 kB each
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, os.path.join(REPO, "generate.py"), "--mode=convert",
                           f"--input_dirs={tmp_path / 'in'}", f"--output_dir={out}"],
                          capture_output=True, text=True, cwd=REPO, preexec_fn=_limit_file_size)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: cannot write {out}/annotations/real.record: [Errno 27] File too large. The run "
        f"stopped: {out} holds no finished output (no manifest.json); fix the cause and rerun with "
        "--overwrite")
    assert not (out / "manifest.json").exists() and not (out / "annotations" / "real.record").exists()


def test_summary_lines_name_the_files_of_each_kind():
    problems = ProblemLog()
    problems.report(Problem("missing_image", "in/IMAG0399.xml", "no image"))
    for k in range(12):  # one XML with two clipped boxes is named once
        problems.report(Problem("box_clipped", f"in/{chr(97 + k // 2 * 2)}.xml", "clipped", k, "tag"))
    for image in ("x.jpg", "y.jpg", "x.jpg"):  # a COCO file names the photos it labels
        problems.report(Problem("unknown_class", "coco/instances.json", "class", 0, "tga", image=image))
    for k in range(5):  # a labelImg XML labels the photo of its own name: not repeated
        problems.report(Problem("no_annotation", f"in/p{k}.jpg", "not labelled", image=f"p{k}.jpg"))
    for k in range(4):
        problems.report(Problem("duplicate_entry", "big.json", "merged", image=f"i{k}.jpg"))
    assert problems.summary_lines() == [
        "     1  annotation whose image is missing (skipped): in/IMAG0399.xml",
        "    12  object box partly outside its image (clipped to the image): in/a.xml, in/c.xml, "
        "in/e.xml and 3 more (all in manifest.json)",
        "     3  object whose class is not in the label map (dropped): coco/instances.json (images "
        "x.jpg, y.jpg)",
        "     5  image with no annotation file: not labelled yet (skipped; --unlabelled=negative "
        "takes it as object-free): in/p0.jpg, in/p1.jpg, in/p2.jpg and 2 more (all in manifest.json)",
        "     4  image listed by several entries of one COCO file (annotations merged): big.json "
        "(images i0.jpg, i1.jpg, i2.jpg and 1 more) (all in manifest.json)"]


# --- 6. edge-cut and difficult objects --------------------------------------------------------------


def test_convert_carries_truncated_and_difficult_into_the_records(tmp_path):
    folder = tmp_path / "in"
    labelled_photo(folder, "a.jpg", [("tag", TAG, 0, 1), ("tag", (0, 70, 40, 90), 1, 0)])
    [record] = check_records(convert(folder, tmp_path / "out"))
    assert [(o.difficult, o.truncated) for o in record.objects] == [(True, False), (False, True)]


def test_generate_does_not_paste_edge_cut_or_difficult_objects_unless_asked(tmp_path):
    folder = tmp_path / "in"
    labelled_photo(folder, "good.jpg", [("tag", TAG)])
    labelled_photo(folder, "edge.jpg", [("tag", (0, 30, 40, 50))], seed=1)
    labelled_photo(folder, "right.jpg", [("tag", (121, 30, 159, 50))], seed=5)  # labelImg: 1 px in
    labelled_photo(folder, "flagged.jpg", [("tag", TAG, 1, 0)], seed=2)
    labelled_photo(folder, "hard.jpg", [("tag", TAG, 0, 1)], seed=3)
    labelled_photo(folder, "group.jpg", [("tag", (60, 40, 100, 60)), ("tag", (90, 50, 130, 70), 0, 1)],
                   seed=4)
    result = generate(tmp_path, input_dirs=(str(folder),))
    assert used_photos(tmp_path / "out")[0] == {"good.jpg"}
    messages = [p.message() for p in result.problems.problems]
    assert messages == [
        f"{folder}/edge.xml (image edge.jpg), object #0 ('tag'): its box (xmin=0 ymin=30 xmax=40 "
        "ymax=50) touches the edge of the 160x120 photo, so the object may go on beyond it; not used "
        "as a cutout (--use_truncated_cutouts to allow)",
        f"{folder}/flagged.xml (image flagged.jpg), object #0 ('tag'): marked truncated in its "
        "annotation (only part of it is in the photo); not used as a cutout (--use_truncated_cutouts "
        "to allow)",
        f"{folder}/group.xml (image group.jpg), object #0 ('tag'): overlaps object #1, which is not "
        "used as a cutout; not used either (they would be pasted together)",
        f"{folder}/group.xml (image group.jpg), object #1 ('tag'): marked difficult in its annotation; "
        "not used as a cutout (--use_difficult_cutouts to allow)",
        f"{folder}/hard.xml (image hard.jpg), object #0 ('tag'): marked difficult in its annotation; "
        "not used as a cutout (--use_difficult_cutouts to allow)",
        f"{folder}/right.xml (image right.jpg), object #0 ('tag'): its box (xmin=121 ymin=30 xmax=159 "
        "ymax=50) touches the edge of the 160x120 photo, so the object may go on beyond it; not used "
        "as a cutout (--use_truncated_cutouts to allow)"]
    assert result.problems.counts() == {"truncated_cutout": 3, "difficult_cutout": 3}
    assert used_photos(tmp_path / "out")[1] == {"BG0.jpg", "BG1.jpg"}  # nor backgrounds
    check_generated(tmp_path / "out")
    generate(tmp_path, "out2", input_dirs=(str(folder),), use_truncated_cutouts=True,
             use_difficult_cutouts=True)
    assert used_photos(tmp_path / "out2")[0] == {"good.jpg", "edge.jpg", "flagged.jpg", "hard.jpg",
                                                 "group.jpg", "right.jpg"}
    check_generated(tmp_path / "out2")


def test_coco_and_yolo_boxes_touching_the_border_are_not_cutouts(tmp_path):
    folder = tmp_path / "coco"
    save_photo(folder, "a.jpg", [(120, 30, 160, 50)])
    save_photo(folder, "b.jpg", [TAG], seed=1)
    coco_json(folder / "instances.json", [("a.jpg", SIZE, [{"category_id": 1, "bbox": [120, 30, 40, 20]}]),
                                          ("b.jpg", SIZE, [{"category_id": 1, "bbox": [20, 30, 40, 20]}])])
    result = generate(tmp_path, coco_json=(str(folder / "instances.json"),))
    assert result.problems.counts() == {"truncated_cutout": 1}
    assert used_photos(tmp_path / "out")[0] == {"b.jpg"}
    check_generated(tmp_path / "out")


# --- found by trying to break it: every input that could pass a labelled photo for an empty one ---


def test_a_photo_labelled_by_one_input_is_no_background_for_another(tmp_path):
    folder = tmp_path / "coco"
    save_photo(folder, "P1.jpg", [TAG, (90, 60, 150, 110)])
    save_photo(folder, "P2.jpg", [TAG], seed=1)
    coco_json(folder / "instances.json", [
        ("P1.jpg", SIZE, [{"category_id": 1, "bbox": [20, 30, 40, 20]},
                          {"category_id": 1, "bbox": [90, 60, 60, 50]}]),
        ("P1.jpg", SIZE, []),  # the same file listed again, without annotations
        ("P2.jpg", SIZE, [{"category_id": 1, "bbox": [20, 30, 40, 20]}])])
    labelimg = tmp_path / "labelimg"
    os.makedirs(labelimg)
    os.symlink(folder / "P2.jpg", labelimg / "P2.jpg")  # labelled empty here, with a tag there
    (labelimg / "P2.xml").write_text(voc_xml("P2.jpg", SIZE, []))
    result = generate(tmp_path, coco_json=(str(folder / "instances.json"),), input_dirs=(str(labelimg),),
                      background_dirs=(str(backgrounds(tmp_path)), str(folder)))
    messages = [p.message() for p in result.problems.problems]
    assert messages == [
        f"{folder}/instances.json: image 'P1.jpg' is listed by several entries (ids 1, 2); their "
        "annotations are taken together",
        f"{labelimg}/P2.jpg: {folder}/instances.json labels objects in this photo: a photo with "
        "objects is not a background; skipped",
        f"{folder}/P1.jpg: {folder}/instances.json labels objects in this photo: a photo with objects "
        "is not a background; skipped",
        f"{folder}/P2.jpg: {folder}/instances.json labels objects in this photo: a photo with objects "
        "is not a background; skipped"]
    assert used_photos(tmp_path / "out")[1] == {"BG0.jpg", "BG1.jpg"}
    check_generated(tmp_path / "out")


def test_background_dirs_photo_labelled_in_annotation_dirs_is_refused(tmp_path):
    images, xml = tmp_path / "images", tmp_path / "xml"
    for k in range(2):
        labelled_photo(images, f"P{k}.jpg", [("tag", TAG)], seed=k)
    os.makedirs(xml)
    for k in range(2):
        os.rename(images / f"P{k}.xml", xml / f"P{k}.xml")
    result = generate(tmp_path, input_dirs=(str(images),), annotation_dirs=(str(xml),),
                      background_dirs=(str(backgrounds(tmp_path)), str(images)))
    assert result.problems.counts() == {"background_labelled": 2}
    assert used_photos(tmp_path / "out") == ({"P0.jpg", "P1.jpg"}, {"BG0.jpg", "BG1.jpg"})
    check_generated(tmp_path / "out")


def test_label_file_named_after_the_whole_photo_name_still_labels_it(tmp_path):
    folder = tmp_path / "in"
    labelled_photo(folder, "A1.jpg", [("tag", TAG)])
    os.rename(folder / "A1.xml", folder / "A1.jpg.xml")
    result = convert(folder, tmp_path / "out", unlabelled="negative")
    assert result.problems.problems == []
    [record] = check_records(result)
    assert len(record.objects) == 1
    yolo = tmp_path / "yolo"
    yolo.mkdir()
    (yolo / "classes.txt").write_text("tag\n")
    for k in range(2):
        save_photo(yolo, f"Y{k}.jpg", [TAG], seed=k)
        (yolo / f"Y{k}.jpg.txt").write_text(_yolo_line(TAG))
    generate(tmp_path, "gen", yolo_dirs=(str(yolo),), unlabelled="negative")
    assert used_photos(tmp_path / "gen") == ({"Y0.jpg", "Y1.jpg"}, {"BG0.jpg", "BG1.jpg"})
    check_generated(tmp_path / "gen")


def test_distractors_that_show_labelled_objects_are_refused(tmp_path):
    labelled_photo(tmp_path / "in", "good.jpg", [("tag", TAG)])
    clutter = tmp_path / "clutter" / "Tags"  # cut-out tags given as clutter: pasted without boxes
    os.makedirs(clutter)
    rgba = np.zeros((20, 40, 4), np.uint8)
    rgba[2:18, 2:38] = (255, 0, 255, 255)
    Image.fromarray(rgba).save(clutter / "t.png")
    result = generate(tmp_path, input_dirs=(str(tmp_path / "in"),),
                      distractor_dirs=(str(tmp_path / "clutter"),), distractors_per_image=(1, 2))
    assert [p.message() for p in result.problems.problems] == [
        f"{clutter}/t.png: its folder 'Tags' names 'tag', a class of the label map: a distractor is "
        "pasted without a box, so it must show no labelled object; skipped"]
    check_generated(tmp_path / "out")


@pytest.mark.parametrize("xml, reason", [
    ("<annotation><Object><name>tag</name><bndbox><xmin>20</xmin><ymin>30</ymin><xmax>60</xmax>"
     "<ymax>50</ymax></bndbox></Object></annotation>",
     "<Object> (line 1) is not <object>: tags are case-sensitive, so labelImg would not show this "
     "object"),
    ("<annotation><objects><object><name>tag</name><bndbox><xmin>20</xmin><ymin>30</ymin>"
     "<xmax>60</xmax><ymax>50</ymax></bndbox></object></objects></annotation>",
     "<object> (line 1) inside <objects>: labelImg only reads <object> directly under <annotation>"),
])
def test_objects_labelimg_would_not_see_make_the_xml_malformed(tmp_path, xml, reason):
    folder = tmp_path / "in"
    save_photo(folder, "u.jpg", [TAG])
    (folder / "u.xml").write_text(xml)
    result = convert(folder, tmp_path / "out")
    assert [p.message() for p in result.problems.problems] == [
        f"{folder}/u.xml (image u.jpg): {reason}; image skipped"]
    assert result.examples == []


def test_photo_turned_after_labelling_is_skipped_and_an_undecidable_exif_frame_is_noted(tmp_path):
    folder = tmp_path / "in"
    save_photo(folder, "turned.jpg", [(50, 10, 70, 40)], size=(120, 160))
    (folder / "turned.xml").write_text(voc_xml("turned.jpg", (160, 120), [("tag", (10, 10, 40, 30))]))
    labelled = Image.fromarray(np.asarray(Image.open(save_photo(folder, "upside.jpg", [TAG]))))
    exif = Image.Exif()
    exif[0x0112] = 3  # upside down: the size is the same in both frames
    labelled.rotate(180).save(folder / "upside.jpg", exif=exif.tobytes(), quality=95)
    (folder / "upside.xml").write_text(voc_xml("upside.jpg", SIZE, [("tag", TAG)]))
    result = convert(folder, tmp_path / "out")
    assert [p.message() for p in result.problems.problems] == [
        f"{folder}/turned.xml (image turned.jpg): the annotation says the image is 160x120 but it "
        "decodes to 120x160: the photo was turned by 90 degrees after labelling (or lost its EXIF "
        "orientation), so its boxes are in another frame; image skipped",
        f"{folder}/upside.xml (image upside.jpg): the photo has EXIF orientation 3: labelImg >= 1.8.4 "
        "labels it as displayed, older versions as stored, and the annotation's size cannot tell "
        "which; the boxes are taken as drawn on the displayed photo (check it in labelImg)"]
    assert [r.filename for r in check_records(result)] == ["upside.jpg"]


def test_coco_sizes_and_polygons_beyond_the_image_are_refused(tmp_path):
    folder = tmp_path / "coco"
    for name in ("huge.jpg", "cut.jpg", "far.jpg"):
        save_photo(folder, name, [(20, 30, 60, 140)], size=(200, 160))
    square = [[20, 30, 60, 30, 60, 140, 20, 140]]
    coco_json(folder / "instances.json", [
        ("huge.jpg", (2_000_000, 1_600_000), [{"category_id": 1, "segmentation": square}]),
        ("cut.jpg", (200, 100), [{"category_id": 1, "segmentation": square}]),  # 100 px too short
        ("far.jpg", (200, 160), [{"category_id": 1, "segmentation": [[20, 30, 1e12, 30, 60, 140]]}])])
    labelled_photo(tmp_path / "in", "good.jpg", [("tag", TAG)])
    result = generate(tmp_path, input_dirs=(str(tmp_path / "in"),),
                      coco_json=(str(folder / "instances.json"),))
    json_path = folder / "instances.json"
    messages = [p.message() for p in result.problems.problems]
    assert messages[:1] + messages[1:5:2] + messages[2:5:2] == [  # the reader, then validation
        f"{json_path}: image 'huge.jpg' (id 1) says it is 2000000x1600000 pixels, more than any photo "
        "can be decoded at (178956970 pixels); image skipped",
        f"{json_path} (image cut.jpg), object #0 ('tag', annotation id 2): polygon 0 reaches (60, "
        "140), beyond the 200x100 image of its entry; object dropped",
        f"{json_path} (image cut.jpg): image skipped whole: object #0 ('tag') lost its label "
        "(annotation id 2: polygon 0 reaches (60, 140), beyond the 200x100 image of its entry), so "
        "the photo would show an object without a box. Fix the annotation (or list a class that is "
        "not a label in --ignore_classes)",
        f"{json_path} (image far.jpg), object #0 ('tag', annotation id 3): polygon 0 reaches (1e+12, "
        "30), beyond the 200x160 image of its entry; object dropped",
        f"{json_path} (image far.jpg): image skipped whole: object #0 ('tag') lost its label "
        "(annotation id 3: polygon 0 reaches (1e+12, 30), beyond the 200x160 image of its entry), so "
        "the photo would show an object without a box. Fix the annotation (or list a class that is "
        "not a label in --ignore_classes)"]
    check_generated(tmp_path / "out")


def test_class_names_match_whatever_the_unicode_normalisation(tmp_path):
    from spatule_synth.formats.label_map import LabelMap, write_label_map
    write_label_map(LabelMap.from_names([unicodedata.normalize("NFC", "étiquette")]),
                    str(tmp_path / "map.pbtxt"))
    folder = tmp_path / "in"
    labelled_photo(folder, "a.jpg", [(unicodedata.normalize("NFD", "étiquette"), TAG)])
    result = convert(folder, tmp_path / "out", label_map_path=str(tmp_path / "map.pbtxt"))
    assert result.problems.problems == []
    [record] = check_records(result)
    assert record.objects[0].class_text == unicodedata.normalize("NFC", "étiquette")


def test_a_photo_whose_annotation_was_refused_is_no_background_either(tmp_path):
    images, xml = tmp_path / "images", tmp_path / "xml"
    for k in range(3):
        labelled_photo(images, f"L{k}.jpg", [("tag", TAG)], seed=k)
    os.makedirs(xml)
    for k in range(3):
        os.rename(images / f"L{k}.xml", xml / f"L{k}.xml")
    (xml / "L1.xml").write_text((xml / "L1.xml").read_text().replace("object>", "Object>"))
    (xml / "L2.xml").write_text((xml / "L2.xml").read_text().replace("<filename>L2.jpg", "<filename>L0.jpg"))
    shelf = tmp_path / "shelf"  # labels saved with the whole photo name, beside the photo
    labelled_photo(shelf, "P.jpg", [("tag", TAG)])
    os.rename(shelf / "P.xml", shelf / "P.jpg.xml")
    result = generate(tmp_path, input_dirs=(str(images),), annotation_dirs=(str(xml),),
                      background_dirs=(str(backgrounds(tmp_path)), str(images), str(shelf)))
    assert result.problems.counts() == {"malformed_xml": 1, "filename_mismatch": 1,
                                        "background_labelled": 4}
    assert [p.message() for p in result.problems.problems if p.kind == "background_labelled"] == [
        f"{images}/L0.jpg: its annotation file {xml}/L0.xml has 1 object: a photo with objects is "
        "not a background; skipped (give labelled folders as --input_dirs)",
        f"{images}/L1.jpg: its annotation file {xml}/L1.xml cannot be read (<Object> (line 14) is "
        "not <object>: tags are case-sensitive, so labelImg would not show this object): a photo "
        "with objects is not a background; skipped (give labelled folders as --input_dirs)",
        f"{images}/L2.jpg: its annotation file {xml}/L2.xml has 1 object: a photo with objects is "
        "not a background; skipped (give labelled folders as --input_dirs)",
        f"{shelf}/P.jpg: its annotation file {shelf}/P.jpg.xml has 1 object: a photo with objects is "
        "not a background; skipped (give labelled folders as --input_dirs)"]
    assert used_photos(tmp_path / "out") == ({"L0.jpg"}, {"BG0.jpg", "BG1.jpg"})
    check_generated(tmp_path / "out")


def test_a_label_file_of_the_other_format_is_not_taken_for_no_label(tmp_path):
    folder = tmp_path / "mixed"
    labelled_photo(folder, "xml.jpg", [("tag", TAG)])
    save_photo(folder, "txt.jpg", [TAG], seed=1)
    (folder / "txt.txt").write_text(_yolo_line(TAG))
    (folder / "classes.txt").write_text("tag\n")
    result = convert(folder, tmp_path / "out", unlabelled="negative")
    assert [p.message() for p in result.problems.problems] == [
        f"{folder}/txt.jpg: no XML labels it, but {folder}/txt.txt does (a YOLO txt? give this "
        "folder as --yolo_dirs); image skipped"]
    assert [r.filename for r in check_records(result)] == ["xml.jpg"]
    result = generate(tmp_path, "gen", yolo_dirs=(str(folder),), unlabelled="negative")
    assert [p.message() for p in result.problems.problems] == [
        f"{folder}/xml.jpg: no txt labels it, but {folder}/xml.xml does (a labelImg XML? give this "
        "folder as --input_dirs); image skipped"]
    assert used_photos(tmp_path / "gen") == ({"txt.jpg"}, {"BG0.jpg", "BG1.jpg"})
    check_generated(tmp_path / "gen")


def test_exif_rotated_photo_labelled_without_a_size_is_noted(tmp_path):
    folder = tmp_path / "yolo"
    folder.mkdir()
    (folder / "classes.txt").write_text("tag\n")
    exif = Image.Exif()
    exif[0x0112] = 6
    for k in range(2):
        Image.fromarray(np.asarray(Image.open(save_photo(folder, f"R{k}.jpg", [TAG], seed=k)))).save(
            folder / f"R{k}.jpg", exif=exif.tobytes(), quality=95)
        (folder / f"R{k}.txt").write_text(_yolo_line((30, 20, 50, 60), index=0))
    result = generate(tmp_path, yolo_dirs=(str(folder),))
    assert result.problems.counts() == {"exif_unknown_frame": 2}
    assert result.problems.problems[0].message() == (
        f"{folder}/R0.txt (image R0.jpg): the photo has EXIF orientation 6: labelImg >= 1.8.4 labels "
        "it as displayed, older versions as stored, and the annotation's size cannot tell which; the "
        "boxes are taken as drawn on the displayed photo (check it in labelImg)")


def test_voc_segmentation_void_without_objects_is_not_object_free(tmp_path):
    folder = tmp_path / "voc"
    for sub in ("JPEGImages", "Annotations", "SegmentationObject"):
        (folder / sub).mkdir(parents=True)
    for stem, regions, value in (("good", [TAG], 1), ("void", [(10, 10, 150, 110)], 255)):
        save_photo(folder / "JPEGImages", f"{stem}.jpg", regions)
        indices = np.zeros((SIZE[1], SIZE[0]), np.uint8)
        for x0, y0, x1, y1 in regions:
            indices[y0:y1, x0:x1] = value
        Image.fromarray(indices, mode="L").save(folder / "SegmentationObject" / f"{stem}.png")
        (folder / "Annotations" / f"{stem}.xml").write_text(
            voc_xml(f"{stem}.jpg", SIZE, [("tag", TAG)] if value == 1 else []))
    result = generate(tmp_path, voc_seg_dirs=(str(folder),))
    assert result.problems.counts() == {"mask_invalid": 1, "image_incomplete": 1}
    assert used_photos(tmp_path / "out") == ({"good.jpg"}, {"BG0.jpg", "BG1.jpg"})
    check_generated(tmp_path / "out")


def test_identity_regex_errors_are_usage_errors_and_an_empty_group_is_said(tmp_path):
    labelled_photo(tmp_path / "in", "L0.jpg", [("tag", TAG)])
    done = subprocess.run([sys.executable, os.path.join(REPO, "generate.py"),
                           f"--input_dirs={tmp_path / 'in'}", f"--output_dir={tmp_path / 'out'}",
                           "--identity=regex", "--identity_regex=L("], capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "identity_regex 'L(' is not a regular expression: missing ), unterminated subpattern at " \
           "position 1" in done.stderr
    labelled_photo(tmp_path / "in", "K0.jpg", [("tag", TAG)], seed=1)
    result = generate(tmp_path, input_dirs=(str(tmp_path / "in"),), identity="regex",
                      identity_regex="^(?:(L)|K)")
    assert [p.message() for p in result.problems.problems] == [
        f"{tmp_path / 'in'}/K0.xml (image K0.jpg), object #0 ('tag'): --identity_regex '^(?:(L)|K)' does "
        "not match the file name (or its group is empty); object skipped"]


def test_notes_never_stop_a_failing_run_and_bad_inputs_always_do(tmp_path):
    folder = tmp_path / "in"
    labelled_photo(folder, "clipped.jpg", [("tag", (150, 60, 161, 80))], painted_boxes=[(150, 60, 160, 80)])
    save_photo(folder, "unlabelled.jpg", seed=1)
    labelled_photo(folder, "twice.jpg", [("tag", TAG), ("tag", TAG)], seed=2)
    result = convert(folder, tmp_path / "out", on_error="fail")
    assert result.problems.counts() == {"box_clipped": 1, "no_annotation": 1, "duplicate_object": 1}
    check_records(result)
    labelled_photo(folder, "typo.jpg", [("tga", TAG)], seed=3)
    with pytest.raises(RunStopped, match=r"typo\.xml \(image typo\.jpg\), object #0 \('tga'\): class "
                                         r"'tga' is not in the label map"):
        convert(folder, tmp_path / "out2", on_error="fail")
