"""generate end to end on tiny generated inputs: layout, split, negatives, bad input, reproducibility."""

import filecmp
import json
import os

import numpy as np
import pytest
from PIL import Image

from spatule_synth.core.boxes import Box
from spatule_synth.core.config import GenerateConfig
from spatule_synth.generate.identities import content_key
from spatule_synth.formats.manifest import read_manifest
from spatule_synth.core.problems import RunStopped
from spatule_synth.generate.sources import SourceError
from spatule_synth.generate.split import SplitError
from spatule_synth.generate.run import run_generate
from spatule_synth.formats.tfrecord import read_records
from spatule_synth.formats.voc import read_voc
from conftest import background_photos, tag_photos

CANVAS = 96


def config_for(inputs, out, **options):
    settings = dict(input_dirs=(str(inputs / "labelled"),), background_dirs=(str(inputs / "backgrounds"),),
                    output_dir=str(out), num_images=40, canvas_size=CANVAS, eval_fraction=0.25,
                    num_workers=1, seed=2, report=False)  # the report has its own tests
    settings.update(options)
    return GenerateConfig.from_settings(**settings)


def test_layout_boxes_and_records_agree(inputs, tmp_path):
    run_generate(config_for(inputs, tmp_path / "out", negative_fraction=0.1,
                            blend=("seamless_normal", "feather", "paste")))
    out = tmp_path / "out"
    train = sorted(os.listdir(out / "images" / "train"))
    assert len(train) == 2 * 30 and train[:2] == ["train_000000.jpg", "train_000000.xml"]
    assert len(os.listdir(out / "images" / "eval")) == 2 * 10
    assert sorted(os.listdir(out / "annotations")) == ["eval.record", "label_map.pbtxt", "train.record"]
    records = {r.filename: r for r in read_records([out / "annotations" / "train.record",
                                                    out / "annotations" / "eval.record"])}
    assert len(records) == 40 and len({r.source_id for r in records.values()}) == 40
    negatives = 0
    for split in ("train", "eval"):
        for name in os.listdir(out / "images" / split):
            if not name.endswith(".xml"):
                continue
            annotation = read_voc(str(out / "images" / split / name))
            record = records[annotation.filename]
            assert (annotation.width, annotation.height) == (CANVAS, CANVAS) == (record.width, record.height)
            assert [o.box for o in annotation.objects] == [o.box(CANVAS, CANVAS) for o in record.objects]
            assert all(o.box.is_inside(CANVAS, CANVAS) for o in annotation.objects)
            image = np.asarray(Image.open(out / "images" / split / annotation.filename))
            for obj in annotation.objects:  # a bright tag under every box
                x0, y0, x1, y1 = obj.box.voc_ints()
                assert image[y0:y1, x0:x1].max() > 150
            negatives += not annotation.objects
    assert negatives == 4  # 10% of 30 train + 10% of 10 eval, in XML and records
    assert sum(1 for r in records.values() if not r.objects) == 4


def test_identities_are_disjoint_and_match_the_manifest(inputs, tmp_path):
    run_generate(config_for(inputs, tmp_path / "out"))
    manifest = read_manifest(str(tmp_path / "out"))
    splits = manifest["splits"]
    assert set(splits["train"]["identities"]).isdisjoint(splits["eval"]["identities"])
    assert len(splits["eval"]["identities"]) == 2 and len(splits["train"]["identities"]) == 4
    assert set(splits["train"]["backgrounds"]).isdisjoint(splits["eval"]["backgrounds"])
    for split in ("train", "eval"):
        photos = {cutout.split("#")[0] for cutout in splits[split]["cutouts"]}
        # identity = the photo's content by default
        assert {f"photo:{content_key(p)}" for p in photos} == set(splits[split]["identities"])
        for image in manifest["images"][split]:
            assert image["background"]["file"] in splits[split]["backgrounds"]
            assert {o["cutout"].split("#")[0] for o in image["objects"]} <= photos


def test_identity_regex_keeps_one_tag_on_one_side(tmp_path):
    tag_photos(tmp_path / "labelled", 6)
    for index in range(6):  # photos 0-2 show tag A7K2, photos 3-5 tag B3X9
        code = "A7K2" if index < 3 else "B3X9"
        for ext in ("JPG", "xml"):
            os.rename(tmp_path / "labelled" / f"TAG{index:02d} (1).{ext}",
                      tmp_path / "labelled" / f"{code}_{index}.{ext}")
    background_photos(tmp_path / "backgrounds", 4)
    run_generate(config_for(tmp_path, tmp_path / "out", identity="regex",
                            identity_regex=r"^([A-Z0-9]{4})_", eval_fraction=0.5))
    splits = read_manifest(str(tmp_path / "out"))["splits"]
    assert sorted(splits["train"]["identities"] + splits["eval"]["identities"]) == ["A7K2", "B3X9"]


def test_byte_identical_with_one_and_two_workers(inputs, tmp_path):
    options = dict(num_images=48, blend=("seamless_normal", "seamless_mixed", "feather"), num_shards=2,
                   overwrite=True, report=True)
    run_generate(config_for(inputs, tmp_path / "out", num_workers=1, **options))
    os.rename(tmp_path / "out", tmp_path / "one")  # same output path for both runs: same manifest
    run_generate(config_for(inputs, tmp_path / "out", num_workers=2, **options))
    os.rename(tmp_path / "out", tmp_path / "two")
    compared = 0
    for folder, _, files in os.walk(tmp_path / "one"):
        for name in files:
            relative = os.path.relpath(os.path.join(folder, name), tmp_path / "one")
            assert filecmp.cmp(tmp_path / "one" / relative, tmp_path / "two" / relative, shallow=False), relative
            compared += 1
    assert compared == 2 * 48 + 5 + 1 + 1 + 5  # images+XML, 4 shards + label map, manifest, marker, report


def test_other_seed_other_images(inputs, tmp_path):
    run_generate(config_for(inputs, tmp_path / "a", seed=1))
    run_generate(config_for(inputs, tmp_path / "b", seed=2))
    a = (tmp_path / "a" / "images" / "train" / "train_000000.jpg").read_bytes()
    assert a != (tmp_path / "b" / "images" / "train" / "train_000000.jpg").read_bytes()


def test_small_background_is_upscaled_and_said(inputs, tmp_path):
    background_photos(tmp_path / "small", 1, size=(80, 60))
    result = run_generate(config_for(inputs, tmp_path / "out", background_dirs=(str(tmp_path / "small"),),
                                     eval_fraction=0.0, num_images=4))
    assert result.problems.counts() == {"background_small": 1}
    assert result.problems.problems[0].message() == (
        f"{tmp_path / 'small' / 'BG00.jpg'}: 80x60 is smaller than the 96x96 canvas; it is upscaled "
        "to cover it")
    image = Image.open(tmp_path / "out" / "images" / "train" / "train_000000.jpg")
    assert image.size == (CANVAS, CANVAS)


def test_cutout_larger_than_the_canvas_is_skipped_and_said(inputs, tmp_path):
    big = tmp_path / "big"
    tag_photos(big, 1, size=(300, 150), tags_per_photo=1)
    annotation = (big / "TAG00 (1).xml").read_text()
    xmin = annotation.split("<xmin>")[1].split("<")[0]
    (big / "TAG00 (1).xml").write_text(annotation.replace(f"<xmax>{int(xmin) + 30}</xmax>",
                                                          f"<xmax>{int(xmin) + 120}</xmax>"))
    result = run_generate(config_for(inputs, tmp_path / "out", num_images=4, eval_fraction=0.0,
                                     input_dirs=(str(inputs / "labelled"), str(big))))
    assert result.problems.counts() == {"cutout_too_large": 1}
    assert result.problems.problems[0].message() == (
        f"{big / 'TAG00 (1).xml'} (image TAG00 (1).JPG), object #0 ('tag'): object of 120x20 px (with "
        "its 8 px margin, at "
        "the smallest --scale_range) does not fit the 96x96 canvas; object skipped")


def test_no_background_stops_with_a_clear_message(inputs, tmp_path):
    with pytest.raises(SourceError, match="no background photo: add photos without objects"):
        run_generate(config_for(inputs, tmp_path / "out", background_dirs=()))


def test_no_cutout_stops_with_a_clear_message(inputs, tmp_path):
    with pytest.raises(SourceError, match="no usable labelled object"):
        run_generate(config_for(inputs, tmp_path / "out", input_dirs=(str(inputs / "backgrounds"),)))


def test_class_missing_from_the_label_map(inputs, tmp_path):
    label_map = tmp_path / "birds.pbtxt"
    label_map.write_text("item { id: 1 name: 'bird' }")
    with pytest.raises(RunStopped, match=r"class 'tag' is not in the label map \(classes: bird\)"):
        run_generate(config_for(inputs, tmp_path / "out", label_map_path=str(label_map), on_error="fail"))
    with pytest.raises(SourceError, match="no usable labelled object"):
        run_generate(config_for(inputs, tmp_path / "out2", label_map_path=str(label_map)))


def test_a_split_that_would_be_empty_stops_instead_of_leaking(tmp_path):
    tag_photos(tmp_path / "labelled", 1)
    background_photos(tmp_path / "backgrounds", 4)
    with pytest.raises(SplitError, match="cannot split 1 identities into train and eval"):
        run_generate(config_for(tmp_path, tmp_path / "out"))
    run_generate(config_for(tmp_path, tmp_path / "ok", eval_fraction=0.0))  # fine without eval


def test_photos_whose_objects_were_dropped_are_not_backgrounds(tmp_path):
    tag_photos(tmp_path / "labelled", 4)
    tag_photos(tmp_path / "unknown", 2, seed=5)
    for index in range(2):  # same photos, but labelled with a class the label map lacks
        path = tmp_path / "unknown" / f"TAG{index:02d} (1).xml"
        path.write_text(path.read_text().replace("<name>tag</name>", "<name>bird</name>"))
    background_photos(tmp_path / "backgrounds", 4)
    run_generate(config_for(tmp_path, tmp_path / "out",
                            input_dirs=(str(tmp_path / "labelled"), str(tmp_path / "unknown"))))
    splits = read_manifest(str(tmp_path / "out"))["splits"]
    used = splits["train"]["backgrounds"] + splits["eval"]["backgrounds"]
    assert not any("unknown" in path for path in used) and len(used) == 4


def test_manifest_records_every_image(inputs, tmp_path):
    run_generate(config_for(inputs, tmp_path / "out", num_images=8, eval_fraction=0.25))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    image = manifest["images"]["train"][0]
    assert set(image) == {"name", "source_id", "background", "objects", "placements", "hidden_objects",
                          "redrawn", "invisible_dropped"}
    assert set(image["background"]) == {"file", "window"}
    assert len(image["placements"]) == len(image["objects"]) + image["hidden_objects"]
    assert {p["cutout"] for p in image["placements"]} >= {o["cutout"] for o in image["objects"]}
    assert manifest["seed"] == 2 and "num_workers" not in manifest["config"]
    for obj in image["objects"]:
        assert Box(*obj["box"]).is_inside(CANVAS, CANVAS) and obj["blend"] == "seamless_normal"


def test_corrupt_background_photo_is_skipped_and_said(inputs, tmp_path):
    data = (inputs / "backgrounds" / "BG00.jpg").read_bytes()
    (inputs / "backgrounds" / "BG00.jpg").write_bytes(data[: len(data) // 2])
    result = run_generate(config_for(inputs, tmp_path / "out", num_images=16))
    assert result.problems.counts() == {"unreadable_image": 1}
    message = result.problems.problems[0].message()
    assert message.startswith(f"{inputs / 'backgrounds' / 'BG00.jpg'}: cannot decode image")
    assert message.endswith("; background skipped")
    backgrounds = [b.path for pool in result.pools.values() for b in pool.backgrounds]
    assert len(backgrounds) == 5 and not any(p.endswith("BG00.jpg") for p in backgrounds)


@pytest.mark.parametrize("images, photos, block", [(20, 7, 2), (5, 7, 1), (10_000, 7, 16), (0, 3, 1)])
def test_every_background_photo_is_used_before_a_block_grows(images, photos, block):
    from spatule_synth.generate.plan import SplitPool, background_for, windows_per_background
    from spatule_synth.generate.sources import Background
    assert windows_per_background(images, photos) == block
    pool = SplitPool("train", (), tuple(Background(f"p{i}.jpg", 800, 600) for i in range(photos)), block)
    used = [background_for(index, pool, seed=2) for index in range(images)]
    assert len(set(used)) == min(photos, images)
    # Consecutive images share a photo in blocks, so a worker decodes it once per block.
    assert all(len(set(used[start:start + block])) == 1 for start in range(0, images, block))
