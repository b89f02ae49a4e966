import collections
import json
import os

import pytest
import tensorflow as tf
from PIL import Image

from spatule_synth.core.boxes import Box
from spatule_synth.core.config import ConvertConfig
from spatule_synth.modes.convert import run_convert
from spatule_synth.formats.manifest import read_manifest
from spatule_synth.core.output_dir import OutputDirError
from spatule_synth.core.problems import RunStopped
from spatule_synth.formats.tfrecord import read_records
from conftest import QUIRK_TAG, add_photo, labelimg_xml


def convert(input_dirs, output_dir, **options):
    config = ConvertConfig(input_dirs=tuple(str(d) for d in input_dirs), output_dir=str(output_dir),
                           **options)
    return run_convert(config)


def records_by_name(result):
    return {record.filename: record for record in read_records(result.shard_paths)}


def pixels(record):
    return tf.io.decode_image(record.encoded, channels=3).numpy()


def test_labelimg_quirks_convert_to_the_right_boxes(quirks_dir, tmp_path):
    result = convert([quirks_dir / "photos"], tmp_path / "out",
                     annotation_dirs=(str(quirks_dir / "saved_xml"),), unlabelled="negative")
    records = records_by_name(result)
    assert sorted(records) == ["IMAG0420.JPG", "IMAG0488 (2).JPG", "IMAG0489.jpeg", "IMAG0517.JPG",
                               "IMAG0518.JPG", "IMAG0600.JPG", "gray photo.png"]
    assert sorted(r.source_id for r in records.values()) == [str(i) for i in range(1, 8)]
    for name in ("IMAG0488 (2).JPG", "IMAG0517.JPG", "IMAG0518.JPG", "gray photo.png"):
        record = records[name]
        assert (record.width, record.height) == (320, 240), name
        [tag] = record.objects
        assert tag.class_text == "tag" and tag.class_label == 1
        assert tag.box(320, 240) == Box(*QUIRK_TAG), name
        x0, y0, x1, y1 = QUIRK_TAG  # the tag really is under the box in the decoded image
        image = pixels(record)
        assert image[y0:y1, x0:x1].mean() > 120 and image[y0:y0 + 8, x0:x1].mean() > 230, name
        assert image[y0 - 6:y0 - 1, x0:x1].mean() < 160, name
    assert records["IMAG0489.jpeg"].objects[0].box(320, 240) == Box(99.6, 60, 160, 90)
    assert records["IMAG0420.JPG"].objects == () and records["IMAG0600.JPG"].objects == ()
    assert result.problems.counts() == {"missing_image": 1, "unlabelled_negative": 1, "exif_frame": 1}
    manifest = read_manifest(result.output_dir)
    assert manifest["counts"]["examples"] == 7 and manifest["counts"]["negatives_written"] == 2
    assert manifest["counts"]["objects_per_class"] == {"tag": 5}


def test_rotated_photo_is_stored_upright_for_tensorflow(quirks_dir, tmp_path):
    record = records_by_name(convert([quirks_dir / "photos"], tmp_path / "out"))["IMAG0517.JPG"]
    assert pixels(record).shape == (240, 320, 3)  # TensorFlow ignores EXIF: bytes were re-encoded


def test_negatives_can_be_left_out(quirks_dir, tmp_path):
    result = convert([quirks_dir / "photos"], tmp_path / "out", keep_negatives=False,
                     unlabelled="negative")
    assert all(record.objects for record in read_records(result.shard_paths))
    assert result.negatives_dropped == 3  # empty XML, no XML, XML in a folder not given


def test_same_inputs_give_identical_bytes(quirks_dir, tmp_path):
    first = convert([quirks_dir / "photos"], tmp_path / "a", num_shards=2)
    second = convert([quirks_dir / "photos"], tmp_path / "b", num_shards=2)
    for path_a, path_b in zip(first.shard_paths, second.shard_paths, strict=True):
        assert open(path_a, "rb").read() == open(path_b, "rb").read()
    assert os.path.basename(first.shard_paths[1]) == "real.record-00001-of-00002"


# --- bad input: one case each, message and counts -------------------------------------------------


def single_problem(folder, tmp_path, kind, **options):
    result = convert([folder], tmp_path / "out", **options)
    assert result.problems.counts() == {kind: 1}
    assert read_manifest(result.output_dir)["counts"]["problems"] == {kind: 1}
    return result, result.problems.problems[0].message()


def test_xml_whose_image_is_missing(tmp_path):
    folder = tmp_path / "in"
    add_photo(folder, "a.jpg", [("tag", 1, 1, 9, 9)])
    os.remove(folder / "a.jpg")
    result, message = single_problem(folder, tmp_path, "missing_image")
    assert message == f"{folder}/a.xml: no image named a.* in {folder}; XML skipped"
    assert result.examples == []


@pytest.mark.parametrize("damage, reason", [
    (lambda data: b"garbage", "cannot decode image: cannot identify image file"),
    (lambda data: data[: len(data) // 3], "cannot decode image"),
    (lambda data: b"", "empty file"),
])
def test_unreadable_corrupt_or_truncated_image(tmp_path, damage, reason):
    folder = tmp_path / "in"
    path = add_photo(folder, "b.jpg", [("tag", 1, 1, 9, 9)])
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(damage(data))
    add_photo(folder, "good.jpg", [("tag", 1, 1, 9, 9)])
    result, message = single_problem(folder, tmp_path, "unreadable_image")
    assert message.startswith(f"{path}: {reason}") and message.endswith("; image skipped")
    assert [e["image"] for e in result.examples] == [str(folder / "good.jpg")]


def test_malformed_xml_skips_the_image_instead_of_calling_it_a_negative(tmp_path):
    folder = tmp_path / "in"
    add_photo(folder, "c.jpg", [("tag", 1, 1, 9, 9)])
    (folder / "c.xml").write_text("<annotation><object><name>tag</name>")
    result, message = single_problem(folder, tmp_path, "malformed_xml")
    assert message.startswith(f"{folder}/c.xml (image c.jpg): malformed XML: ")
    assert message.endswith("; image skipped")
    assert result.examples == []


def test_box_partly_outside_is_clipped_and_said(tmp_path):
    folder = tmp_path / "in"
    add_photo(folder, "d.jpg", [("tag", 50, 40, 70, 60)], size=(64, 48))
    result, message = single_problem(folder, tmp_path, "box_clipped")
    assert message == (f"{folder}/d.xml (image d.jpg), object #0 ('tag'): box (xmin=50 ymin=40 xmax=70 ymax=60) "
                       "goes beyond the 64x48 image; clipped to (xmin=50 ymin=40 xmax=64 ymax=48)")
    [record] = read_records(result.shard_paths)
    assert record.objects[0].box(64, 48) == Box(50, 40, 64, 48)


@pytest.mark.parametrize("box, kind, reason", [
    ((70, 50, 90, 60), "box_outside",
     "box (xmin=70 ymin=50 xmax=90 ymax=60) lies entirely outside the 64x48 image; object dropped"),
    ((20, 10, 5, 30), "box_invalid", "inverted box (xmin=20 ymin=10 xmax=5 ymax=30); object dropped"),
    ((5, 10, 5, 30), "box_invalid", "zero-area box (xmin=5 ymin=10 xmax=5 ymax=30); object dropped"),
])
def test_boxes_outside_inverted_or_empty_are_dropped_and_said(tmp_path, box, kind, reason):
    """The bad box is named; its photo is skipped whole (never written with the good box only)."""
    folder = tmp_path / "in"
    add_photo(folder, "e.jpg", [("tag", 1, 2, 9, 9), ("tag", *box)], size=(64, 48))
    result = convert([folder], tmp_path / "out")
    assert result.problems.counts() == {kind: 1, "image_incomplete": 1}
    assert result.problems.problems[0].message() == f"{folder}/e.xml (image e.jpg), object #1 ('tag'): {reason}"
    assert result.examples == [] and list(read_records(result.shard_paths)) == []


def test_class_not_in_the_label_map_is_dropped_and_said(tmp_path):
    folder = tmp_path / "in"
    add_photo(folder, "f.jpg", [("Tag", 1, 2, 9, 9), ("tag", 3, 3, 8, 8)])
    result = convert([folder], tmp_path / "out")
    assert result.problems.counts() == {"unknown_class": 1, "image_incomplete": 1}
    assert result.problems.problems[0].message() == (
        f"{folder}/f.xml (image f.jpg), object #0 ('Tag'): class 'Tag' is not in the label map "
        "(classes: tag); did you mean 'tag'?; object dropped")
    assert result.examples == []


def test_two_images_with_one_stem_are_both_skipped(tmp_path):
    folder = tmp_path / "in"
    add_photo(folder, "g.jpg", [("tag", 1, 2, 9, 9)])
    Image.new("RGB", (64, 48)).save(folder / "g.png")
    result, message = single_problem(folder, tmp_path, "duplicate_stem")
    assert message == (f"{folder}/g.jpg: stem 'g' is shared by {folder}/g.jpg, {folder}/g.png; "
                       "cannot tell which image an XML labels, all skipped")
    assert result.examples == []


def test_same_stem_in_two_folders_is_fine(tmp_path):
    add_photo(tmp_path / "cam1", "IMAG0001.JPG", [("tag", 1, 2, 9, 9)])
    add_photo(tmp_path / "cam2", "IMAG0001.JPG", [("tag", 1, 2, 9, 9)])
    result = convert([tmp_path / "cam1", tmp_path / "cam2"], tmp_path / "out")
    assert result.problems.counts() == {} and len(result.examples) == 2
    assert [e["source_id"] for e in result.examples] == ["1", "2"]


def test_xml_size_disagreeing_with_the_image_is_noted_and_the_decoded_size_wins(tmp_path):
    folder = tmp_path / "in"
    add_photo(folder, "h.jpg", [("tag", 1, 2, 9, 9)], size=(64, 48))
    (folder / "h.xml").write_text(labelimg_xml("h.jpg", 640, 300, [("tag", 1, 2, 9, 9)]))
    result, message = single_problem(folder, tmp_path, "size_mismatch")
    assert message == (f"{folder}/h.xml (image h.jpg): the annotation says the image is 640x300 but "
                       "it decodes to 64x48; every box lies inside the decoded image, so the boxes "
                       "are kept as drawn")
    [record] = read_records(result.shard_paths)
    assert (record.width, record.height) == (64, 48)
    assert record.objects[0].xmax == pytest.approx(9 / 64)


def test_on_error_fail_stops_at_the_first_bad_input_and_claims_nothing(tmp_path):
    folder = tmp_path / "in"
    add_photo(folder, "a.jpg", [("tag", 1, 2, 9, 9)])
    add_photo(folder, "b.jpg", [("bird", 1, 2, 9, 9)])
    with pytest.raises(RunStopped, match=r"b\.xml \(image b\.jpg\), object #0 \('bird'\): class 'bird' is not in the "
                                         r"label map .*\(stopped by --on_error=fail\)"):
        convert([folder], tmp_path / "out", on_error="fail")
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not (tmp_path / "out" / "annotations" / "real.record").exists()


def test_notes_do_not_stop_a_failing_run(quirks_dir, tmp_path):
    os.remove(quirks_dir / "photos" / "IMAG0399.xml")
    result = convert([quirks_dir / "photos"], tmp_path / "out", on_error="fail")
    assert result.problems.counts() == {"no_annotation": 2, "exif_frame": 1}


# --- the output directory ---------------------------------------------------------------------------


def test_existing_output_is_not_overwritten_without_overwrite(quirks_dir, tmp_path):
    convert([quirks_dir / "photos"], tmp_path / "out")
    before = (tmp_path / "out" / "manifest.json").read_bytes()
    with pytest.raises(OutputDirError, match="already exists and is not empty; pass --overwrite"):
        convert([quirks_dir / "photos"], tmp_path / "out")
    assert (tmp_path / "out" / "manifest.json").read_bytes() == before
    (tmp_path / "out" / "annotations" / "stale.record-00003-of-00004").write_bytes(b"old")
    convert([quirks_dir / "photos"], tmp_path / "out", overwrite=True)
    assert not (tmp_path / "out" / "annotations" / "stale.record-00003-of-00004").exists()


def test_overwrite_never_deletes_a_folder_spatule_synth_did_not_make(quirks_dir, tmp_path):
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "chapter1.tex").write_text("precious")
    with pytest.raises(OutputDirError, match="was not created by spatule_synth"):
        convert([quirks_dir / "photos"], tmp_path / "thesis", overwrite=True)
    assert (tmp_path / "thesis" / "chapter1.tex").read_text() == "precious"


def test_output_dir_holding_the_inputs_is_refused(quirks_dir):
    with pytest.raises(OutputDirError, match="contains the input directory"):
        convert([quirks_dir / "photos"], quirks_dir, overwrite=True)


def test_image_whose_every_object_was_dropped_is_not_written_as_a_negative(tmp_path):
    folder = tmp_path / "in"
    add_photo(folder, "only_birds.jpg", [("bird", 1, 2, 9, 9)])
    add_photo(folder, "empty.jpg", [])
    result = convert([folder], tmp_path / "out")
    assert [e["image"] for e in result.examples] == [str(folder / "empty.jpg")]
    assert result.problems.counts() == {"unknown_class": 1, "image_incomplete": 1}
    assert "1  photo that lost an object's label (skipped whole" in result.summary()


def test_messages_name_the_object_by_its_position_in_the_xml(tmp_path):
    folder = tmp_path / "in"
    add_photo(folder, "p.jpg", [("tag", 9, 9, 3, 3), ("Tag", 1, 2, 9, 9)])
    result = convert([folder], tmp_path / "out")
    assert [(p.kind, p.object_index) for p in result.problems.problems] == [
        ("box_invalid", 0), ("unknown_class", 1), ("image_incomplete", None)]


def test_xml_named_in_another_case_still_labels_its_image(tmp_path):
    folder = tmp_path / "in"
    add_photo(folder, "IMG_0001.JPG", [("tag", 1, 2, 9, 9)])
    os.rename(folder / "IMG_0001.xml", folder / "img_0001.xml")
    result = convert([folder], tmp_path / "out")
    assert result.problems.counts() == {} and len(result.examples[0]["objects"]) == 1


def test_image_without_xml_is_skipped_unless_said_to_be_a_negative(tmp_path):
    folder = tmp_path / "in"
    add_photo(folder, "lonely.jpg", xml=False)
    result, message = single_problem(folder, tmp_path, "no_annotation")
    assert message == (f"{folder}/lonely.jpg: no annotation file labels this image (not labelled "
                       "yet?); skipped. If such photos show no object, pass --unlabelled=negative "
                       "or give their folder as --background_dirs")
    assert result.examples == []
    result = convert([folder], tmp_path / "out2", unlabelled="negative")
    assert result.problems.counts() == {"unlabelled_negative": 1} and result.negatives_written == 1


def test_sub_pixel_boxes_are_dropped(tmp_path):
    folder = tmp_path / "in"
    add_photo(folder, "s.jpg", [("tag", 10, 10, 10.5, 20), ("tag", -30, 5, 0.4, 20), ("tag", 1, 2, 9, 9)])
    result = convert([folder], tmp_path / "out")
    assert [p.message().split(": ", 1)[1] for p in result.problems.problems[:2]] == [
        "box (xmin=10 ymin=10 xmax=10.5 ymax=20) is less than one pixel wide or high; object dropped",
        "box (xmin=-30 ymin=5 xmax=0.4 ymax=20) leaves less than one pixel inside the 64x48 image; "
        "object dropped"]
    assert result.problems.problems[2].kind == "image_incomplete" and result.examples == []


def test_the_same_folder_twice_is_refused(tmp_path):
    from spatule_synth.formats.labelimg import InputDirError
    add_photo(tmp_path / "in", "a.jpg", [("tag", 1, 2, 9, 9)])
    with pytest.raises(InputDirError, match="is given twice"):
        convert([tmp_path / "in", str(tmp_path / "in") + "/"], tmp_path / "out")
    result = convert([tmp_path / "in"], tmp_path / "out2", annotation_dirs=(str(tmp_path / "in") + "/",))
    assert result.problems.counts() == {} and len(result.examples) == 1


def test_a_failed_overwrite_run_gives_the_previous_output_back(tmp_path):
    folder = tmp_path / "in"
    add_photo(folder, "a.jpg", [("tag", 1, 2, 9, 9)])
    convert([folder], tmp_path / "out")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out" / "annotations").iterdir()}
    add_photo(folder, "b.jpg", [("bird", 1, 2, 9, 9)])
    with pytest.raises(RunStopped):
        convert([folder], tmp_path / "out", overwrite=True, on_error="fail")
    after = {p.name: p.read_bytes() for p in (tmp_path / "out" / "annotations").iterdir()}
    assert after == before and (tmp_path / "out" / "manifest.json").exists()
    assert sorted(os.listdir(tmp_path)) == ["in", "out"]


def test_manifest_text_is_json_with_one_line_per_listed_object():
    from spatule_synth.formats.manifest import manifest_json
    document = {"seed": 1, "config": {"blend": ["feather"], "empty": {}},
                "images": {"train": [{"name": "a", "objects": [{"box": [1, 2]}]}, {"name": "b"}],
                           "eval": []}}
    text = manifest_json(document)
    assert json.loads(text) == document
    assert '    "train": [\n      {"name": "a", "objects": [{"box": [1, 2]}]},\n      {"name": "b"}\n    ]' in text


def test_tiles_keep_every_object_inside_its_tile_and_lose_none(tmp_path):
    """Demo photos (3264x2448 and rotated) cut into 640 px tiles: every box inside its tile, cut
    boxes clipped and flagged, every tag of every photo labelled whole in some tile."""
    from spatule_synth.formats.labelimg import find_pairs, read_labelimg
    from spatule_synth.formats.label_map import read_label_map
    from spatule_synth.core.problems import ProblemLog
    from spatule_synth.core.validation import InputRules, load_photo
    demo = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "spatule_synth", "demo_data", "labelled")
    result = run_convert(ConvertConfig(input_dirs=(demo,), output_dir=str(tmp_path / "out"), tile_size=640,
                                       tile_overlap=128, tile_negative_fraction=0.5))
    label_map = read_label_map(ConvertConfig(input_dirs=(), output_dir="x").label_map_path)
    expected, sizes = set(), {}
    for pair in find_pairs((demo,), (), ProblemLog()):
        labelled = load_photo(read_labelimg(pair, ProblemLog()), label_map, InputRules(), ProblemLog())
        expected |= {(pair.image_path, o.object_index) for o in labelled.objects}
        sizes.update({(pair.image_path, o.object_index): o.box for o in labelled.objects})
    records = list(read_records(result.shard_paths))
    assert all((r.width, r.height) == (640, 640) for r in records)
    whole = collections.Counter()
    for record, example in zip(records, result.examples):
        x, y, _ = example["tile"]
        for obj, entry in zip(record.objects, example["objects"]):
            box = obj.box(640, 640)
            assert box.is_inside(640, 640)
            original = sizes[(example["image"], entry["object_index"])]
            in_photo = (box.xmin + x, box.ymin + y, box.xmax + x, box.ymax + y)
            clipped = any(abs(a - b) > 1e-3 for a, b in zip(in_photo, (original.xmin, original.ymin,
                                                                        original.xmax, original.ymax)))
            assert obj.truncated == clipped  # cut by the tile edge <=> flagged
            if not obj.truncated:
                whole[(example["image"], entry["object_index"])] += 1
    assert expected and set(whole) == expected  # each tag whole in at least one tile
    assert result.problems.counts().get("tile_lost", 0) == 0
    assert any(not r.objects for r in records)  # some tag-free tiles kept as negatives
