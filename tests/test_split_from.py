"""convert --split_from=RUN: real photos evaluate a generated run without a leak."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from spatule_synth.core.config import ConvertConfig, GenerateConfig
from spatule_synth.modes.convert import run_convert
from spatule_synth.modes.split_from import SplitFromError
from spatule_synth.generate.run import run_generate
from spatule_synth.formats.tfrecord import read_records
from conftest import background_photos, tag_photos
from test_verify import rephotographed_tags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def generate(tmp_path, labelled, **options):
    background_photos(tmp_path / "backgrounds", 6)
    settings = dict(input_dirs=(str(labelled),), background_dirs=(str(tmp_path / "backgrounds"),),
                    output_dir=str(tmp_path / "run"), num_images=10, canvas_size=96, eval_fraction=0.4,
                    num_workers=1, seed=1, report=False)
    settings.update(options)
    run_generate(GenerateConfig.from_settings(**settings))
    return json.loads((tmp_path / "run" / "manifest.json").read_text())


def convert(folder, out, run):
    return run_convert(ConvertConfig(input_dirs=(str(folder),), output_dir=str(out), split_from=str(run)))


def source_files(manifest, split):
    return {os.path.basename(s["file"]) for s in manifest["splits"][split]["cutout_sources"].values()}


def test_split_from_keeps_exactly_the_eval_identities(tmp_path):
    tag_photos(tmp_path / "labelled", 8)
    manifest = generate(tmp_path, tmp_path / "labelled")
    train, evaluation = source_files(manifest, "train"), source_files(manifest, "eval")
    assert train and evaluation and len(train | evaluation) == 8
    result = convert(tmp_path / "labelled", tmp_path / "real", tmp_path / "run")
    written = {r.filename for r in read_records(result.shard_paths)}
    assert written == evaluation
    converted = json.loads((tmp_path / "real" / "manifest.json").read_text())["split_from"]
    dropped = {os.path.basename(p["image"]): p["reason"] for p in converted["photos"] if not p["kept"]}
    assert set(dropped) == train
    assert all(reason.startswith("the source of train cutouts of the run") for reason in dropped.values())
    assert f"dropped {len(train)} photos (the source of train cutouts: {len(train)})" in result.summary()


def test_a_renamed_copy_of_a_train_photo_is_dropped_and_a_new_photo_kept(tmp_path):
    tag_photos(tmp_path / "labelled", 6)
    manifest = generate(tmp_path, tmp_path / "labelled")
    real = tmp_path / "real_photos"
    os.makedirs(real)
    train_photo = sorted(source_files(manifest, "train"))[0]
    shutil.copy(tmp_path / "labelled" / train_photo, real / "renamed.JPG")
    shutil.copy(tmp_path / "labelled" / (train_photo[:-4] + ".xml"), real / "renamed.xml")
    tag_photos(tmp_path / "new", 1, seed=11)  # a photo the run never saw
    shutil.copy(tmp_path / "new" / "TAG00 (1).JPG", real / "fresh.JPG")
    (real / "fresh.xml").write_text((tmp_path / "new" / "TAG00 (1).xml").read_text().replace(
        "TAG00 (1).JPG", "fresh.JPG"))
    background_copy = sorted(manifest["splits"]["train"]["backgrounds"])[0]
    shutil.copy(background_copy, real / "bg.jpg")  # a train background, now "unlabelled"
    result = run_convert(ConvertConfig(input_dirs=(str(real),), output_dir=str(tmp_path / "out"),
                                       split_from=str(tmp_path / "run" / "manifest.json"),
                                       unlabelled="negative"))
    decisions = {os.path.basename(path): d for path, d in result.split_decisions}
    assert not decisions["renamed.JPG"].keep and decisions["renamed.JPG"].kind == "train_source"
    assert not decisions["bg.jpg"].keep and decisions["bg.jpg"].kind == "train_background"
    assert decisions["fresh.JPG"].keep and decisions["fresh.JPG"].kind == "unseen"
    assert [r.filename for r in read_records(result.shard_paths)] == ["fresh.JPG"]


def test_regex_identities_drop_new_photos_of_a_train_tag(tmp_path):
    labelled = tmp_path / "labelled"
    tag_photos(labelled, 8)
    codes = ["A7K2", "B3X9", "C4M1", "D8P5"]
    for index in range(8):
        for ext in ("JPG", "xml"):
            os.rename(labelled / f"TAG{index:02d} (1).{ext}", labelled / f"{codes[index % 4]}_{index}.{ext}")
        xml = labelled / f"{codes[index % 4]}_{index}.xml"
        xml.write_text(xml.read_text().replace(f"TAG{index:02d} (1).JPG", f"{codes[index % 4]}_{index}.JPG"))
    manifest = generate(tmp_path, labelled, identity="regex", identity_regex=r"^([A-Z0-9]{4})_", eval_fraction=0.5,
                        seed=2)
    train_codes = {name.split("_")[0] for name in source_files(manifest, "train")}
    eval_codes = {name.split("_")[0] for name in source_files(manifest, "eval")}
    assert train_codes and eval_codes and not train_codes & eval_codes
    real = tmp_path / "real"
    tag_photos(tmp_path / "fresh", 3, seed=21)  # new photos, named after a train, an eval and a new code
    for index, code in enumerate([sorted(train_codes)[0], sorted(eval_codes)[0], "Z0Z0"]):
        os.makedirs(real, exist_ok=True)
        shutil.copy(tmp_path / "fresh" / f"TAG{index:02d} (1).JPG", real / f"{code}_new.JPG")
        text = (tmp_path / "fresh" / f"TAG{index:02d} (1).xml").read_text()
        (real / f"{code}_new.xml").write_text(text.replace(f"TAG{index:02d} (1).JPG", f"{code}_new.JPG"))
    result = convert(real, tmp_path / "out", tmp_path / "run")
    kept = {os.path.basename(p) for p, d in result.split_decisions if d.keep}
    assert kept == {f"{sorted(eval_codes)[0]}_new.JPG", "Z0Z0_new.JPG"}
    [(_, dropped)] = [(p, d) for p, d in result.split_decisions if not d.keep]
    assert dropped.reason == f"its identity {sorted(train_codes)[0]!r} (from --identity_regex) went to train"


def test_auto_identities_drop_a_train_tag_photographed_again(tmp_path):
    codes = ["AB12", "KX7P", "T3RM", "W0LF", "Z9QD"]
    rephotographed_tags(tmp_path / "shots", codes, photos_per_tag=2)
    labelled, later = tmp_path / "labelled", tmp_path / "later"
    os.makedirs(labelled)
    os.makedirs(later)
    for code in codes:  # the run sees the first photo of each tag; the second comes later
        for ext in ("jpg", "xml"):
            shutil.copy(tmp_path / "shots" / f"{code}_0.{ext}", labelled / f"{code}_0.{ext}")
            shutil.copy(tmp_path / "shots" / f"{code}_1.{ext}", later / f"{code}_1.{ext}")
    manifest = generate(tmp_path, labelled, identity="auto", eval_fraction=0.4, seed=3)
    train_codes = {name.split("_")[0] for name in source_files(manifest, "train")}
    eval_codes = {name.split("_")[0] for name in source_files(manifest, "eval")}
    assert train_codes and eval_codes
    result = convert(later, tmp_path / "out", tmp_path / "run")
    decisions = {os.path.basename(p).split("_")[0]: d for p, d in result.split_decisions}
    assert {code for code, d in decisions.items() if not d.keep} == train_codes
    assert all(d.kind == "train_look" and "looks like train cutout" in d.reason
               for d in decisions.values() if not d.keep)
    assert {code for code, d in decisions.items() if d.keep} == eval_codes


def test_a_run_whose_train_photos_are_gone_is_refused(tmp_path):
    tag_photos(tmp_path / "labelled", 6)
    manifest = generate(tmp_path, tmp_path / "labelled")
    moved = sorted(source_files(manifest, "train"))[0]
    os.rename(tmp_path / "labelled" / moved, tmp_path / moved)
    with pytest.raises(SplitFromError, match=r"train photos of that run are not where its manifest "
                                             r"says \(e\.g\. .*\); without them no photo can be "
                                             "recognised as train by its content"):
        convert(tmp_path / "labelled", tmp_path / "out", tmp_path / "run")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_split_from_on_the_command_line(tmp_path):
    tag_photos(tmp_path / "labelled", 6)
    generate(tmp_path, tmp_path / "labelled")
    (tmp_path / "not_a_run").mkdir()
    (tmp_path / "not_a_run" / "manifest.json").write_text(json.dumps({"mode": "convert"}))
    output = subprocess.run([sys.executable, "generate.py", "--mode=convert",
                             f"--input_dirs={tmp_path / 'labelled'}", f"--output_dir={tmp_path / 'out'}",
                             f"--split_from={tmp_path / 'not_a_run'}"],
                            cwd=REPO, capture_output=True, text=True)
    assert output.returncode == 1
    assert output.stderr.strip().splitlines()[-1] == (
        f"error: --split_from={tmp_path / 'not_a_run'}: {tmp_path / 'not_a_run' / 'manifest.json'} is "
        "not the manifest of a generate run (mode 'convert')")


def test_convert_with_split_from_writes_a_pipeline_config_evaluating_on_the_kept_photos(tmp_path):
    tag_photos(tmp_path / "labelled", 6)
    generate(tmp_path, tmp_path / "labelled", no_flip_classes=("tag",))
    workspace = tmp_path / "workspace"
    command = [sys.executable, "generate.py", "--mode=convert", f"--input_dirs={tmp_path / 'labelled'}",
               f"--output_dir={tmp_path / 'real'}", f"--split_from={tmp_path / 'run'}",
               "--pipeline_config=ssd_mobilenet_v2_fpnlite_320x320", f"--workspace={workspace}"]
    output = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert output.returncode == 0, output.stderr
    config = (workspace / "models" / "run_real_eval" / "pipeline.config").read_text()
    paths = [line.split('"')[1] for line in config.splitlines() if line.strip().startswith("input_path:")]
    assert paths == [str(tmp_path / "run" / "annotations" / "train.record"),
                     str(tmp_path / "real" / "annotations" / "real.record")]
    assert "random_horizontal_flip {" not in config  # the run's --no_flip_classes holds here too
    refused = subprocess.run(command[:4] + [f"--output_dir={tmp_path / 'real2'}",
                                            "--pipeline_config=ssd_mobilenet_v2_fpnlite_320x320"],
                             cwd=REPO, capture_output=True, text=True)
    assert refused.returncode != 0 and "--pipeline_config goes with --mode=generate, or with " \
        "--mode=convert --split_from=RUN" in refused.stderr



def test_a_run_and_photos_behind_urls_split_the_photos_as_on_disk(tmp_path):
    """Every path a URL (memory://): the generate run, its photos, and the converted output."""
    import fsspec
    from test_storage import memory_tree, to_memory
    from test_scale import tree
    tag_photos(tmp_path / "labelled", 8)
    generate(tmp_path, tmp_path / "labelled")  # the run on disk, and its photos
    local = convert(tmp_path / "labelled", tmp_path / "real", tmp_path / "run")
    base = f"memory://split-from-{os.getpid()}-{tmp_path.name}"
    photos = to_memory(str(tmp_path / "labelled"), f"{base}/labelled")
    run_generate(GenerateConfig.from_settings(
        input_dirs=(photos,), background_dirs=(str(tmp_path / "backgrounds"),), output_dir=f"{base}/run",
        num_images=10, canvas_size=96, eval_fraction=0.4, num_workers=1, seed=1, report=False))
    remote = run_convert(ConvertConfig(input_dirs=(photos,), output_dir=f"{base}/real", split_from=f"{base}/run"))
    kept = [(os.path.basename(path), decision.keep) for path, decision in remote.split_decisions]
    assert kept == [(os.path.basename(path), decision.keep) for path, decision in local.split_decisions]
    assert any(keep for _, keep in kept) and not all(keep for _, keep in kept)
    assert memory_tree(f"{base}/real")["annotations/real.record"] == tree(tmp_path / "real")["annotations/real.record"]
    fsspec.filesystem("memory").rm(base, recursive=True)
