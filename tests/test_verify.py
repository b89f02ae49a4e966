"""verify: passes on fresh outputs, and names what is wrong in outputs we break on purpose."""

import json
import os
import shutil

import pytest

from spatule_synth.generate.run import run_generate
from spatule_synth.formats.tfrecord import RecordObject, ShardedRecordWriter, read_records
from spatule_synth.modes.verify import verify_output
from test_cli import run
from conftest import background_photos
from test_generate import config_for


@pytest.fixture
def output(inputs):
    out = inputs / "out"
    run_generate(config_for(inputs, out, num_images=20, negative_fraction=0.1))
    return out


def failures(out):
    report = verify_output(str(out))
    return {name: check.failures for name, check in report.checks.items() if check.failures}


def edit_manifest(out, change):
    """Re-write ``out``/manifest.json with ``change(manifest)`` applied; returns the manifest."""
    manifest = json.loads((out / "manifest.json").read_text())
    change(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def rewrite_records(path, change):
    """Re-write a record file with ``change(list_of_records)`` applied."""
    records = change(list(read_records([str(path)])))
    with ShardedRecordWriter(str(path)[: -len(".record")], 1) as writer:
        for record in records:
            writer.write(record)


def test_fresh_output_passes(output):
    report = verify_output(str(output))
    assert not report.failed, report.table()
    assert report.checks["images"].passed == 20 and report.checks["xml"].passed == 20
    assert report.table().endswith("verify: all checks passed")
    split = report.checks["split"]  # backgrounds checked by path and content: disjoint, nothing to say
    assert split.passed == 2 + 20 and not split.warnings and not split.notes


def test_box_out_of_range_is_named(output):
    def stretch(records):
        first = records[0]
        obj = first.objects[0] if first.objects else None
        if obj is None:
            first, obj = records[1], records[1].objects[0]
        bad = RecordObject(obj.xmin, obj.ymin, 1.25, obj.ymax, obj.class_text, obj.class_label)
        records[records.index(first)] = type(first)(**{**first.__dict__, "objects": (bad,) + first.objects[1:]})
        return records
    rewrite_records(output / "annotations" / "train.record", stretch)
    found = failures(output)
    assert any("box (" in message and "is not inside [0, 1] with min < max" in message
               for message in found["boxes"]), found


def test_missing_image_is_named(output):
    os.unlink(output / "images" / "train" / "train_000003.jpg")
    found = failures(output)
    assert found["images"] == [found["images"][0]]
    assert found["images"][0].startswith("images/train/train_000003.jpg: missing or unreadable")


def test_identity_in_both_splits_is_named(output):
    manifest = json.loads((output / "manifest.json").read_text())
    leaked = manifest["splits"]["train"]["identities"][0]
    manifest["splits"]["eval"]["identities"].append(leaked)
    (output / "manifest.json").write_text(json.dumps(manifest))
    assert failures(output)["split"] == [f"identities in both train and eval: {leaked}"]


WHY = ("eval images would crop the same photo as train, so eval measures memorised backgrounds; "
       "regenerate the run, or run with --share_backgrounds if that was intended")


def use_in_eval(background):
    """A manifest change: eval lists ``background`` too, and its first image crops it."""
    def change(manifest):
        manifest["splits"]["eval"]["backgrounds"].append(background)
        manifest["images"]["eval"][0]["background"]["file"] = background
    return change


def share_backgrounds(flag):
    def change(manifest):
        manifest["config"]["share_backgrounds"] = flag
    return change


def test_background_photo_in_both_splits_fails(output):
    manifest = json.loads((output / "manifest.json").read_text())
    train = manifest["splits"]["train"]["backgrounds"][0]
    edit_manifest(output, use_in_eval(train))
    found = failures(output)
    assert found == {"split": [f"train background {train} and eval background {train} are the same "
                               f"file, and the run was not made with --share_backgrounds: {WHY}"]}
    edit_manifest(output, share_backgrounds(True))  # sharing asked for: a note, no failure
    report = verify_output(str(output))
    assert not report.failed, report.table()
    assert "note: train and eval crop the same background photos: the run was made with " \
           "--share_backgrounds" in report.table()


def test_copy_of_a_train_background_under_another_name_fails_by_content(output, tmp_path):
    manifest = json.loads((output / "manifest.json").read_text())
    train = manifest["splits"]["train"]["backgrounds"][0]
    copy = tmp_path / "elsewhere" / "renamed.jpg"
    copy.parent.mkdir()
    shutil.copyfile(train, copy)
    edit_manifest(output, use_in_eval(str(copy)))
    [message] = failures(output)["split"]
    assert message.startswith(f"train background {train} and eval background {copy} are the same "
                              "photo by content (sha256 ")
    assert message.endswith(WHY)
    edit_manifest(output, share_backgrounds(True))
    assert failures(output) == {}


@pytest.mark.slow
def test_shared_run_passes_and_fails_once_its_flag_is_removed(inputs):
    out = inputs / "shared"
    run_generate(config_for(inputs, out, num_images=20, share_backgrounds=True))
    report = verify_output(str(out))
    assert not report.failed, report.table()
    assert report.checks["split"].notes
    manifest = edit_manifest(out, share_backgrounds(False))  # backgrounds shared, the flag gone
    photos = manifest["splits"]["train"]["backgrounds"]
    assert sorted(photos) == sorted(manifest["splits"]["eval"]["backgrounds"]) and len(photos) == 6
    found = failures(out)
    assert list(found) == ["split"]
    assert sorted(found["split"]) == sorted(f"train background {photo} and eval background {photo} are the "
                                            f"same file, and the run was not made with --share_backgrounds: "
                                            f"{WHY}" for photo in photos)
    done = run("--mode=verify", f"--output_dir={out}")
    assert done.returncode == 1 and "verify: FAILED" in done.stdout
    assert f"train background {photos[0]} and eval background {photos[0]} are the same file" in done.stdout


def test_image_on_a_background_of_the_other_split_fails(output):
    manifest = json.loads((output / "manifest.json").read_text())
    train = manifest["splits"]["train"]["backgrounds"][0]
    name = manifest["images"]["eval"][0]["name"]

    def crop_train_photo(manifest):
        manifest["images"]["eval"][0]["background"]["file"] = train
    edit_manifest(output, crop_train_photo)
    assert failures(output) == {"split": [f"images/eval/{name}.jpg: background {train} is not one of "
                                          "eval's background photos (listed for train)"]}


def test_missing_background_photo_is_a_warning(output):
    manifest = json.loads((output / "manifest.json").read_text())
    gone = manifest["splits"]["eval"]["backgrounds"][0]
    os.unlink(gone)
    report = verify_output(str(output))
    assert not report.failed, report.table()
    assert report.checks["split"].warnings == [
        f"1 background photos are gone or unreadable (e.g. {gone}): compared with the other split by "
        "path only, not by content"]


def test_duplicate_source_id_is_named(output):
    def duplicate(records):
        records[1] = type(records[1])(**{**records[1].__dict__, "source_id": records[0].source_id})
        return records
    rewrite_records(output / "annotations" / "train.record", duplicate)
    [message] = failures(output)["source ids"]
    assert message == "annotations/train.record #1: source_id 1 repeats annotations/train.record #0"


def test_unknown_class_is_named(output):
    (output / "annotations" / "label_map.pbtxt").write_text('item { id: 1 name: "bird" }\n')
    found = failures(output)
    assert found["label map"][0].endswith("classes differ from the manifest's [(1, 'tag')]")
    assert "class id 1 ('tag') is not in the label map as that name" in found["classes"][0]


def test_unfinished_output_is_named(output):
    os.unlink(output / "manifest.json")
    [message] = failures(output)["manifest"]
    assert message.endswith("manifest.json is missing: the run did not finish (or this is not an "
                            "output directory)")


@pytest.mark.slow
def test_verify_command_exit_status(output):
    done = run("--mode=verify", f"--output_dir={output}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verify: all checks passed" in done.stdout
    os.unlink(output / "images" / "eval" / "eval_000001.jpg")
    done = run("--mode=verify", f"--output_dir={output}")
    assert done.returncode == 1 and "verify: FAILED" in done.stdout


DEMO = ["--input_dirs=spatule_synth/demo_data/labelled", "--background_dirs=spatule_synth/demo_data/backgrounds"]


@pytest.mark.parametrize("preset, extra", [
    ("configs/demo.flags", ["--num_images=30"]),
    ("configs/spatule_tags.flags", DEMO + ["--num_images=30", "--num_shards=3"]),
    ("configs/generic_objects.flags", ["--num_images=30"]),
    ("configs/convert_real_photos.flags", ["--input_dirs=spatule_synth/demo_data/labelled"]),
])
@pytest.mark.slow
def test_every_preset_passes_verify(tmp_path, preset, extra):
    out = tmp_path / "out"
    done = run(f"--flagfile={preset}", f"--output_dir={out}", *extra)
    assert done.returncode == 0, done.stderr[-2000:]
    report = verify_output(str(out))
    assert not report.failed, report.table()


def rephotographed_tags(folder, codes, photos_per_tag=2, seed=0):
    """Each tag code photographed in ``photos_per_tag`` photos (re-lit, rescaled, re-framed,
    re-compressed: near_duplicates' test photographs), pasted into noise, labelled in XML."""
    import numpy as np
    from PIL import Image
    from conftest import labelimg_xml
    from test_near_duplicates import photograph, tag_master
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for code in codes:
        master, mask = tag_master(code)
        for shot in range(photos_per_tag):
            crop = photograph(master, mask, rng.uniform(30, 40), rng)
            pixels = rng.integers(0, 60, (160, 200, 3), dtype=np.uint8)
            height, width = crop.shape[:2]
            pixels[40:40 + height, 50:50 + width] = crop
            name = f"{code}_{shot}.jpg"
            Image.fromarray(pixels).save(folder / name, quality=95)
            (folder / f"{code}_{shot}.xml").write_text(
                labelimg_xml(name, 200, 160, [("tag", 50, 40, 50 + width, 40 + height)]))


def test_identity_auto_keeps_a_rephotographed_tag_in_one_split_and_verify_reports_the_leak(tmp_path):
    codes = ["AB12", "KX7P", "T3RM", "W0LF", "Z9QD"]
    rephotographed_tags(tmp_path / "labelled", codes)
    background_photos(tmp_path / "backgrounds", 6)
    by_photo = tmp_path / "by_photo"
    run_generate(config_for(tmp_path, by_photo, num_images=20, identity="image", eval_fraction=0.4))
    manifest = json.loads((by_photo / "manifest.json").read_text())
    def codes_of(split):
        return {os.path.basename(s["file"]).split("_")[0]
                for s in manifest["splits"][split]["cutout_sources"].values()}
    eval_codes, train_codes = codes_of("eval"), codes_of("train")
    leak = verify_output(str(by_photo)).checks["leak audit"]
    assert eval_codes & train_codes  # a split by photo put a tag on both sides: verify says so
    assert leak.warnings and all("looks like train cutout" in w for w in leak.warnings)
    leaked = {w.split("eval cutout ")[1].split(" ")[0] for w in leak.warnings}
    assert {os.path.basename(c).split("_")[0] for c in leaked} == eval_codes & train_codes
    auto = tmp_path / "auto"
    run_generate(config_for(tmp_path, auto, num_images=20, identity="auto", eval_fraction=0.4))
    manifest = json.loads((auto / "manifest.json").read_text())
    for split in ("train", "eval"):
        sources = manifest["splits"][split]["cutout_sources"]
        identities = {}
        for cutout_id, source in sources.items():
            identities.setdefault(os.path.basename(source["file"]).split("_")[0], set()).add(source["identity"])
        assert all(len(ids) == 1 for ids in identities.values())  # both photos of a tag: one identity
    train = {os.path.basename(s["file"]).split("_")[0] for s in manifest["splits"]["train"]["cutout_sources"].values()}
    evaluation = {os.path.basename(s["file"]).split("_")[0] for s in manifest["splits"]["eval"]["cutout_sources"].values()}
    assert train and evaluation and not train & evaluation and train | evaluation == set(codes)
    assert verify_output(str(auto)).checks["leak audit"].warnings == []


# --- streaming: memory does not grow with the number of images ---------------------------------

def test_examples_are_checked_one_at_a_time(inputs, monkeypatch):
    """Each example goes through every check before the next is read: never more than two parsed
    examples are alive (the one being checked and the one being read)."""
    import weakref
    import spatule_synth.formats.tfrecord as tfrecord
    out = inputs / "masked"
    run_generate(config_for(inputs, out, num_images=20, instance_masks=True, num_shards=3))
    parse, alive, most = tfrecord.from_example, weakref.WeakSet(), []

    def counting(serialized):
        record = parse(serialized)
        alive.add(record)
        most.append(len(alive))
        return record
    monkeypatch.setattr(tfrecord, "from_example", counting)
    report = verify_output(str(out))
    assert not report.failed, report.table()
    assert len(most) == 20 and report.checks["masks"].passed == 20
    assert max(most) <= 2, f"{max(most)} parsed examples alive at once: verify keeps them"


@pytest.mark.slow
def test_manifest_images_are_streamed(output):
    """Extra images in the manifest cost verify no memory (the per-image lists are streamed):
    the traced peak with 4,000 more eval images listed is that with none, to 0.5 MB."""
    import tracemalloc
    from spatule_synth.formats.manifest import manifest_json
    original = json.loads((output / "manifest.json").read_text())
    verify_output(str(output))  # warm-up: TensorFlow's imports and first-call caches are not traced
    peaks = {}
    for extra in (0, 4000):
        manifest = json.loads(json.dumps(original))
        listed = manifest["images"]["eval"]
        listed += [dict(listed[i % len(listed)], name=f"extra_{i}") for i in range(extra)]
        (output / "manifest.json").write_text(manifest_json(manifest))  # the run's own layout
        tracemalloc.start()
        try:
            report = verify_output(str(output))
            peaks[extra] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert not report.failed, report.table()
        assert report.checks["split"].passed == 2 + 20 + extra
    assert (output / "manifest.json").stat().st_size > 2_500_000
    assert peaks[4000] - peaks[0] < 500_000, peaks


def test_stray_image_is_named(output):
    shutil.copyfile(output / "images" / "eval" / "eval_000001.jpg", output / "images" / "eval" / "extra.jpg")
    shutil.copyfile(output / "images" / "eval" / "eval_000001.jpg", output / "images" / "eval" / "eval_009999.jpg")
    assert failures(output) == {"images": ["images/eval/eval_009999.jpg: on disk but in no record",
                                           "images/eval/extra.jpg: on disk but in no record"]}


def test_unreadable_manifest_gives_the_json_message(output):
    path = output / "manifest.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with open(path, encoding="utf-8") as handle:
        with pytest.raises(ValueError) as error:
            json.load(handle)
    assert failures(output) == {"manifest": [f"{path}: cannot be read: {error.value}"]}


def test_manifest_in_any_layout_reads_the_same(output):
    """The stream reads the run's layout, one line, and json.dump's indentation alike; a top level
    that is not an object is read by json.load (and then fails the checks as it did)."""
    from spatule_synth.formats.manifest import manifest_json
    from spatule_synth.modes.verify import _manifest, Check
    whole = json.loads((output / "manifest.json").read_text())
    for text in (manifest_json(whole), json.dumps(whole), json.dumps(whole, indent=3),
                 json.dumps(whole, separators=(",", ":"))):
        (output / "manifest.json").write_text(text)
        manifest = _manifest(str(output), Check("manifest"))
        assert manifest.head == {key: value for key, value in whole.items() if key != "images"}
        assert {split: list(manifest.images(split)) for split in ("train", "eval")} == whole["images"]
    (output / "manifest.json").write_text(json.dumps([1, 2]))
    assert _manifest(str(output), Check("manifest")).head == [1, 2]


def test_duplicate_source_id_in_another_shard_is_named(inputs):
    from spatule_synth.formats.tfrecord import read_records
    out = inputs / "sharded"
    run_generate(config_for(inputs, out, num_images=20, num_shards=2))
    first, second = (out / "annotations" / f"train.record-0000{i}-of-00002" for i in (0, 1))
    taken = list(read_records([str(first)]))[2].source_id
    records = list(read_records([str(second)]))
    records[3] = type(records[3])(**{**records[3].__dict__, "source_id": taken})
    with ShardedRecordWriter(str(inputs / "rewritten"), 1) as writer:
        for record in records:
            writer.write(record)
    os.replace(inputs / "rewritten.record", second)
    assert failures(out) == {"source ids": [
        f"annotations/train.record-00001-of-00002 #3: source_id {taken} repeats "
        "annotations/train.record-00000-of-00002 #2"]}


def test_first_seen_remembers_like_a_dict():
    """`_FirstSeen` (4 bytes per numbered string) answers as a dict would, whatever the strings."""
    import random
    from spatule_synth.modes.verify import _FirstSeen
    rng = random.Random(0)
    for trial in range(30):
        seen, expected = _FirstSeen(), {}
        top = rng.choice([50, 300, 20000])
        for step in range(2000):
            draw = rng.random()
            if draw < 0.6:
                text = str(rng.randint(0, top))
            elif draw < 0.8:
                text = f"train/train_{rng.randint(0, top):06d}.jpg"
            elif draw < 0.9:
                text = rng.choice(["abc", "0012", "012", "12", "", "x.jpg", "9" * 12, "\u0661\u0662"])
            else:
                text = str(rng.randint(0, 10 ** 12))
            if rng.random() < 0.5:
                assert (text in seen) == (text in expected), text
            else:
                assert seen.setdefault(text, step) == expected.setdefault(text, step), text
