"""--layout=grid: every cutout (and its mirror) on every background at K distinct positions."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from spatule_synth.core.config import GenerateConfig, PlacementConfig
from spatule_synth.core.images import read_pixels
from spatule_synth.formats.voc import read_voc
from spatule_synth.generate.grid import grid_shape, plan_grid_sample
from spatule_synth.generate.plan import SplitPool
from spatule_synth.generate.run import OutputWriteError, run_generate
from spatule_synth.generate.sources import Background
from conftest import background_photos, tag_photos
from test_generic import ellipse_cutout
from test_scale import disk_full_after, reference_run, tree

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CANVAS, K = 96, 3


def grid_config(tmp_path, out, **options):
    settings = dict(input_dirs=(str(tmp_path / "labelled"),), background_dirs=(str(tmp_path / "backgrounds"),),
                    output_dir=str(out), canvas_size=CANVAS, eval_fraction=0.3, seed=6, num_workers=1,
                    layout="grid", grid_positions=K, blend=("paste",), report=False,
                    scene_outputs=("background", "mask", "layers"))
    settings.update(options)
    return GenerateConfig.from_settings(**settings)


@pytest.fixture
def grid_inputs(tmp_path):
    tag_photos(tmp_path / "labelled", 4)  # 8 tags of 30 x 20 px, 4 identities (one per photo)
    background_photos(tmp_path / "backgrounds", 3, size=(130, 110))
    return tmp_path


@pytest.fixture
def grid_run(grid_inputs):
    out = grid_inputs / "out"
    result = run_generate(grid_config(grid_inputs, out))
    return out, result


def test_the_grid_has_every_cutout_mirror_background_and_position_once(grid_run):
    out, result = grid_run
    manifest = json.loads((out / "manifest.json").read_text())
    for split in ("train", "eval"):
        info = manifest["splits"][split]
        cutouts, backgrounds = info["cutouts"], info["backgrounds"]
        expected = {f"fg{f}_bg{b}_flip{m}_{k}" for f in range(len(cutouts)) for b in range(len(backgrounds))
                    for m in (0, 1) for k in range(K)}
        entries = manifest["images"][split]
        assert {e["name"] for e in entries} == expected and len(entries) == len(expected)
        assert sorted(os.listdir(out / "images" / split)) == sorted(
            [f"{name}.jpg" for name in expected] + [f"{name}.xml" for name in expected])
        assert result.counts[split].images == len(expected) == info["images"]
        groups = {}
        for entry in entries:
            f, b, m, k = (int(part.lstrip("fgbl ip")) for part in entry["name"].split("_"))
            (placement,) = entry["placements"]  # one object per image, the named cutout and photo
            assert placement["cutout"] == cutouts[f] and entry["background"]["file"] == backgrounds[b]
            assert bool(placement.get("augment", {}).get("flip_h")) == bool(m)
            assert len(entry["objects"]) == 1 and entry["objects"][0]["cutout"] == cutouts[f]
            groups.setdefault((f, b, m), []).append((k, placement["x"], placement["y"], tuple(entry["background"]["window"])))
        for members in groups.values():  # K distinct positions, one window per photo
            assert sorted(k for k, *_ in members) == list(range(K))
            assert len({(x, y) for _, x, y, _ in members}) == K
            assert len({window for *_, window in members}) == 1
    assert {c for s in ("train", "eval") for c in manifest["splits"][s]["cutouts"]} and \
        not set(manifest["splits"]["train"]["identities"]) & set(manifest["splits"]["eval"]["identities"])


def test_grid_boxes_are_the_written_masks_and_the_background_is_the_photo_window(grid_run):
    out, _ = grid_run
    manifest = json.loads((out / "manifest.json").read_text())
    for split in ("train", "eval"):
        for entry in manifest["images"][split]:
            name = entry["name"]
            (obj,) = read_voc(str(out / "images" / split / f"{name}.xml")).objects
            mask = np.asarray(Image.open(out / "mask" / split / f"{name}.png")) == 255
            ys, xs = np.nonzero(mask)
            assert obj.box.voc_ints() == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), name
            background = np.asarray(Image.open(out / "background" / split / f"{name}.png"))
            photo = read_pixels(entry["background"]["file"])
            x, y = entry["background"]["window"]
            assert (x, y) == ((photo.shape[1] - CANVAS) // 2, (photo.shape[0] - CANVAS) // 2)  # centre
            assert np.array_equal(background, photo[y:y + CANVAS, x:x + CANVAS])
            image = np.asarray(Image.open(out / "images" / split / f"{name}.jpg")).astype(int)
            changed = np.abs(image - background.astype(int)).max(axis=-1) > 40  # beyond JPEG noise
            inside = np.zeros_like(changed)
            inside[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
            assert changed.any() and not (changed & ~inside).any(), name


def test_grid_pixel_statistics_are_those_of_the_written_files(grid_run):
    out, _ = grid_run
    manifest = json.loads((out / "manifest.json").read_text())
    names = [e["name"] for e in manifest["images"]["train"]]
    background = np.stack([np.asarray(Image.open(out / "background" / "train" / f"{n}.png")) for n in names])
    mask = np.stack([np.asarray(Image.open(out / "mask" / "train" / f"{n}.png")) for n in names])
    image = np.stack([np.asarray(Image.open(out / "images" / "train" / f"{n}.jpg")) for n in names])
    stats = manifest["splits"]["train"]["pixel_stats"]
    assert set(stats) == {"image", "background", "mask"}
    assert np.allclose(stats["image"]["mean"], image.reshape(-1, 3).mean(axis=0) / 255, atol=1e-6)
    assert np.allclose(stats["image"]["std"], image.reshape(-1, 3).std(axis=0) / 255, atol=1e-6)
    assert np.allclose(stats["background"]["mean"], background.reshape(-1, 3).mean(axis=0) / 255, atol=1e-6)
    assert np.allclose(stats["background"]["std"], background.reshape(-1, 3).std(axis=0) / 255, atol=1e-6)
    assert np.allclose(stats["mask"]["mean"], [mask.mean() / 255], atol=1e-6)
    assert np.allclose(stats["mask"]["std"], [mask.std() / 255], atol=1e-6)


def test_no_flip_classes_have_no_mirror_in_the_grid(grid_inputs):
    out = grid_inputs / "out"
    result = run_generate(grid_config(grid_inputs, out, no_flip_classes=("tag",), scene_outputs=()))
    names = [n for n in os.listdir(out / "images" / "train") if n.endswith(".jpg")]
    assert names and all("_flip0_" in n for n in names)
    manifest = json.loads((out / "manifest.json").read_text())
    info = manifest["splits"]["train"]
    assert result.counts["train"].images == len(info["cutouts"]) * len(info["backgrounds"]) * K


def test_grid_bytes_do_not_depend_on_the_number_of_workers(grid_inputs):
    out = grid_inputs / "out"
    expected = reference_run(lambda o, **k: grid_config(grid_inputs, o, **k), out, num_workers=1,
                             report=True, instance_masks=True)
    run_generate(grid_config(grid_inputs, out, num_workers=2, report=True, instance_masks=True))
    assert tree(out) == expected


def test_an_interrupted_grid_run_resumes_to_the_bytes_of_an_uninterrupted_one(grid_inputs, monkeypatch):
    out = grid_inputs / "out"
    monkeypatch.setattr("spatule_synth.generate.run.GRID_CHUNK", 10)  # several chunks per split
    expected = reference_run(lambda o, **k: grid_config(grid_inputs, o, **k), out)
    with disk_full_after(3, monkeypatch), pytest.raises(OutputWriteError,
                                                        match="rerun the same command with --resume"):
        run_generate(grid_config(grid_inputs, out))
    assert not (out / "manifest.json").exists()
    run_generate(grid_config(grid_inputs, out, resume=True))
    assert tree(out) == expected


@pytest.mark.slow
def test_grid_on_beam_writes_the_bytes_of_the_local_runner(grid_inputs):
    out = grid_inputs / "out"
    expected = reference_run(lambda o, **k: grid_config(grid_inputs, o, **k), out, num_workers=2)
    run_generate(grid_config(grid_inputs, out, runner="beam", beam_pipeline_options=(
        "--runner=DirectRunner --direct_running_mode=multi_processing --direct_num_workers=2")))
    assert tree(out) == expected


def test_an_object_too_large_for_the_canvas_is_pasted_at_the_largest_scale_that_fits():
    rng = np.random.default_rng(0)
    pool = SplitPool("train", (ellipse_cutout(rng), ellipse_cutout(rng)), (Background("bg", 64, 64),))
    config = PlacementConfig(canvas_size=64, layout="grid", grid_positions=4, scale_range=(6.0, 8.0))
    shape = grid_shape(config, pool)
    assert shape.images == 2 * 2 * 1 * 4
    for index in range(shape.images):
        spec = plan_grid_sample(config, 0, pool, index)
        (placement,) = spec.placements
        assert placement.width <= 64 and placement.height <= 64 and placement.scale < 6.0
        assert 0 <= placement.x <= 64 - placement.width and 0 <= placement.y <= 64 - placement.height
        assert not placement.augment.is_geometric or placement.augment.flip_h


def test_grid_positions_are_distinct_and_repeat_only_when_the_canvas_has_fewer_corners():
    rng = np.random.default_rng(1)
    pool = SplitPool("train", (ellipse_cutout(rng),), (Background("bg", 64, 64),))
    for scale, positions in ((1.0, 30), (6.0, 40)):  # small object: many corners; fills the canvas: few
        config = PlacementConfig(canvas_size=64, layout="grid", grid_positions=positions,
                                 scale_range=(scale, scale))
        placements = [plan_grid_sample(config, 0, pool, i).placements[0] for i in range(positions)]
        corners = (64 - placements[0].width + 1) * (64 - placements[0].height + 1)
        seen = [(p.x, p.y) for p in placements]
        assert len(set(seen)) == min(positions, corners), scale
        assert seen == (seen[:corners] * positions)[:positions]  # in order, then again
    assert corners < 40  # the second case did repeat


def test_the_command_line_refuses_random_layout_flags_with_the_grid(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(REPO, "generate.py"), "--layout=grid",
                           "--num_images=10", "--input_dirs=x", f"--output_dir={tmp_path / 'out'}"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 2
    assert "--num_images is not used with --layout=grid (one object per image, every cutout on every " \
           "background)" in done.stderr


def test_the_report_shows_a_row_per_kind_and_the_pixel_statistics(grid_inputs):
    out = grid_inputs / "out"
    run_generate(grid_config(grid_inputs, out, report=True))
    sheet = np.asarray(Image.open(out / "report" / "scenes_train.png"))
    assert sheet.shape[0] == 4 * 160  # image, background, mask, layers
    first = sorted(n for n in os.listdir(out / "images" / "train") if n.endswith(".jpg"))[0][:-4]
    mask = np.asarray(Image.open(out / "mask" / "train" / f"{first}.png"))
    thumb = cv2.resize(mask, (160, 160), interpolation=cv2.INTER_AREA)
    assert np.abs(sheet[2 * 160:3 * 160, 110:270, 0].astype(int) - thumb).max() <= 1  # row 3, column 1
    page = (out / "report" / "index.html").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    stats = manifest["splits"]["train"]["pixel_stats"]
    assert "<h2>scene outputs: pixel mean and std</h2>" in page
    assert "<td>" + ", ".join(f"{v:.4f}" for v in stats["background"]["mean"]) + "</td>" in page
    assert '<img src="scenes_train.png">' in page
