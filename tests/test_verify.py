"""verify: passes on fresh outputs, and names what is wrong in outputs we break on purpose."""

import json
import os

import pytest

from spatule_synth.synthesize import run_generate
from spatule_synth.tfrecord import RecordObject, ShardedRecordWriter, read_records
from spatule_synth.verify import verify_output
from test_cli import run
from test_generate import background_photos, config_for, tag_photos


@pytest.fixture
def output(tmp_path):
    tag_photos(tmp_path / "labelled", 6)
    background_photos(tmp_path / "backgrounds", 6)
    out = tmp_path / "out"
    run_generate(config_for(tmp_path, out, num_images=20, negative_fraction=0.1))
    return out


def failures(out):
    report = verify_output(str(out))
    return {name: check.failures for name, check in report.checks.items() if check.failures}


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
def test_every_preset_passes_verify(tmp_path, preset, extra):
    out = tmp_path / "out"
    done = run(f"--flagfile={preset}", f"--output_dir={out}", *extra)
    assert done.returncode == 0, done.stderr[-2000:]
    report = verify_output(str(out))
    assert not report.failed, report.table()
