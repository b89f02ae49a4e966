"""Scale: crash-safe resumable runs, write failures, the Beam runner, streamed outputs."""

import contextlib
import errno
import hashlib
import os
import subprocess
import sys
import time

import pytest

from spatule_synth.generate import sample_files
from spatule_synth.formats.manifest import JsonLines, manifest_json
from spatule_synth.core.output_dir import OutputDirError
from spatule_synth.generate.progress import Progress
from spatule_synth.generate.run import OutputWriteError, run_generate
from conftest import background_photos, tag_photos
from test_generate import config_for

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tree(root):
    """Every file under ``root`` (hidden ones too) with the SHA-256 of its bytes."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return files


def children(pid):
    """The ids of the processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@contextlib.contextmanager
def disk_full_after(chunks, monkeypatch):
    """Within the block, the chunk writer fails with "No space left on device" once ``chunks``
    chunks are written (an interrupted run to resume); afterwards it writes again."""
    from spatule_synth.generate.execute import ChunkWriter
    original, written = ChunkWriter.__call__, []

    def full(self, chunk):
        if len(written) == chunks:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(chunk)
        return original(self, chunk)

    monkeypatch.setattr(ChunkWriter, "__call__", full)
    try:
        yield
    finally:
        monkeypatch.setattr(ChunkWriter, "__call__", original)


def reference_run(config_maker, out, **options):
    """An uninterrupted run written at ``out`` and moved aside (outputs name their directory, so
    runs compared byte for byte must write to the same path); the moved copy's file tree."""
    run_generate(config_maker(out, **options))
    reference = f"{out}.reference"
    os.rename(out, reference)
    return tree(reference)


def killed_before_its_manifest(inputs, out, monkeypatch, manifest=False):
    """The state a run leaves when killed just before its manifest (or, with ``manifest``, just
    after it): every chunk finished, the progress folder still there."""
    monkeypatch.setattr("spatule_synth.generate.run.Progress.remove", lambda self: None)
    run_generate(config_for(inputs, out))
    if not manifest:
        os.unlink(out / "manifest.json")
    monkeypatch.undo()


@pytest.mark.slow
def test_killed_run_resumes_to_the_bytes_of_an_uninterrupted_run(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, os.path.join(REPO, "generate.py"), "--flagfile=configs/demo.flags",
               f"--output_dir={out}", "--nooverwrite", "--num_images=600", "--num_shards=3",
               "--num_workers=2", "--instance_masks", "--yolo_output"]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True)
    os.rename(out, tmp_path / "reference")
    expected = tree(tmp_path / "reference")

    # kill -9 the parent process once a few chunks are finished: its workers must die with it
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = out / ".progress" / "parts" / "train"
    deadline = time.monotonic() + 120
    while not (parts.is_dir() and len(os.listdir(parts)) >= 4):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before the kill"
        time.sleep(0.02)
    workers = children(process.pid)
    assert len(workers) >= 2
    process.kill()
    process.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "workers outlived their parent (orphans would go on writing)"
        time.sleep(0.05)
    assert not (out / "manifest.json").exists(), "the run finished before it was killed: use more images"
    finished = len(os.listdir(parts))
    assert 4 <= finished < 480 // 16

    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 1 and again.stderr.strip().splitlines()[-1].startswith(
        f"error: output directory {out} holds an unfinished run (train ")
    assert again.stderr.strip().endswith("images written) and no manifest: it was interrupted. Pass "
                                         "--resume (with the same flags) to finish it, or --overwrite "
                                         "to start again")

    resumed = subprocess.run(command + ["--resume"], cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert tree(out) == expected  # no .progress, no .tmp-* files: the same files, the same bytes


def test_resume_rewrites_only_the_unfinished_chunks(inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    expected = reference_run(lambda o, **k: config_for(inputs, o, **k), out, num_images=60)
    written = []
    original = sample_files.write_sample

    def write_and_stop(sample, *rest):
        if len(written) == 25:
            raise KeyboardInterrupt  # the user pressed Ctrl-C in the middle of chunk 2
        written.append(sample.spec.name)
        return original(sample, *rest)

    monkeypatch.setattr("spatule_synth.generate.execute.write_sample", write_and_stop)
    with pytest.raises(KeyboardInterrupt):
        run_generate(config_for(inputs, out, num_images=60))
    block = len(os.listdir(out / ".progress" / "parts" / "train"))
    assert block >= 1 and not (out / "manifest.json").exists()
    written.clear()
    monkeypatch.setattr("spatule_synth.generate.execute.write_sample", original)
    rewritten = []
    monkeypatch.setattr("spatule_synth.generate.execute.write_sample",
                        lambda sample, *rest: rewritten.append(sample.spec.name) or original(sample, *rest))
    run_generate(config_for(inputs, out, num_images=60, resume=True))
    assert tree(out) == expected
    assert "train_000000" not in rewritten and len(rewritten) < 60  # finished chunks were kept


@pytest.mark.parametrize("where", ["worker", "shard"])
def test_a_full_disk_stops_the_run_with_a_message_and_no_manifest(inputs, tmp_path, monkeypatch, where):
    out = tmp_path / "out"
    expected = reference_run(lambda o, **k: config_for(inputs, o, **k), out, instance_masks=True)
    calls = []

    def no_space(*args, **kwargs):
        calls.append(args)
        if len(calls) > 30:
            raise OSError(errno.ENOSPC, "No space left on device", str(out / "somewhere"))
        return original(*args, **kwargs)

    if where == "worker":
        original = sample_files.atomic_write_bytes
        monkeypatch.setattr("spatule_synth.generate.sample_files.atomic_write_bytes", no_space)
    else:
        from spatule_synth.formats.tfrecord import ShardedRecordWriter
        original = ShardedRecordWriter.write_serialized
        monkeypatch.setattr(ShardedRecordWriter, "write_serialized", no_space)
    with pytest.raises(OutputWriteError) as stopped:
        run_generate(config_for(inputs, out, instance_masks=True))
    assert str(stopped.value) == (
        f"cannot write {out}/somewhere: [Errno 28] No space left on device. The run "
        f"stopped unfinished, so {out} has no manifest.json; the images finished so far are kept: "
        "free some space (or fix the permissions) and rerun the same command with --resume")
    assert not (out / "manifest.json").exists()
    assert not [path for path in tree(out) if path.startswith("annotations/") and ".tmp-" not in path
                and path.endswith(".record")], "no shard may appear under its final name"
    monkeypatch.undo()
    run_generate(config_for(inputs, out, instance_masks=True, resume=True))
    assert tree(out) == expected


def test_write_error_message_reaches_the_command_line(tmp_path):
    (tmp_path / "file").write_text("a file where a folder must go")
    out = tmp_path / "file" / "out"
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "generate.py"), "--flagfile=configs/demo.flags",
         f"--output_dir={out}", "--nooverwrite", "--num_images=10"],
        cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: cannot write {out}: [Errno 20] Not a directory. The run stopped "
        f"unfinished, so {out} has no manifest.json; fix the cause and rerun")


def test_resume_refuses_other_settings_and_a_locked_directory(inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    killed_before_its_manifest(inputs, out, monkeypatch)
    with pytest.raises(OutputDirError) as refused:
        run_generate(config_for(inputs, out, resume=True, seed=6))
    assert str(refused.value) == (
        f"cannot resume {out}: it was started with other settings, software or inputs (--seed: 2 "
        "-> 6); a "
        "resumed run would not match an uninterrupted one. Rerun with the original flags, or pass "
        "--overwrite instead of --resume to start again")
    with Progress(str(out)).locked():
        for options in ({"resume": True}, {"overwrite": True}):  # never take over a live run
            with pytest.raises(OutputDirError) as locked:
                run_generate(config_for(inputs, out, **options))
            assert str(locked.value) == (f"output directory {out} is being written by another "
                                         "spatule_synth run; wait for it to end")
    result = run_generate(config_for(inputs, out, resume=True))
    assert (out / "manifest.json").exists() and not (out / ".progress").exists()
    assert result.counts["train"].images == 30
    again = run_generate(config_for(inputs, out, resume=True))
    assert again.already_complete and again.summary() == (
        f"nothing to resume: {out} is already complete with these settings (manifest: "
        f"{out}/manifest.json)")


def test_resume_notices_changed_inputs(inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    killed_before_its_manifest(inputs, out, monkeypatch)
    tag_photos(inputs / "labelled", 6, seed=10)  # same names, other pixels
    with pytest.raises(OutputDirError, match=r"\(the input files \(labelled photos, annotations, "
                                             r"backgrounds\) changed\)"):
        run_generate(config_for(inputs, out, resume=True))


@pytest.mark.slow
def test_beam_direct_runner_writes_the_bytes_of_the_local_runner(inputs, tmp_path):
    out = tmp_path / "out"
    expected = reference_run(lambda o, **k: config_for(inputs, o, **k), out, instance_masks=True,
                             num_shards=2, yolo_output=True, num_workers=2)
    result = run_generate(config_for(
        inputs, out, instance_masks=True, num_shards=2, yolo_output=True, runner="beam",
        beam_pipeline_options="--runner=DirectRunner --direct_running_mode=multi_processing "
                              "--direct_num_workers=2"))
    assert result.counts["train"].images == 30 and result.counts["eval"].images == 10
    assert tree(out) == expected


def test_the_direct_runner_runs_on_beams_python_runner_never_prism(inputs, tmp_path, monkeypatch):
    """Beam's DirectRunner would download the Go Prism runner from GitHub first and run every
    worker in the launching process, ignoring --direct_running_mode."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability import prism_runner
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from spatule_synth.generate.beam_runner import runner_for
    for options in ([], ["--runner=DirectRunner"], ["--runner=direct", "--direct_num_workers=2"]):
        assert isinstance(runner_for(PipelineOptions(options)), fn_runner.FnApiRunner)
    assert runner_for(PipelineOptions(["--runner=DataflowRunner"])) == "DataflowRunner"
    assert runner_for(PipelineOptions(["--runner=PrismRunner"])) == "PrismRunner"

    prism_runs = []
    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline",
                        lambda self, *args: prism_runs.append(args) or 1 / 0)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    os.makedirs(tmp_path / "tmp")
    out = tmp_path / "out"
    expected = reference_run(lambda o, **k: config_for(inputs, o, **k), out)
    run_generate(config_for(inputs, out, runner="beam", beam_pipeline_options="--runner=DirectRunner"))
    assert prism_runs == [] and os.listdir(tmp_path / "tmp") == []
    assert tree(out) == expected


def test_the_local_runner_never_loads_beam():
    code = ("import sys; import spatule_synth.generate.run, spatule_synth.cli; "
            "print('apache_beam' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=REPO)
    assert output.stdout.strip() == "False"


def test_streamed_manifest_lists_equal_in_memory_ones(tmp_path):
    entries = [{"name": "train_000000", "objects": []}, {"name": "train_000001", "objects": [{"a": 1}]}]
    for items in (entries, []):
        lines = JsonLines(open(tmp_path / f"lines{len(items)}", "w+b"))
        for item in items:
            lines.append(item)
        document = {"mode": "generate", "images": {"train": items, "eval": []}}
        streamed = {"mode": "generate", "images": {"train": lines,
                                                   "eval": JsonLines(open(tmp_path / "empty", "w+b"))}}
        assert manifest_json(streamed) == manifest_json(document)
        assert list(lines) == items


def test_a_failed_beam_pipeline_keeps_its_chunks_for_resume(inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    expected = reference_run(lambda o, **k: config_for(inputs, o, **k), out)
    from spatule_synth.generate import execute
    original = execute.ChunkWriter.__call__

    def full_after_the_first_chunks(self, chunk):
        if chunk.start >= 16:
            raise OSError(errno.ENOSPC, "No space left on device", "/disk/train_000016.jpg")
        return original(self, chunk)

    monkeypatch.setattr(execute.ChunkWriter, "__call__", full_after_the_first_chunks)
    with pytest.raises(execute.RunnerError) as failed:  # the in-memory DirectRunner: this process
        run_generate(config_for(inputs, out, runner="beam", beam_pipeline_options="--runner=DirectRunner"))
    assert str(failed.value) == (
        "the Beam pipeline failed: OSError: [Errno 28] No space left on device: "
        "'/disk/train_000016.jpg' [while running 'write images']. The chunks it finished are kept: "
        "fix the cause and rerun with --resume")
    assert not (out / "manifest.json").exists()
    monkeypatch.undo()
    run_generate(config_for(inputs, out, resume=True))  # finished by the local runner
    assert tree(out) == expected


def test_the_background_cache_stays_within_its_budget_least_recently_used_first(tmp_path):
    from spatule_synth.generate.background_cache import BackgroundCache
    from spatule_synth.generate.sources import Background
    background_photos(tmp_path, 4, size=(200, 150))
    photos = [Background(str(tmp_path / f"BG{i:02d}.jpg"), 200, 150) for i in range(4)]
    one_photo = 200 * 150 * 3
    cache = BackgroundCache(canvas_size=96, budget_bytes=2 * one_photo)
    for photo in photos:  # 4 photos through a budget of 2
        cache.window(photo, 0, 0)
        assert sum(p.nbytes for p in cache._pixels.values()) <= 2 * one_photo
    assert cache.decodes == 4 and list(cache._pixels) == [photos[2].path, photos[3].path]
    cache.window(photos[2], 10, 10)  # still held: no decode, and now the most recent
    assert cache.decodes == 4
    cache.window(photos[0], 0, 0)  # evicted earlier: decoded again, and photo 3 goes
    assert cache.decodes == 5 and list(cache._pixels) == [photos[2].path, photos[0].path]


def test_a_finished_run_deletes_the_output_a_killed_overwrite_run_moved_aside(inputs, tmp_path):
    out = tmp_path / "out"
    leftovers = {name: marker for name, marker in [("out.replaced-4242", True), ("out.replaced-17", False),
                                                    ("out.replaced-x1", True), ("outer.replaced-5", True)]}
    for name, marker in leftovers.items():
        os.makedirs(tmp_path / name)
        if marker:
            (tmp_path / name / ".spatule_synth_output").write_text("")
    run_generate(config_for(inputs, out, num_images=8))
    assert not (tmp_path / "out.replaced-4242").exists()  # ours, moved aside by a killed run
    assert all((tmp_path / name).exists() for name in ("out.replaced-17", "out.replaced-x1",
                                                       "outer.replaced-5"))  # not ours to delete


def test_a_damaged_part_file_is_deleted_reported_and_rewritten(inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    expected = reference_run(lambda o, **k: config_for(inputs, o, **k), out)
    killed_before_its_manifest(inputs, out, monkeypatch)
    part = out / ".progress" / "parts" / "train" / "000000000.pickle"
    part.write_bytes(part.read_bytes()[:10])  # cut short: parts are not fsync-ed
    with pytest.raises(OutputDirError) as damaged:
        run_generate(config_for(inputs, out, resume=True))
    assert str(damaged.value).startswith(f"{part}: damaged (")
    assert str(damaged.value).endswith("; cut short by a power cut?); it has been deleted: rerun "
                                       "with --resume to write that chunk again")
    assert not part.exists() and not (out / "manifest.json").exists()
    run_generate(config_for(inputs, out, resume=True))
    assert tree(out) == expected


def test_resume_refuses_other_software_versions(inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    killed_before_its_manifest(inputs, out, monkeypatch)
    from spatule_synth.generate import progress
    upgraded = dict(progress.package_versions(), **{"opencv-python-headless": "9.9.9"})
    monkeypatch.setattr(progress, "package_versions", lambda: upgraded)
    with pytest.raises(OutputDirError, match=r"\(opencv-python-headless: [0-9.]+ -> 9\.9\.9\)"):
        run_generate(config_for(inputs, out, resume=True))


def test_a_run_killed_after_its_manifest_is_tidied_by_resume(inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    expected = reference_run(lambda o, **k: config_for(inputs, o, **k), out)
    killed_before_its_manifest(inputs, out, monkeypatch, manifest=True)
    assert (out / ".progress").exists() and (out / "manifest.json").exists()
    assert run_generate(config_for(inputs, out, resume=True)).already_complete
    assert tree(out) == expected


def test_manifest_head_is_the_manifest_without_its_image_lists(inputs, tmp_path):
    from spatule_synth.formats.manifest import read_manifest, read_manifest_head
    run_generate(config_for(inputs, tmp_path / "out", num_images=20))
    whole = read_manifest(str(tmp_path / "out"))
    del whole["images"]
    assert read_manifest_head(str(tmp_path / "out")) == whole


def test_an_unreadable_run_description_is_reported_not_a_traceback(inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    killed_before_its_manifest(inputs, out, monkeypatch)
    run_file = out / ".progress" / "run.json"
    run_file.write_text("{\"config\": ")  # cut short
    with pytest.raises(OutputDirError) as refused:
        run_generate(config_for(inputs, out))
    assert str(refused.value) == (f"output directory {out} holds an unfinished run and no manifest: "
                                  "it was interrupted. Pass --resume (with the same flags) to finish "
                                  "it, or --overwrite to start again")
    with pytest.raises(OutputDirError) as unreadable:
        run_generate(config_for(inputs, out, resume=True))
    assert str(unreadable.value).startswith(f"{run_file}: unreadable (")
    assert str(unreadable.value).endswith("), so the interrupted run cannot be resumed: pass "
                                          "--overwrite instead of --resume to start again")
    run_generate(config_for(inputs, out, overwrite=True))
    assert (out / "manifest.json").exists()
