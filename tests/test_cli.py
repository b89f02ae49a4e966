"""The command line as a user runs it: exit status, summary and one-line errors (no tracebacks)."""

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


def test_missing_required_flag_is_a_usage_error():
    done = run("--mode=convert", "--output_dir=/tmp/never")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "--input_dirs is required for --mode=convert" in done.stderr


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


def test_generate_writes_a_pipeline_config_and_refuses_bad_ones_before_running(tmp_path):
    out, workspace = tmp_path / "demo", tmp_path / "ws"
    done = run("--flagfile=configs/demo.flags", f"--output_dir={out}", "--num_images=20",
               "--pipeline_config=ssd_mobilenet_v2_fpnlite_320x320", f"--workspace={workspace}",
               "--batch_size=4", "--num_steps=500")
    assert done.returncode == 0, done.stderr
    config = workspace / "models" / "ssd_mobilenet_v2_fpnlite_320x320" / "pipeline.config"
    assert f"pipeline.config: {config}" in done.stdout
    text = config.read_text()
    assert "num_classes: 1" in text and "batch_size: 4" in text and "num_steps: 500" in text
    assert f'input_path: "{out}/annotations/eval.record"' in text
    for flags, message in ((["--pipeline_config=yolo"], "--pipeline_config must be one of"),
                           (["--pipeline_config=ssd_resnet50_v1_fpn_640x640",
                             f"--fine_tune_checkpoint={tmp_path}/nothing/ckpt-0"], "no ")):
        done = run("--flagfile=configs/demo.flags", f"--output_dir={tmp_path / 'never'}", *flags)
        assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / "never").exists()
