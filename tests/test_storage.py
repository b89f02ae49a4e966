"""core/storage: the same answers for a local folder and for the same files behind a URL."""

import collections
import hashlib
import json
import os
import socket
import subprocess

import fsspec
import fsspec.implementations.memory
import pytest

from spatule_synth.core import storage
from spatule_synth.core.config import DEFAULT_LABEL_MAP, ConvertConfig, GenerateConfig
from spatule_synth.core.output_dir import OutputDirError
from spatule_synth.generate.progress import Progress, this_process
from spatule_synth.formats.labelimg import InputDirError
from spatule_synth.generate.run import run_generate
from spatule_synth.modes.convert import run_convert
from test_generate import config_for
from test_scale import reference_run, tree


@pytest.fixture
def both(tmp_path):
    """One small tree, on disk and in fsspec's memory file system: (local root, URL root)."""
    url = f"memory://storage-test-{os.getpid()}-{tmp_path.name}"
    memory = fsspec.filesystem("memory")
    for relative, data in {"a.jpg": b"A", "b.xml": b"<x/>", "sub/c.png": b"C", "sub/deeper/d.txt": b"D"}.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(data)
        memory.pipe(f"{url}/{relative}", data)
    yield str(tmp_path), url
    memory.rm(url, recursive=True)


def test_a_url_folder_lists_and_reads_like_a_local_one(both):
    root, url = both
    for base in (root, url):
        files, folders = storage.list_folder(base)
        assert [os.path.basename(p) for p in files] == ["a.jpg", "b.xml"]
        assert [os.path.basename(p) for p in folders] == ["sub"]
        assert storage.read_bytes(files[0]) == b"A"  # a listed path opens as it is
        assert storage.is_dir(folders[0]) and not storage.is_file(folders[0])
        assert storage.is_file(storage.join(base, "sub", "c.png")) and not storage.is_dir(files[1])
        assert not storage.is_file(storage.join(base, "nothing.jpg"))
    assert storage.list_folder(url)[0][0] == f"{url}/a.jpg"
    with pytest.raises(FileNotFoundError, match="nothing.jpg"):
        storage.read_bytes(f"{url}/nothing.jpg")


def test_local_paths_urls_and_their_spellings(both, tmp_path):
    root, url = both
    assert not storage.is_url(root) and not storage.is_url("file://" + root) and storage.is_url(url)
    assert storage.read_bytes("file://" + os.path.join(root, "a.jpg")) == b"A"
    assert storage.canonical(os.path.join(root, "sub", "..", "a.jpg")) == os.path.realpath(os.path.join(root, "a.jpg"))
    assert storage.canonical(url + "/sub/") == storage.canonical(url + "/sub")
    with pytest.raises(storage.StorageError, match="^nosuchprotocol://x: cannot use this file system"):
        storage.is_file("nosuchprotocol://x")


def test_a_local_copy_is_made_once_and_follows_changes(both, tmp_path):
    _, url = both
    cache = str(tmp_path / "cache")
    first = storage.local_copy(f"{url}/a.jpg", cache)
    assert open(first, "rb").read() == b"A" and first.endswith(".jpg")
    assert storage.local_copy(f"{url}/a.jpg", cache) == first and len(os.listdir(cache)) == 1
    fsspec.filesystem("memory").pipe(f"{url}/a.jpg", b"AA")  # other bytes: another copy
    second = storage.local_copy(f"{url}/a.jpg", cache)
    assert second != first and open(second, "rb").read() == b"AA"
    local = os.path.join(tmp_path, "a.jpg")
    assert storage.local_copy(local, cache) == local  # a local file is its own copy


# --- every input behind a URL: the same bytes as from disk --------------------------------------

def to_memory(local_root, url):
    """Copy the files under ``local_root`` to ``url`` (fsspec's memory file system)."""
    memory = fsspec.filesystem("memory")
    for folder, _, names in os.walk(local_root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                memory.pipe(f"{url}/{os.path.relpath(path, local_root)}", handle.read())
    return url


@pytest.fixture
def url_inputs(inputs, tmp_path, monkeypatch):
    """The ``inputs`` fixture's photos (and the label map) also under a memory:// URL."""
    monkeypatch.setenv("SPATULE_SYNTH_INPUT_CACHE", str(tmp_path / "input_cache"))
    url = to_memory(str(inputs), f"memory://inputs-{os.getpid()}-{tmp_path.name}")
    fsspec.filesystem("memory").pipe(f"{url}/label_map.pbtxt", open(DEFAULT_LABEL_MAP, "rb").read())
    yield url
    fsspec.filesystem("memory").rm(url, recursive=True)


def without_manifest(files):
    return {name: digest for name, digest in files.items() if name != "manifest.json"}


@pytest.mark.parametrize("options", [dict(num_workers=1), dict(num_workers=2, mask="grabcut", instance_masks=True)])
def test_generate_from_urls_writes_the_bytes_of_a_run_from_disk(inputs, url_inputs, tmp_path, options):
    out = tmp_path / "out"
    expected = reference_run(lambda o, **k: config_for(inputs, o, **k), out, **options)
    run_generate(GenerateConfig.from_settings(**{
        **config_for(inputs, out, **options).settings(), "input_dirs": (f"{url_inputs}/labelled",),
        "background_dirs": (f"{url_inputs}/backgrounds",), "label_map_path": f"{url_inputs}/label_map.pbtxt"}))
    assert without_manifest(tree(out)) == without_manifest(expected)
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(path.startswith(url_inputs) for path in manifest["splits"]["train"]["backgrounds"])
    assert os.listdir(tmp_path / "input_cache")  # the workers decoded local copies


def test_convert_from_urls_writes_the_records_of_a_run_from_disk(inputs, url_inputs, tmp_path):
    local = run_convert(ConvertConfig(input_dirs=(str(inputs / "labelled"),), output_dir=str(tmp_path / "local"),
                                      tile_size=64, tile_overlap=16))
    remote = run_convert(ConvertConfig(input_dirs=(f"{url_inputs}/labelled",), output_dir=str(tmp_path / "remote"),
                                       tile_size=64, tile_overlap=16, label_map_path=f"{url_inputs}/label_map.pbtxt"))
    assert len(remote.examples) == len(local.examples) > 0 and remote.pairs_found == local.pairs_found
    assert without_manifest(tree(tmp_path / "remote")) == without_manifest(tree(tmp_path / "local"))


def test_a_missing_url_input_is_one_clear_error(url_inputs, tmp_path):
    with pytest.raises(InputDirError, match=f"^input folder {url_inputs}/nothing does not exist or is not a folder$"):
        run_generate(GenerateConfig.from_settings(input_dirs=(f"{url_inputs}/nothing",), output_dir=str(tmp_path / "o")))


# --- every output on a URL too: the same bytes, no rename, resumable ----------------------------

def memory_tree(url):
    """`test_scale.tree` of a memory:// folder: every file under it with the SHA-256 of its bytes."""
    memory, root = fsspec.filesystem("memory"), "/" + url[len("memory://"):]
    return {path[len(root) + 1:]: hashlib.sha256(memory.cat_file(path)).hexdigest() for path in memory.find(root)}


@pytest.fixture
def url_output(tmp_path, monkeypatch):
    """An output URL in the memory store, on which nothing may be renamed (object stores cannot)."""
    url = f"memory://outputs-{os.getpid()}-{tmp_path.name}/out"

    def no_rename(*args, **kwargs):
        raise AssertionError(f"renamed on the store: {args}")

    for method in ("mv", "rename", "cp_file", "copy"):
        monkeypatch.setattr(f"fsspec.implementations.memory.MemoryFileSystem.{method}", no_rename)
    yield url
    fsspec.filesystem("memory").rm(url.rsplit("/", 1)[0], recursive=True)


def url_settings(inputs, url_inputs, out, **options):
    """`config_for` settings with every input and the output behind URLs."""
    return {**config_for(inputs, out, **options).settings(), "input_dirs": (f"{url_inputs}/labelled",),
            "background_dirs": (f"{url_inputs}/backgrounds",), "label_map_path": f"{url_inputs}/label_map.pbtxt",
            "output_dir": out}


def same_manifest(url, local_out, url_inputs, inputs, written=None):
    """The URL run's manifest (``written``, or read from memory://), its paths put back to the
    local run's, equals the local one (but for the label map's path: a URL run may read a copy of
    the default one)."""
    if written is None:
        written = fsspec.filesystem("memory").cat_file(f"{url}/manifest.json").decode()
    written = written.replace(url_inputs, str(inputs)).replace(url, str(local_out))
    local = (local_out / "manifest.json").read_text()
    return ([line for line in written.splitlines() if '"label_map_path"' not in line]
            == [line for line in local.splitlines() if '"label_map_path"' not in line])


@pytest.mark.parametrize("options", [
    dict(num_workers=1),  # the worker writes straight to the store (as on a cluster's bucket)
    dict(num_workers=2, mask="grabcut", instance_masks=True, report=True, scene_outputs=("background", "mask"),
         tag_crops=True, yolo_output=True),  # staged: no other process sees memory://
])
def test_generate_with_every_path_a_url_writes_the_bytes_of_a_disk_run(inputs, url_inputs, url_output, tmp_path,
                                                                       options):
    out = tmp_path / "out"
    run_generate(config_for(inputs, out, **options))
    result = run_generate(GenerateConfig.from_settings(**url_settings(inputs, url_inputs, url_output, **options)))
    assert result.manifest_path == f"{url_output}/manifest.json"
    written, expected = memory_tree(url_output), tree(out)
    assert without_manifest(written) == without_manifest(expected)
    assert ".progress/run.json" not in written and "annotations/train.record" in written
    assert same_manifest(url_output, out, url_inputs, inputs)
    assert not os.path.exists("memory:")  # nothing went to a local folder named after the URL


def test_convert_with_every_path_a_url_writes_the_records_of_a_disk_run(inputs, url_inputs, url_output, tmp_path):
    local = tmp_path / "local"
    run_convert(ConvertConfig(input_dirs=(str(inputs / "labelled"),), output_dir=str(local), tile_size=64,
                              tile_overlap=16))
    remote = run_convert(ConvertConfig(input_dirs=(f"{url_inputs}/labelled",), output_dir=url_output, tile_size=64,
                                       tile_overlap=16, label_map_path=f"{url_inputs}/label_map.pbtxt"))
    assert remote.shard_paths == [f"{url_output}/annotations/real.record"]
    assert without_manifest(memory_tree(url_output)) == without_manifest(tree(local))
    assert same_manifest(url_output, local, url_inputs, inputs)


class Killed(BaseException):
    """What a ``kill -9`` does to the parent, as far as the store can tell: it stops writing."""


def killed_after(writes, monkeypatch):
    """Make the store stop taking writes (``Killed``) after ``writes`` more objects."""
    memory = fsspec.implementations.memory.MemoryFileSystem
    original_pipe, original_put, count = memory.pipe_file, memory.put_file, [0]

    def counted(original):
        def write(self, *args, **kwargs):
            count[0] += 1
            if count[0] > writes:
                raise Killed()
            return original(self, *args, **kwargs)
        return write

    monkeypatch.setattr(memory, "pipe_file", counted(original_pipe))
    monkeypatch.setattr(memory, "put_file", counted(original_put))
    return lambda: (monkeypatch.setattr(memory, "pipe_file", original_pipe),
                    monkeypatch.setattr(memory, "put_file", original_put))


@pytest.mark.parametrize("workers, writes", [(1, 45), (2, 70)])
def test_a_url_run_killed_midway_never_looks_finished_and_resumes_to_the_same_bytes(
        inputs, url_inputs, url_output, tmp_path, monkeypatch, workers, writes):
    out = tmp_path / "out"
    run_generate(config_for(inputs, out, num_workers=workers, instance_masks=True))
    settings = url_settings(inputs, url_inputs, url_output, num_workers=workers, instance_masks=True)
    revive = killed_after(writes, monkeypatch)
    with pytest.raises(Killed):
        run_generate(GenerateConfig.from_settings(**settings))
    revive()
    interrupted = memory_tree(url_output)
    assert "manifest.json" not in interrupted and ".progress/run.json" in interrupted
    parts = [name for name in interrupted if name.startswith(".progress/parts/")]
    assert 0 < len(parts) < 4  # some chunks finished, not all
    with pytest.raises(OutputDirError, match=f"^output directory {url_output} holds an unfinished run"):
        run_generate(GenerateConfig.from_settings(**settings))
    run_generate(GenerateConfig.from_settings(**{**settings, "resume": True}))
    assert without_manifest(memory_tree(url_output)) == without_manifest(tree(out))
    assert same_manifest(url_output, out, url_inputs, inputs)


def test_overwrite_on_a_url_replaces_the_whole_previous_run(inputs, url_inputs, url_output, tmp_path):
    out = tmp_path / "out"
    run_generate(config_for(inputs, out, num_images=12))
    run_generate(GenerateConfig.from_settings(**url_settings(inputs, url_inputs, url_output)))  # 40 images
    with pytest.raises(OutputDirError, match=f"^output directory {url_output} already exists and is not empty"):
        run_generate(GenerateConfig.from_settings(**url_settings(inputs, url_inputs, url_output, num_images=12)))
    run_generate(GenerateConfig.from_settings(**url_settings(inputs, url_inputs, url_output, num_images=12,
                                                             overwrite=True)))
    assert without_manifest(memory_tree(url_output)) == without_manifest(tree(out))  # no image of the 40 left


def test_overwrite_never_deletes_a_url_folder_spatule_synth_did_not_create(inputs, url_inputs, url_output):
    fsspec.filesystem("memory").pipe(f"{url_output}/precious.txt", b"mine")
    with pytest.raises(OutputDirError, match="was not created by spatule_synth"):
        run_generate(GenerateConfig.from_settings(**url_settings(inputs, url_inputs, url_output, overwrite=True)))
    assert fsspec.filesystem("memory").cat_file(f"{url_output}/precious.txt") == b"mine"


def test_the_lock_on_a_url_is_a_lease_that_a_dead_holder_loses(url_output):
    progress = Progress(url_output)
    progress.create({"config": {}}, ["train"])
    lease = f"{url_output}/.progress/lock"
    memory = fsspec.filesystem("memory")
    with progress.locked():
        holder = json.loads(memory.cat_file(lease))
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(OutputDirError, match="is being written by another spatule_synth run"):
            with Progress(url_output).locked():  # held: even this process cannot take it twice
                pass
    assert not memory.exists(lease)  # released
    me = this_process()
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "30"])
    try:
        for holder, refused in [
                ({"host": "elsewhere", "machine": "other", "pid": 7, "started": "1"}, True),
                ({**me, "machine": "another container"}, True),  # the same host name elsewhere
                ({**me, "pid": alive.pid, "started": this_process_started(alive.pid)}, True),
                ({**me, "pid": dead.pid}, False),  # killed: taken over
                ({**me, "pid": alive.pid, "started": "0"}, False),  # its pid now another process's
                ("not a lease", True)]:
            memory.pipe(lease, json.dumps(holder).encode())
            if refused:
                with pytest.raises(OutputDirError, match=f"^output directory {url_output} is being written"):
                    with progress.locked():
                        pass
                assert json.loads(memory.cat_file(lease)) == holder  # left alone
            else:
                with progress.locked():
                    assert json.loads(memory.cat_file(lease))["pid"] == os.getpid()
    finally:
        alive.kill()
        alive.wait()


def this_process_started(pid):
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()[19]


@pytest.mark.slow
def test_beam_with_every_path_a_url_writes_the_bytes_of_a_local_run_from_disk(inputs, url_inputs, url_output, tmp_path):
    out = tmp_path / "out"
    run_generate(config_for(inputs, out, num_workers=2, instance_masks=True))
    run_generate(GenerateConfig.from_settings(**url_settings(
        inputs, url_inputs, url_output, instance_masks=True, runner="beam",
        beam_pipeline_options="--runner=DirectRunner --direct_running_mode=multi_processing --direct_num_workers=2")))
    assert without_manifest(memory_tree(url_output)) == without_manifest(tree(out))
    assert same_manifest(url_output, out, url_inputs, inputs)


def test_a_file_url_output_is_the_local_folder(inputs, tmp_path):
    out = tmp_path / "out"
    expected = reference_run(lambda o, **k: config_for(inputs, o, **k), out, num_images=12)
    run_generate(config_for(inputs, f"file://{out}", num_images=12))
    assert tree(out) == expected  # the marker and every file in one folder, as without file://
    assert not os.path.exists("file:")


def test_an_overwrite_interrupted_while_deleting_can_be_run_again(inputs, url_inputs, url_output, tmp_path,
                                                                  monkeypatch):
    out = tmp_path / "out"
    run_generate(config_for(inputs, out, num_images=12))
    run_generate(GenerateConfig.from_settings(**url_settings(inputs, url_inputs, url_output)))
    memory = fsspec.implementations.memory.MemoryFileSystem
    original = memory.rm

    def killed_halfway(self, paths, *args, **kwargs):
        if isinstance(paths, list) and len(paths) > 2:
            original(self, paths[:len(paths) // 2], *args, **kwargs)
            raise Killed()
        return original(self, paths, *args, **kwargs)

    settings = url_settings(inputs, url_inputs, url_output, num_images=12, overwrite=True)
    monkeypatch.setattr(memory, "rm", killed_halfway)
    with pytest.raises(Killed):
        run_generate(GenerateConfig.from_settings(**settings))
    monkeypatch.setattr(memory, "rm", original)
    left = memory_tree(url_output)
    assert ".spatule_synth_output" in left and "manifest.json" not in left and len(left) > 2
    run_generate(GenerateConfig.from_settings(**settings))  # still ours: the marker stayed
    assert without_manifest(memory_tree(url_output)) == without_manifest(tree(out))


class NoCredentialsError(Exception):
    """What botocore raises for a bucket without credentials: no OSError."""


def test_a_store_error_that_is_no_oserror_becomes_one_named_error(tmp_path):
    class Unreachable(fsspec.AbstractFileSystem):
        protocol = "unreachable"

        def info(self, path, **kwargs):
            raise NoCredentialsError("Unable to locate credentials")

        ls = info

    fsspec.register_implementation("unreachable", Unreachable, clobber=True)
    message = "^unreachable://bucket/photos: NoCredentialsError: Unable to locate credentials$"
    with pytest.raises(storage.StorageError, match=message):
        storage.is_dir("unreachable://bucket/photos")
    with pytest.raises(storage.StorageError, match=message):
        run_generate(GenerateConfig.from_settings(input_dirs=("unreachable://bucket/photos",),
                                                  output_dir=str(tmp_path / "out")))


def test_each_background_behind_a_url_is_downloaded_once(inputs, url_inputs, tmp_path, monkeypatch):
    memory, opened = fsspec.implementations.memory.MemoryFileSystem, collections.Counter()
    original = memory._open

    def counted(self, path, mode="rb", *args, **kwargs):
        if "r" in mode:
            opened[path] += 1
        return original(self, path, mode, *args, **kwargs)

    monkeypatch.setattr(memory, "_open", counted)
    run_generate(GenerateConfig.from_settings(**{
        **config_for(inputs, tmp_path / "out", num_workers=2).settings(),
        "input_dirs": (f"{url_inputs}/labelled",), "background_dirs": (f"{url_inputs}/backgrounds",)}))
    backgrounds = {path: count for path, count in opened.items() if "/backgrounds/" in path}
    assert len(backgrounds) == 6 and set(backgrounds.values()) == {1}  # checked, keyed, decoded: one read
