"""Outputs on a real object store: S3 as moto's server speaks it (in a thread of the test process,
reached over HTTP), through s3fs, as a cluster's workers reach a bucket.

Unlike ``memory://`` (`test_storage`), every process sees this store: the image workers (and a
separate ``generate.py`` process) write their objects into it themselves, with S3's semantics (no
rename, no folders, an object appears whole or not at all), and a ``kill -9`` leaves the store as
it is, so a real kill and ``--resume`` can be tried.
"""

import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid

import fsspec
import fsspec.config
import pytest
from moto.server import ThreadedMotoServer

from spatule_synth.core.config import GenerateConfig
from spatule_synth.generate.run import run_generate
from test_generate import config_for
from test_scale import REPO, tree
from test_storage import same_manifest, without_manifest


@pytest.fixture(scope="module")
def s3_endpoint():
    """The endpoint of a moto S3 server, with the environment every process (the workers, a
    ``generate.py`` subprocess) needs to reach it through s3fs."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    settings = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "FSSPEC_S3_ENDPOINT_URL": endpoint}
    saved_environment = {name: os.environ.get(name) for name in settings}
    saved_config = fsspec.config.conf.get("s3")
    os.environ.update(settings)  # spawned workers read it when they import fsspec
    fsspec.config.conf["s3"] = {"endpoint_url": endpoint}  # this process read it long ago
    yield endpoint
    for name, value in saved_environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if saved_config is None:
        fsspec.config.conf.pop("s3", None)
    else:
        fsspec.config.conf["s3"] = saved_config
    server.stop()


@pytest.fixture
def bucket(s3_endpoint):
    """A new, empty bucket: its ``s3://`` URL."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    store().mkdir(name)
    return f"s3://{name}"


def store():
    """A client of the store that caches no listing (what another machine would see)."""
    return fsspec.filesystem("s3", skip_instance_cache=True, use_listings_cache=False)


def s3_tree(url):
    """`test_scale.tree` of an ``s3://`` folder."""
    fs, root = store(), url[len("s3://"):]
    return {path[len(root) + 1:]: hashlib.sha256(fs.cat_file(path)).hexdigest() for path in fs.find(root)}


def to_s3(local_root, url):
    """Copy the files under ``local_root`` to ``url``."""
    fs = store()
    for folder, _, names in os.walk(local_root):
        for name in names:
            path = os.path.join(folder, name)
            fs.put_file(path, f"{url[len('s3://'):]}/{os.path.relpath(path, local_root)}")
    return url


def test_workers_write_their_images_into_the_bucket_and_the_bytes_are_a_disk_runs(inputs, bucket, tmp_path):
    out = tmp_path / "out"
    options = dict(num_workers=2, instance_masks=True, yolo_output=True, report=True, num_shards=2)
    run_generate(config_for(inputs, out, **options))
    photos = to_s3(str(inputs), f"{bucket}/photos")
    url = f"{bucket}/runs/out"
    run_generate(GenerateConfig.from_settings(**{
        **config_for(inputs, out, **options).settings(), "input_dirs": (f"{photos}/labelled",),
        "background_dirs": (f"{photos}/backgrounds",), "output_dir": url}))
    written = s3_tree(url)
    assert without_manifest(written) == without_manifest(tree(out))
    assert not any(name.startswith(".progress") for name in written)
    assert same_manifest(url, out, photos, inputs, store().cat_file(f"{url[5:]}/manifest.json").decode())


@pytest.mark.slow
def test_a_run_killed_on_the_bucket_resumes_in_another_process_to_the_same_bytes(bucket, tmp_path):
    url = f"{bucket}/runs/demo"
    command = [sys.executable, os.path.join(REPO, "generate.py"), "--flagfile=configs/demo.flags",
               "--nooverwrite", "--noreport", "--num_images=480", "--num_shards=2", "--num_workers=2",
               "--instance_masks"]
    reference = tmp_path / "reference"
    subprocess.run(command + [f"--output_dir={reference}"], cwd=REPO, check=True, capture_output=True)

    scratch = tmp_path / "tmp"  # the killed process cannot remove its local scratch shards
    scratch.mkdir()
    process = subprocess.Popen(command + [f"--output_dir={url}"], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "TMPDIR": str(scratch)})
    parts = f"{url[len('s3://'):]}/.progress/parts/train"
    deadline = time.monotonic() + 180
    while len(store().find(parts)) < 3:
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before the kill"
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(1)  # the workers die with their parent (prctl): let them go
    interrupted = s3_tree(url)
    assert "manifest.json" not in interrupted, "the run finished before it was killed: use more images"
    assert ".progress/lock" in interrupted  # the lease of a dead process: the resume takes it over

    refused = subprocess.run(command + [f"--output_dir={url}"], cwd=REPO, capture_output=True, text=True)
    assert refused.returncode == 1 and f"error: output directory {url} holds an unfinished run" in refused.stderr

    resumed = subprocess.run(command + [f"--output_dir={url}", "--resume"], cwd=REPO, capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert without_manifest(s3_tree(url)) == without_manifest(tree(reference))
    manifest = store().cat_file(f"{url[5:]}/manifest.json").decode()
    assert same_manifest(url, reference, "no input URL", "", manifest)



@pytest.mark.slow
def test_beam_workers_write_into_the_bucket_the_bytes_of_a_local_run(inputs, bucket, tmp_path):
    out = tmp_path / "out"
    run_generate(config_for(inputs, out, num_workers=2, instance_masks=True))
    url = f"{bucket}/runs/beam"
    run_generate(GenerateConfig.from_settings(**{
        **config_for(inputs, out, instance_masks=True).settings(), "output_dir": url, "runner": "beam",
        "beam_pipeline_options": "--runner=DirectRunner --direct_running_mode=multi_processing "
                                 "--direct_num_workers=2"}))
    assert without_manifest(s3_tree(url)) == without_manifest(tree(out))
    assert same_manifest(url, out, "no input URL", "", store().cat_file(f"{url[5:]}/manifest.json").decode())


def test_overwrite_of_a_run_at_a_bucket_root_deletes_its_files_never_the_bucket(inputs, bucket, s3_endpoint,
                                                                                 tmp_path):
    import boto3
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    name = bucket[len("s3://"):]
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    out = tmp_path / "out"
    run_generate(config_for(inputs, out, num_images=12))
    run_generate(config_for(inputs, bucket, num_images=40))
    run_generate(config_for(inputs, bucket, num_images=12, overwrite=True))
    assert without_manifest(s3_tree(bucket)) == without_manifest(tree(out))  # nothing of the 40 left
    assert client.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"  # the same bucket
