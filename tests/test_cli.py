"""The command line as a user runs it: exit status, summary and one-line errors (no tracebacks)."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import add_photo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*flags):
    return subprocess.run([sys.executable, os.path.join(REPO, "generate.py"), *flags],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


def test_convert_prints_a_summary(quirks_dir, tmp_path):
    done = run("--mode=convert", f"--input_dirs={quirks_dir / 'photos'}",
               f"--annotation_dirs={quirks_dir / 'saved_xml'}", f"--output_dir={tmp_path / 'out'}",
               "--num_shards=2", "--unlabelled=negative")
    assert done.returncode == 0, done.stderr
    assert "convert: 7 examples written from 7 images found (2 negatives without objects)" in done.stdout
    assert "objects of class 'tag': 5" in done.stdout
    assert "1  annotation whose image is missing (skipped)" in done.stdout
    assert "IMAG0399.xml: no image named IMAG0399.*" in done.stderr
    assert sorted(os.listdir(tmp_path / "out" / "annotations")) == [
        "label_map.pbtxt", "real.record-00000-of-00002", "real.record-00001-of-00002"]


def test_flagfile_presets_work(quirks_dir, tmp_path):
    flagfile = tmp_path / "mine.flags"
    flagfile.write_text(f"# python generate.py --flagfile={flagfile}\n--mode=convert\n"
                        f"--input_dirs={quirks_dir / 'photos'}\n--output_dir={tmp_path / 'out'}\n")
    done = run(f"--flagfile={flagfile}", "--record_name=eval")
    assert done.returncode == 0, done.stderr
    assert os.path.exists(tmp_path / "out" / "annotations" / "eval.record")


@pytest.mark.parametrize("make_flags, message", [
    (lambda d: [f"--input_dirs={d / 'in'}", "--on_error=fail"],
     "b.xml (image b.jpg), object #0 ('bird'): class 'bird' is not in the label map (classes: tag); "
     "object dropped "
     "(stopped by --on_error=fail)"),
    (lambda d: [f"--input_dirs={d / 'nowhere'}"], "does not exist or is not a folder"),
    (lambda d: [f"--input_dirs={d / 'in'}", f"--label_map={d / 'bad.pbtxt'}"],
     "bad.pbtxt: duplicate id 1 (id 1 'tag', id 1 'bird')"),
    (lambda d: [f"--input_dirs={d / 'in'}", f"--label_map={d / 'none.pbtxt'}"],
     "none.pbtxt: cannot read label map: No such file or directory"),
])
def test_user_errors_end_with_one_error_line_and_status_1(tmp_path, make_flags, message):
    add_photo(tmp_path / "in", "b.jpg", [("bird", 1, 2, 9, 9)])
    (tmp_path / "bad.pbtxt").write_text("item { id: 1 name: 'tag' } item { id: 1 name: 'bird' }")
    done = run("--mode=convert", f"--output_dir={tmp_path / 'out'}", *make_flags(tmp_path))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")
    assert message in done.stderr.strip().splitlines()[-1]


USAGE = " (see python generate.py --help)\n"


def assert_usage_error(done, message):
    """Exactly one line on stderr, nothing on stdout, exit status 2."""
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"error: {message}{USAGE}")


@pytest.mark.parametrize("make_flags, message", [
    (lambda d: ["--mode=convert", f"--output_dir={d / 'out'}"],
     "--input_dirs is required for --mode=convert"),
    (lambda d: ["--mode=verify"], "--output_dir is required for --mode=verify"),
    (lambda d: ["--flagfile=configs/demo.flags", f"--output_dir={d / 'out'}", "--eval_fraction=2"],
     "flag --eval_fraction=2: 2.0 is not a number in the range [0, 1]"),
    (lambda d: ["--flagfile=configs/demo.flags", f"--output_dir={d / 'out'}", "--num_images=many"],
     "flag --num_images=many: invalid literal for int() with base 10: 'many'"),
    (lambda d: ["--flagfile=configs/demo.flags", f"--output_dir={d / 'out'}", "--num_imgaes=3"],
     "unknown flag --num_imgaes; did you mean --num_images?"),
    (lambda d: ["--flagfile=configs/demo.flags", f"--output_dir={d / 'out'}", "--objects_per_image=3"],
     "--objects_per_image takes min,max (two numbers), got '3'"),
    (lambda d: [f"--flagfile={d / 'missing.flags'}"],
     "Unable to open flagfile: [Errno 2] No such file or directory: '{d}/missing.flags'"),
    (lambda d: ["--mode=verify", f"--output_dir={d / 'out'}", "stray"], "unexpected arguments: stray"),
    (lambda d: ["--mode=evaluate", f"--records={d}", f"--output_dir={d / 'out'}"],
     "--detector is required for --mode=evaluate"),
    (lambda d: ["--mode=evaluate", f"--detector={d}", f"--records={d}", f"--output_dir={d / 'out'}",
                "--score_threshold=1.5"],
     "flag --score_threshold=1.5: 1.5 is not a number in the range [0, 1]"),
])
def test_usage_errors_are_one_line_and_exit_status_2(tmp_path, make_flags, message):
    done = run(*make_flags(tmp_path))
    assert_usage_error(done, message.replace("{d}", str(tmp_path)))
    assert not (tmp_path / "out").exists()


def test_help_still_prints_the_flags():
    done = run("--help")
    assert done.returncode == 1 and done.stderr == ""  # absl's --help, as before
    assert "--model_name: generate: with --pipeline_config" in done.stdout
    assert done.stdout.rstrip().endswith("Try --helpfull to get a list of all flags.")


@pytest.mark.parametrize("flags, message", [
    (["--mode=convert", "--input_dirs=spatule_synth/demo_data/labelled", "--num_images=50"],
     "--num_images is not used by --mode=convert; it is a generate flag"),
    (["--flagfile=configs/demo.flags", "--tile_size=640"],
     "--tile_size is not used by --mode=generate; it is a convert flag"),
    (["--mode=verify", "--seed=3"], "--seed is not used by --mode=verify; it is a generate flag"),
    (["--mode=report", "--label_map=annotations/label_map.pbtxt"],
     "--label_map is not used by --mode=report; it is a generate and convert flag"),
    (["--mode=verify", "--workspace=ws"], "--workspace is not used by --mode=verify; it goes with "
     "--mode=generate, or --mode=convert --split_from=RUN"),
    (["--flagfile=configs/demo.flags", "--batch_size=8"], "--batch_size is used only with --pipeline_config"),
    (["--flagfile=configs/demo.flags", "--model_name=tags"], "--model_name is used only with --pipeline_config"),
    (["--mode=convert", "--input_dirs=spatule_synth/demo_data/labelled",
      "--pipeline_config=ssd_mobilenet_v2_fpnlite_320x320"],
     "--pipeline_config goes with --mode=generate, or with --mode=convert --split_from=RUN (to "
     "evaluate RUN's model on the converted photos)"),
    (["--mode=convert", "--input_dirs=spatule_synth/demo_data/labelled", "--num_steps=100"],
     "--num_steps is used by --mode=convert only with --split_from=RUN and --pipeline_config"),
    # flags that another flag makes unused
    (["--mode=convert", "--input_dirs=spatule_synth/demo_data/labelled", "--tile_overlap=32"],
     "--tile_overlap is used only with --tile_size"),
    (["--flagfile=configs/demo.flags", "--mask_model=model.keras"], "--mask_model is used only with --mask=model"),
    (["--flagfile=configs/demo.flags", "--identity_regex=^(....)_"],
     "--identity_regex is used only with --identity=regex"),
    (["--flagfile=configs/demo.flags", "--distractors_per_image=1,2"],
     "--distractors_per_image is used only with --distractor_dirs"),
    (["--flagfile=configs/demo.flags", "--image_augment=noise=2,jpeg_quality=70:90", "--jpeg_quality=80"],
     "--jpeg_quality is not used when --image_augment draws jpeg_quality (each image's quality comes "
     "from that range)"),
    (["--flagfile=configs/demo.flags", "--max_occlusion=0.3", "--max_overlap=0.1"],
     "--max_overlap is not used with --max_occlusion (overlap is then bounded by the share of each "
     "object's mask that later pastes cover)"),
    (["--mode=convert", "--input_dirs=spatule_synth/demo_data/labelled", "--noreport", "--seed", "3"],
     "--seed is not used by --mode=convert; it is a generate flag; "  # in the order of --help
     "--report is not used by --mode=convert; it is a generate flag"),
    (["--mode=convert", "--input_dirs=spatule_synth/demo_data/labelled", "--score_threshold=0.3"],
     "--score_threshold is not used by --mode=convert; it is an evaluate flag"),
    (["--mode=evaluate", "--detector=d", "--records=r", "--seed=3"],
     "--seed is not used by --mode=evaluate; it is a generate flag"),
])
def test_a_typed_flag_the_mode_does_not_read_is_a_usage_error(tmp_path, flags, message):
    done = run(*flags, f"--output_dir={tmp_path / 'out'}")
    assert_usage_error(done, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_flags_of_a_flagfile_the_mode_ignores_are_one_warning(quirks_dir, tmp_path):
    """A flagfile may hold settings for several modes: with another --mode its flags that the mode
    does not read are named in one warning line; typed on the command line they are an error."""
    flagfile = tmp_path / "mine.flags"
    flagfile.write_text(f"--mode=convert\n--input_dirs={quirks_dir / 'photos'}\n"
                        f"--output_dir={tmp_path / 'out'}\n--record_name=eval\n--unlabelled=negative\n")
    assert run(f"--flagfile={flagfile}").returncode == 0
    done = run(f"--flagfile={flagfile}", "--mode=verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.splitlines()[0] == ("warning: --mode=verify ignores these flags of the "
                                           "--flagfile: --input_dirs, --record_name, --unlabelled")
    assert done.stderr.count("--flagfile") == 1  # then TensorFlow's start-up chatter, if any
    assert done.stdout.endswith("verify: all checks passed\n")
    assert_usage_error(run(f"--flagfile={flagfile}", "--mode=verify", "--record_name", "eval"),
                       "--record_name is not used by --mode=verify; it is a convert flag")


def test_every_flag_has_its_modes_and_every_preset_reads_only_flags_of_its_mode():
    """The table of cli.MODE_FLAGS holds exactly the flags cli defines, and no preset of configs/
    holds a flag its own mode would ignore (checked in a fresh process: absl's global FLAGS)."""
    script = """if True:
        import glob, json
        from absl import flags
        from spatule_synth import cli
        defined = sorted(f.name for f in flags.FLAGS.flags_by_module_dict()["spatule_synth.cli"])
        presets = {}
        for path in sorted(glob.glob("configs/*.flags")):
            given = dict(line.strip()[2:].partition("=")[::2] for line in open(path)
                         if line.startswith("--"))
            given = {k if k in cli.ALL_FLAGS or not k.startswith("no") else k[2:]: v
                     for k, v in given.items()}
            presets[path] = cli.unused_flags(given["mode"], given)
        print(json.dumps([defined, sorted(cli.ALL_FLAGS), presets]))
    """
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    defined, table, presets = json.loads(done.stdout)
    assert table == defined and "model_name" in table
    assert presets == {path: [] for path in ("configs/convert_real_photos.flags", "configs/demo.flags",
                                             "configs/generic_objects.flags", "configs/spatule_tags.flags")}


def test_quickstart_demo_preset(tmp_path):
    """The README's first command, into a temporary directory instead of the workspace."""
    out = tmp_path / "demo"
    done = run("--flagfile=configs/demo.flags", f"--output_dir={out}", "--num_images=40")
    assert done.returncode == 0, done.stderr
    assert "train: 32 images (3 negatives)" in done.stdout
    assert "eval: 8 images (0 negatives)" in done.stdout
    assert sorted(os.listdir(out / "annotations")) == ["eval.record", "label_map.pbtxt", "train.record"]
    assert len(os.listdir(out / "images" / "train")) == 64 and len(os.listdir(out / "images" / "eval")) == 16


def test_demo_photos_convert_with_boxes_on_the_tags(tmp_path):
    """Real-photo conversion of the demo data: every box sits on a ring, EXIF-rotated photo too."""
    out = tmp_path / "real"
    done = run("--mode=convert", "--input_dirs=spatule_synth/demo_data/labelled,"
               "spatule_synth/demo_data/backgrounds", f"--output_dir={out}", "--unlabelled=negative")
    assert done.returncode == 0, done.stderr
    assert "convert: 12 examples written from 12 images found (6 negatives without objects)" in done.stdout
    assert "objects of class 'tag': 10" in done.stdout
    import tensorflow as tf
    from spatule_synth.formats.tfrecord import read_records
    records = list(read_records([str(out / "annotations" / "real.record")]))
    tagged = [r for r in records if r.objects]
    assert len(tagged) == 6 and {(r.width, r.height) for r in records} == {(1600, 1200)}
    for record in tagged:  # every box sits on a pale ring, brighter than the scene beside it
        darkest = tf.io.decode_image(record.encoded, channels=3).numpy().min(axis=-1)
        for obj in record.objects:
            x0, y0, x1, y1 = (int(v) for v in obj.box(record.width, record.height).voc_ints())
            shift = 2 * (x1 - x0)
            inside = np.percentile(darkest[y0:y1, x0:x1], 90)
            beside = max(np.percentile(darkest[y0:y1, x0 - shift:x1 - shift], 90),
                         np.percentile(darkest[y0:y1, x0 + shift:x1 + shift], 90))
            assert inside > 140 and inside > 1.4 * beside, (record.filename, x0, y0, inside, beside)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_worker_stops_the_run_with_a_message_and_no_manifest(tmp_path):
    """A worker killed by the system (here: SIGKILL) must not hang the run or leave a dataset that
    looks finished."""
    out = tmp_path / "demo"
    process = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "generate.py"), "--flagfile=configs/demo.flags",
         f"--output_dir={out}", "--num_images=100000", "--num_workers=2"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        train = out / "images" / "train"
        deadline = time.monotonic() + 120
        while not (train.is_dir() and len(os.listdir(train)) > 20):
            assert process.poll() is None and time.monotonic() < deadline, "no images were written"
            time.sleep(0.1)
        workers = [pid for pid in _children(process.pid)
                   if "spawn_main" in open(f"/proc/{pid}/cmdline").read().replace("\0", " ")]
        assert workers, "no worker process found"
        os.kill(workers[0], 9)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "error: a worker process died abruptly (killed, or out of memory?); the images finished so "
        "far are kept: rerun with --resume, and fewer --num_workers or a smaller --cache_mb")
    assert not (out / "manifest.json").exists()


@pytest.mark.slow
def test_generate_writes_a_pipeline_config_and_refuses_bad_ones_before_running(tmp_path):
    out, workspace = tmp_path / "demo", tmp_path / "ws"
    done = run("--flagfile=configs/demo.flags", f"--output_dir={out}", "--num_images=20",
               "--pipeline_config=ssd_mobilenet_v2_fpnlite_320x320", f"--workspace={workspace}",
               "--batch_size=4", "--num_steps=500")
    assert done.returncode == 0, done.stderr
    config = workspace / "models" / "demo" / "pipeline.config"  # named after the run's folder
    assert f"pipeline.config: {config}" in done.stdout
    text = config.read_text()
    assert "num_classes: 1" in text and "batch_size: 4" in text and "num_steps: 500" in text
    assert f'input_path: "{out}/annotations/eval.record"' in text
    for flags, message in (
            (["--pipeline_config=yolo"], "--pipeline_config must be one of "
             "ssd_mobilenet_v2_fpnlite_320x320, ssd_resnet50_v1_fpn_640x640, got 'yolo'"),
            (["--pipeline_config=ssd_resnet50_v1_fpn_640x640", f"--fine_tune_checkpoint={tmp_path}/nothing/ckpt-0"],
             f"fine-tune checkpoint {tmp_path}/nothing/ckpt-0: no {tmp_path}/nothing/ckpt-0.index; pass "
             "the prefix of a TF2 checkpoint, e.g. pre-trained-models/MODEL/checkpoint/ckpt-0 of an "
             "untarred model zoo download"),
            (["--pipeline_config=ssd_resnet50_v1_fpn_640x640", "--model_name=tags/v2"],
             "--model_name must be a plain folder name (no '/'), got 'tags/v2'"),
            (["--pipeline_config=ssd_resnet50_v1_fpn_640x640", "--model_name=.."],
             "--model_name must be a plain folder name (no '/'), got '..'")):
        assert_usage_error(run("--flagfile=configs/demo.flags", f"--output_dir={tmp_path / 'never'}",
                               f"--workspace={workspace}", *flags), message)
        assert not (tmp_path / "never").exists()
    assert os.listdir(workspace / "models") == ["demo"]


@pytest.mark.slow
def test_model_name_keeps_the_config_of_each_run(tmp_path):
    """Two runs with one template write two models/NAME/ folders (by default each run's folder
    name), and convert --split_from=RUN evaluates in models/NAME_real_eval/."""
    workspace = tmp_path / "ws"
    template = "--pipeline_config=ssd_mobilenet_v2_fpnlite_320x320"
    for out, named in ((tmp_path / "first", []), (tmp_path / "second", ["--model_name=tags_v2"])):
        done = run("--flagfile=configs/demo.flags", f"--output_dir={out}", "--num_images=20",
                   "--noreport", template, f"--workspace={workspace}", *named)
        assert done.returncode == 0, done.stderr
    models = workspace / "models"
    assert sorted(os.listdir(models)) == ["first", "tags_v2"]
    for name, out in (("first", "first"), ("tags_v2", "second")):
        assert f'input_path: "{tmp_path / out}/annotations/train.record"' in \
            (models / name / "pipeline.config").read_text()
    done = run("--mode=convert", "--input_dirs=spatule_synth/demo_data/labelled",
               f"--output_dir={tmp_path / 'real'}", f"--split_from={tmp_path / 'second'}", template,
               f"--workspace={workspace}", "--model_name=tags_v2")
    assert done.returncode == 0, done.stderr
    evaluating = models / "tags_v2_real_eval" / "pipeline.config"
    assert f"pipeline.config evaluating {tmp_path / 'second'}'s model on these photos: {evaluating} " \
        f"(model_main_tf2.py --pipeline_config_path={evaluating} --model_dir={evaluating.parent} " \
        f"--checkpoint_dir=<the trained model's folder, e.g. {models / 'tags_v2'}>)" in done.stdout
    text = evaluating.read_text()
    assert f'input_path: "{tmp_path}/second/annotations/train.record"' in text
    assert f'input_path: "{tmp_path}/real/annotations/real.record"' in text
    done = run("--mode=convert", "--input_dirs=spatule_synth/demo_data/labelled",
               f"--output_dir={tmp_path / 'real_default'}", f"--split_from={tmp_path / 'first'}",
               template, f"--workspace={workspace}")
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(models)) == ["first", "first_real_eval", "tags_v2", "tags_v2_real_eval"]


@pytest.mark.slow
def test_a_run_without_eval_images_ends_with_one_error_line_instead_of_a_pipeline_config(tmp_path):
    out = tmp_path / "out"
    done = run("--flagfile=configs/demo.flags", f"--output_dir={out}", "--num_images=10",
               "--eval_fraction=0", "--noreport", "--pipeline_config=ssd_mobilenet_v2_fpnlite_320x320",
               f"--workspace={tmp_path / 'ws'}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: pipeline.config not written: the eval split of {out} has no images (generated with "
        "--eval_fraction=0?); generate with --eval_fraction > 0")
    assert f"manifest: {out}/manifest.json" in done.stdout  # the run itself finished
    assert not (tmp_path / "ws").exists()
