"""GrabCut and model masks made on a process pool and cached per photo content
(`spatule_synth.generate.mask_jobs`, `spatule_synth.core.mask_cache`): the same cutouts and the same
problems, in the same order, with 1 or 2 workers, a cold or a warm cache."""

import os
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest
from PIL import Image

from spatule_synth.core import mask_cache
from spatule_synth.core.config import InputsConfig, PlacementConfig, SplitConfig
from spatule_synth.core.images import read_image
from spatule_synth.core.mask_cache import MaskCache, cache_dir, method_identity, model_identity, photo_key
from spatule_synth.core.masks import RefinedMask
from spatule_synth.core.problems import ProblemLog, RunStopped
from spatule_synth.core.transform import CUTOUT_MARGIN as M
from spatule_synth.formats.label_map import LabelMap, write_label_map
from spatule_synth.generate import mask_jobs
from spatule_synth.generate.identities import content_key
from spatule_synth.generate.mask_jobs import MaskJobs, MaskWorkerDiedError, PhotoMasks, PhotoTask, refine_photo
from spatule_synth.generate.sources import read_sources
from conftest import labelimg_xml
from test_masks import crop_of, iou, scene

# Keras 3 itself triggers this NumPy 2 warning when saving a model.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def tight(box):
    return tuple(int(v) for v in box.voc_ints())


@pytest.fixture
def mask_inputs(tmp_path):
    """Photos for --mask=grabcut, in input order (file names sort as listed):

    P0  a large object (the slowest GrabCut: finishes after the photos that follow it)
    P1  an object GrabCut recovers (mask kept)
    P2  a 6 px box (fallback: too small) and a recovered object
    P3  a box drawn far larger than its object on one side (fallback: misses a side)
    P4  a box touching the photo's edge (truncated_cutout, no mask asked for)
    P5  EXIF orientation 6, labelled as displayed: workers must refine the displayed pixels
    P6  resized after labelling: the XML says 480x400, the photo is 240x200 (size_scaled)
    P7  an object of a class not in the label map (image_incomplete, fatal)
    P8  recovered object
    """
    photos, backgrounds = tmp_path / "photos", tmp_path / "backgrounds"
    photos.mkdir()
    backgrounds.mkdir()
    truths = {}

    def write(name, pixels, objects, declared=None, save=None):
        height, width = pixels.shape[:2]
        (save or (lambda path: Image.fromarray(pixels).save(path)))(photos / name)
        size = declared or (width, height)
        (photos / (name[:-4] + ".xml")).write_text(labelimg_xml(name, *size, objects))

    pixels, truth, box = scene("ellipse", 0, size=(480, 400), radius=150)
    write("P0.png", pixels, [("tag", *tight(box))])
    pixels, truth, box = scene("polygon", 2)
    write("P1.png", pixels, [("tag", *tight(box))])
    truths["P1.png"] = (truth, box)
    pixels, truth, box = scene("ellipse", 1, centre=(150, 100), radius=40)
    write("P2.png", pixels, [("tag", 20, 20, 26, 26), ("tag", *tight(box))])
    pixels, truth, box = scene("ellipse", 3)
    x0, y0, x1, y1 = tight(box)
    write("P3.png", pixels, [("tag", x0 - 30, y0, x1, y1)])
    pixels, truth, box = scene("ring", 4)
    write("P4.png", pixels, [("tag", 0, 10, 50, 60), ("tag", *tight(box))])
    pixels, truth, box = scene("polygon", 5, size=(200, 240))  # displayed 200x240
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed = stored turned 90 degrees clockwise
    write("P5.png", pixels, [("tag", *tight(box))],
          save=lambda path: Image.fromarray(np.rot90(pixels, 1)).save(path, exif=exif.tobytes()))
    truths["P5.png"] = (truth, box)
    pixels, truth, box = scene("ellipse", 6, size=(480, 400), radius=110)
    small = np.asarray(Image.fromarray(pixels).resize((240, 200), Image.BILINEAR))
    write("P6.png", small, [("tag", *tight(box))], declared=(480, 400))
    pixels, truth, box = scene("ellipse", 7)
    write("P7.png", pixels, [("zebra", *tight(box))])
    pixels, truth, box = scene("ring", 8)
    write("P8.png", pixels, [("tag", *tight(box))])
    truths["P8.png"] = (truth, box)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), np.uint8)).save(
        backgrounds / "B.jpg")
    write_label_map(LabelMap.from_names(["tag"]), str(tmp_path / "label_map.pbtxt"))
    assert np.array_equal(read_image(str(photos / "P5.png")).pixels, scene("polygon", 5, size=(200, 240))[0])
    return tmp_path, truths


def inputs_of(inputs, **overrides):
    settings = dict(input_dirs=(str(inputs / "photos"),), background_dirs=(str(inputs / "backgrounds"),),
                    label_map_path=str(inputs / "label_map.pbtxt"), mask="grabcut")
    settings.update(overrides)
    return InputsConfig(**settings)


def read_sources_of(inputs, workers, log, **overrides):
    return read_sources(inputs_of(inputs, **overrides), SplitConfig(), PlacementConfig(canvas_size=640),
                        LabelMap.from_names(["tag"]), log, workers)


def read(inputs, workers, monkeypatch, cache, **overrides):
    """(cutouts as comparable tuples, problems as tuples) of read_sources; ``cache``: a folder or 'off'."""
    monkeypatch.setenv(mask_cache.CACHE_ENV, str(cache))
    log = ProblemLog()
    sources = read_sources_of(inputs, workers, log, **overrides)
    cutouts = [(c.cutout_id, c.pixels.tobytes(), c.alpha.tobytes(), tuple(p.mask.tobytes() for p in c.parts))
               for c in sources.cutouts]
    return cutouts, [(p.kind, p.file, p.reason, p.object_index) for p in log.problems], sources


def counting_refine(monkeypatch):
    calls = []
    original = mask_jobs.refine_mask

    def counted(*args, **kwargs):
        calls.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(mask_jobs, "refine_mask", counted)
    return calls


def test_masks_and_problems_are_identical_with_one_and_two_workers_and_a_warm_cache(
        mask_inputs, tmp_path, monkeypatch):
    inputs, truths = mask_inputs
    serial_cutouts, serial_problems, sources = read(inputs, 1, monkeypatch, "off")
    # The data set is what the test means: kept masks, both kinds of fallback, other problems.
    kinds = [p[0] for p in serial_problems]
    assert {"truncated_cutout", "size_scaled", "unknown_class", "image_incomplete"} <= set(kinds)
    fallbacks = [(os.path.basename(p[1]), p[2]) for p in serial_problems if p[0] == "mask_fallback"]
    assert [name for name, _ in fallbacks] == ["P2.xml", "P3.xml"]
    assert "cannot refine a box narrower" in fallbacks[0][1] and "misses the box's left side" in fallbacks[1][1]
    by_photo = {os.path.basename(c.source_file): c for c in sources.cutouts if len(c.parts) == 1}
    for name, (truth, box) in truths.items():  # P5: workers refine the displayed (EXIF) frame
        [part] = by_photo[name].parts  # its mask covers the cutout: the box and a margin
        assert iou(part.mask[M:-M, M:-M], crop_of(truth, box)) >= 0.8, name

    cold = tmp_path / "cache"
    calls = counting_refine(monkeypatch)  # counts the masks made in this process
    assert read(inputs, 2, monkeypatch, cold)[:2] == (serial_cutouts, serial_problems)
    assert calls == []  # every mask was made by a worker...
    stored = sorted(str(p) for p in cold.rglob("*" + mask_cache.SUFFIX))
    assert len(stored) == 9  # ...and cached: P0, P1, P2 (2), P3, P4 (the whole one), P5, P6, P8
    monkeypatch.setattr(MaskJobs, "_pool", lambda self: pytest.fail("no pool for a warm cache"))
    assert read(inputs, 2, monkeypatch, cold)[:2] == (serial_cutouts, serial_problems)
    assert read(inputs, 1, monkeypatch, cold)[:2] == (serial_cutouts, serial_problems)
    assert calls == []


def test_a_warm_cache_refines_nothing_and_a_corrupt_entry_is_made_again(mask_inputs, tmp_path, monkeypatch):
    inputs, _ = mask_inputs
    cache = tmp_path / "cache"
    calls = counting_refine(monkeypatch)
    first = read(inputs, 1, monkeypatch, cache)[:2]
    assert len(calls) == 9
    calls.clear()
    assert read(inputs, 1, monkeypatch, cache)[:2] == first
    assert calls == []
    entries = sorted(cache.rglob("*" + mask_cache.SUFFIX))
    whole = {path: path.read_bytes() for path in entries}
    entries[0].write_bytes(whole[entries[0]][:-7])  # truncated
    entries[1].write_bytes(b"not a mask at all")
    broken = bytearray(whole[entries[2]])
    broken[-3] ^= 0xFF  # zlib's checksum catches it
    entries[2].write_bytes(bytes(broken))
    entries[3].write_bytes(whole[entries[3]] + b"\0")  # trailing bytes
    assert read(inputs, 1, monkeypatch, cache)[:2] == first
    assert len(calls) == 4
    assert {path: path.read_bytes() for path in entries} == whole  # rewritten as they were
    assert not [p for p in cache.rglob("*") if p.name.startswith(".tmp-")]


def test_fallback_notes_and_a_stopping_problem_come_in_input_order(mask_inputs, tmp_path, monkeypatch):
    inputs, _ = mask_inputs
    serial = read(inputs, 1, monkeypatch, "off")[1]
    pooled = read(inputs, 2, monkeypatch, tmp_path / "cache")[1]
    assert pooled == serial
    order = [os.path.basename(p[1]) for p in pooled if os.path.basename(p[1]).startswith("P")]
    assert order == sorted(order) and len(set(order)) == 5  # P2, P3, P4, P6, P7 in input order
    # --on_error=fail stops at the same problem (P7's unknown class), after the same problems.
    stopped = {}
    for workers, cache in ((1, "off"), (2, tmp_path / "other")):
        monkeypatch.setenv(mask_cache.CACHE_ENV, str(cache))
        log = ProblemLog("fail")
        with pytest.raises(RunStopped) as raised:
            read_sources_of(inputs, workers, log)
        stopped[workers] = (str(raised.value), [(p.kind, p.file, p.reason) for p in log.problems])
    assert stopped[1] == stopped[2] and "P7.xml" in stopped[1][0]
    assert [p[0] for p in stopped[1][1]].count("mask_fallback") == 2  # P2 and P3, before P7


def test_worker_task_decodes_the_photo_as_the_parent(mask_inputs, tmp_path):
    inputs, truths = mask_inputs
    path = str(inputs / "photos" / "P5.png")
    truth, box = truths["P5.png"]
    data = open(path, "rb").read()
    assert photo_key(data) == content_key(path)
    cache = MaskCache(str(tmp_path / "cache"))
    key = cache.key(photo_key(data), tight(box), method_identity("grabcut"))
    task = PhotoTask(path, photo_key(data), (tight(box),), (key,), "grabcut", "", cache.folder)
    [refined] = refine_photo(task)
    assert refined.fallback_reason is None and iou(refined.mask, crop_of(truth, box)) >= 0.8
    np.testing.assert_array_equal(cache.load(key, tight(box)).mask, refined.mask)
    # A file that changed since the parent read it is left to the parent.
    assert refine_photo(PhotoTask(path, "0" * 16, (tight(box),), (key,), "grabcut", "", None)) is None


@pytest.mark.slow
def test_model_masks_are_made_by_workers_that_load_the_model(mask_inputs, tmp_path, monkeypatch):
    tf = pytest.importorskip("tensorflow")
    from test_masks import redness_model
    inputs, _ = mask_inputs
    model = str(tmp_path / "red.keras")
    redness_model(tf.keras).save(model)
    serial = read(inputs, 1, monkeypatch, "off", mask="model", mask_model=model)[:2]
    assert read(inputs, 2, monkeypatch, tmp_path / "cache", mask="model", mask_model=model)[:2] == serial
    assert len(list((tmp_path / "cache").rglob("*" + mask_cache.SUFFIX))) == 9


def test_read_ahead_is_bounded_by_photos_and_bytes(mask_inputs, tmp_path, monkeypatch):
    inputs, _ = mask_inputs
    serial, box = MaskJobs(inputs_of(inputs), 1), MaskJobs(inputs_of(inputs, mask="box"), 2)
    assert serial.may_read_ahead(0, 0) and not serial.may_read_ahead(1, 0) and not box.may_read_ahead(1, 0)
    pooled = MaskJobs(inputs_of(inputs), 2)
    limit = mask_jobs.PHOTOS_AHEAD_PER_WORKER * 2
    assert pooled.may_read_ahead(limit, 0) and not pooled.may_read_ahead(limit + 1, 0)
    assert not pooled.may_read_ahead(1, mask_jobs.LOOKAHEAD_MB << 20) and pooled.may_read_ahead(0, 1 << 40)
    asked = []
    original = MaskJobs.may_read_ahead
    monkeypatch.setattr(MaskJobs, "may_read_ahead", lambda self, photos, held: asked.append(
        (photos, held)) or original(self, photos, held))
    read(inputs, 2, monkeypatch, tmp_path / "cache")
    assert asked[0] == (0, 0) and all(held > 0 for photos, held in asked[1:])
    assert max(photos for photos, _ in asked) == limit + 1  # refused: 9 photos read, 8 wait behind the first


def test_a_dead_worker_stops_the_read_stage_with_a_clear_error(mask_inputs):
    inputs, _ = mask_inputs
    future = Future()
    future.set_exception(BrokenProcessPool("gone"))
    task = PhotoTask("photos/P1.png", "0" * 16, ((1, 2, 30, 40),), ("k",), "grabcut", "", None)
    with MaskJobs(inputs_of(inputs), 2, MaskCache(None)) as jobs:
        with pytest.raises(MaskWorkerDiedError, match="while refining the masks of photos/P1.png"):
            jobs.mask(PhotoMasks(future=future, task=task), None, (1, 2, 30, 40))


# --- the cache itself ---------------------------------------------------------------------------

def test_cache_folder_follows_the_environment(tmp_path):
    home = os.path.expanduser("~")
    assert cache_dir({}) == os.path.join(home, ".cache", "spatule_synth", "masks")
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == str(tmp_path / "spatule_synth" / "masks")
    assert cache_dir({mask_cache.CACHE_ENV: str(tmp_path / "m"), "XDG_CACHE_HOME": "/x"}) == str(tmp_path / "m")
    assert cache_dir({mask_cache.CACHE_ENV: "off"}) is None
    assert cache_dir({mask_cache.CACHE_ENV: "", "XDG_CACHE_HOME": str(tmp_path)}) == \
        str(tmp_path / "spatule_synth" / "masks")


def test_cache_keys_entries_and_refusals(tmp_path):
    cache = MaskCache(str(tmp_path))
    grabcut = method_identity("grabcut")
    key = cache.key("ab" * 8, (1, 2, 5, 4), grabcut)
    others = {cache.key("ab" * 8, (1, 2, 5, 5), grabcut), cache.key("cd" * 8, (1, 2, 5, 4), grabcut),
              cache.key("ab" * 8, (1, 2, 5, 4), method_identity("box"))}
    assert key not in others and len(others) == 3
    mask = np.array([[0, 255, 255, 0], [255, 255, 0, 0]], np.uint8)
    assert cache.load(key, (1, 2, 5, 4)) is None
    cache.store(key, RefinedMask(mask, "its mask covers 9% of the box"))
    loaded = cache.load(key, (1, 2, 5, 4))
    np.testing.assert_array_equal(loaded.mask, mask)
    assert loaded.fallback_reason == "its mask covers 9% of the box" and loaded.mask.flags.writeable
    assert cache.load(key, (1, 2, 6, 4)) is None  # another shape
    moved = ("00" if key[:2] != "00" else "11") + key[2:]
    os.makedirs(os.path.dirname(cache.path(moved)))
    os.rename(cache.path(key), cache.path(moved))
    assert cache.load(moved, (1, 2, 5, 4)) is None  # the file holds another key
    assert MaskCache(None).load(key, (1, 2, 5, 4)) is None
    MaskCache(None).store(key, RefinedMask(mask, None))  # a cache turned off stores nothing


def test_unwritable_cache_only_warns(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = MaskCache(str(blocker / "masks"))  # under a file: cannot be created
    warnings = []
    monkeypatch.setattr(mask_cache.logging, "warning", lambda *args: warnings.append(args))
    for _ in range(2):
        cache.store("ab" * 32, RefinedMask(np.zeros((2, 2), np.uint8), None))
    assert len(warnings) == 1


def test_model_identity_follows_the_model_files(tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(b"weights 1")
    first = method_identity("model", str(model))
    model.write_bytes(b"weights 2")
    assert method_identity("model", str(model)) != first
    folder = tmp_path / "saved"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "v.index").write_bytes(b"index")
    before = model_identity(str(folder))
    (folder / "variables" / "v.index").write_bytes(b"index 2")
    assert model_identity(str(folder)) != before
    with pytest.raises(mask_cache.masks.MaskModelError, match="no such mask model"):
        model_identity(str(tmp_path / "missing"))


def test_model_masks_in_a_worker_task_match_the_parent(tmp_path, monkeypatch):
    """--mask=model: the worker's own model gives the parent's masks, and the cache hits after."""
    tf = pytest.importorskip("tensorflow")
    from test_masks import redness_model
    path = str(tmp_path / "red.keras")
    redness_model(tf.keras).save(path)
    pixels, truth, box = scene("ellipse", 9)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    data = (tmp_path / "photo.png").read_bytes()
    cache = MaskCache(str(tmp_path / "cache"))
    key = cache.key(photo_key(data), tight(box), method_identity("model", path))
    [from_task] = refine_photo(PhotoTask(str(tmp_path / "photo.png"), photo_key(data), (tight(box),),
                                         (key,), "model", path, cache.folder))
    assert from_task.fallback_reason is None and iou(from_task.mask, crop_of(truth, box)) >= 0.9
    config = InputsConfig(input_dirs=(str(tmp_path),), mask="model", mask_model=path)
    from spatule_synth.core.validation import ValidPhoto
    from spatule_synth.core.images import decode_image
    photo = ValidPhoto(str(tmp_path / "photo.png"), None, data, decode_image(data), ())
    with MaskJobs(config, 1, MaskCache(None)) as jobs:
        parent = jobs.mask(jobs.request(photo, [tight(box)]), photo, tight(box))
    np.testing.assert_array_equal(parent.mask, from_task.mask)
    with MaskJobs(config, 1, cache) as jobs:
        requested = jobs.request(photo, [tight(box)])
        assert (jobs.hits, jobs.misses) == (1, 0)
        np.testing.assert_array_equal(jobs.mask(requested, photo, tight(box)).mask, from_task.mask)
