"""core/storage: the same answers for a local folder and for the same files behind a URL."""

import json
import os

import fsspec
import pytest

from spatule_synth.core import storage
from spatule_synth.core.config import DEFAULT_LABEL_MAP, ConvertConfig, GenerateConfig
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


@pytest.mark.slow
def test_beam_from_urls_writes_the_bytes_of_a_local_run_from_disk(inputs, url_inputs, tmp_path):
    out = tmp_path / "out"
    expected = reference_run(lambda o, **k: config_for(inputs, o, **k), out, num_workers=2)
    run_generate(GenerateConfig.from_settings(**{
        **config_for(inputs, out).settings(), "input_dirs": (f"{url_inputs}/labelled",),
        "background_dirs": (f"{url_inputs}/backgrounds",), "label_map_path": f"{url_inputs}/label_map.pbtxt",
        "runner": "beam", "beam_pipeline_options": "--runner=DirectRunner --direct_running_mode=multi_processing "
                                                   "--direct_num_workers=2"}))
    assert without_manifest(tree(out)) == without_manifest(expected)
