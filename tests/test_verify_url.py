"""verify on an output directory behind a URL (memory://): the report of its local copy, path
prefix apart, whether the run is intact or broken the same way in both places."""

import io
import os
import re
import shutil

import fsspec
import numpy as np
import pytest
from PIL import Image

from spatule_synth.generate.run import run_generate
from spatule_synth.modes.verify import verify_output
from test_generate import config_for
from test_storage import to_memory


@pytest.fixture
def local_run(inputs):
    """A finished run on local disk with every kind of output verify checks."""
    out = inputs / "out"
    run_generate(config_for(inputs, out, num_images=12, instance_masks=True, num_shards=2,
                            scene_outputs=("background", "mask", "layers")))
    return out


@pytest.fixture
def memory_url(tmp_path):
    """A memory:// folder of this test alone, removed afterwards."""
    url = f"memory://verify-{os.getpid()}-{tmp_path.name}"
    yield url
    memory = fsspec.filesystem("memory")
    if memory.exists(url):
        memory.rm(url, recursive=True)


def summary(report, prefix):
    """Per check: passes, and failures / warnings / notes with ``prefix`` (the run's folder) cut."""
    def cut(messages):
        return [message.replace(prefix, "OUT") for message in messages]
    return {name: (check.passed, cut(check.failures), cut(check.warnings), cut(check.notes))
            for name, check in report.checks.items()}


def both(local_run, url):
    """The summaries of ``verify`` on the local run and on its copy at ``url``."""
    return (summary(verify_output(str(local_run)), str(local_run)),
            summary(verify_output(url), url))


def test_url_run_reports_as_its_local_copy(local_run, memory_url):
    url = to_memory(str(local_run), memory_url)
    local_report, url_report = verify_output(str(local_run)), verify_output(url)
    assert not url_report.failed, url_report.table()
    assert summary(url_report, url) == summary(local_report, str(local_run))
    assert url_report.checks["images"].passed == 12 and url_report.checks["masks"].passed == 12
    assert url_report.checks["scene"].passed == 12
    assert url_report.table().replace(url, "OUT") == local_report.table().replace(str(local_run), "OUT")


def other_jpeg(out):
    """The bytes of another image of the run, for train_000001.jpg."""
    return (out / "images" / "train" / "train_000002.jpg").read_bytes()


def moved_box(out):
    """train_000001.xml with its first box's xmin moved by 3 pixels."""
    text = (out / "images" / "train" / "train_000001.xml").read_text()
    return re.sub(r"<xmin>(\d+)</xmin>", lambda m: f"<xmin>{int(m.group(1)) + 3}</xmin>", text, count=1).encode()


def grey_mask(out):
    """masks/train/train_000001.png with one pixel set to an instance that does not exist."""
    plane = np.array(Image.open(out / "masks" / "train" / "train_000001.png"))
    plane[0, 0] = 200
    buffer = io.BytesIO()
    Image.fromarray(plane).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("relative, content, failed", [
    ("images/train/train_000001.jpg", other_jpeg, "images"),
    ("images/train/train_000001.xml", moved_box, "xml"),
    ("masks/train/train_000001.png", grey_mask, "masks"),
    ("masks/train/train_000001.png", lambda out: b"not a png", "masks"),
    ("mask/train/train_000001.png", lambda out: b"not a png", "scene"),
    ("annotations/train.record-00001-of-00002", None, "records"),
    ("images/eval/eval_000001.jpg", None, "images"),
    ("manifest.json", None, "manifest"),
])
def test_tampered_url_run_fails_as_its_local_copy(local_run, memory_url, relative, content, failed):
    """The same file changed (``content(out)``: its new bytes) or removed (None) in the URL copy and
    on disk gives the same report."""
    new = content(local_run) if content else None
    to_memory(str(local_run), memory_url)
    memory = fsspec.filesystem("memory")
    if new is None:
        memory.rm_file(f"{memory_url}/{relative}")
        os.unlink(local_run / relative)
    else:
        memory.pipe_file(f"{memory_url}/{relative}", new)
        (local_run / relative).write_bytes(new)
    on_disk, at_url = both(local_run, memory_url)
    assert on_disk[failed][1], on_disk
    assert at_url == on_disk


def test_stray_image_at_url_is_named_as_on_disk(local_run, memory_url):
    shutil.copyfile(local_run / "images" / "eval" / "eval_000001.jpg", local_run / "images" / "eval" / "extra.jpg")
    to_memory(str(local_run), memory_url)
    on_disk, at_url = both(local_run, memory_url)
    assert on_disk["images"][1] == ["images/eval/extra.jpg: on disk but in no record"]
    assert at_url == on_disk


def test_damaged_shard_at_url_keeps_the_examples_before_the_damage(local_run, memory_url):
    """A shard cut short reads (TensorFlow locally, `iter_record_file` from a URL) up to its damage:
    the same counts, and a failure naming the shard."""
    shard = local_run / "annotations" / "eval.record-00000-of-00002"
    shard.write_bytes(shard.read_bytes()[:-10])
    to_memory(str(local_run), memory_url)
    local_report, url_report = verify_output(str(local_run)), verify_output(memory_url)
    assert ({name: check.passed for name, check in url_report.checks.items()}
            == {name: check.passed for name, check in local_report.checks.items()})
    for report in (local_report, url_report):
        [message] = report.checks["records"].failures
        assert message.startswith("annotations/eval.record-00000-of-00002: unreadable TFRecord file: ")
    assert url_report.checks["records"].failures == [  # the shard's second and last example is cut
        "annotations/eval.record-00000-of-00002: unreadable TFRecord file: entry #1: damaged data (cut short?)"]
