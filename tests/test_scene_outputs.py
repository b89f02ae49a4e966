"""--scene_outputs: the clean background, the union mask and the layer map of every image."""

import json

import numpy as np
import pytest
from PIL import Image

from spatule_synth.core.config import GenerateConfig, PlacementConfig
from spatule_synth.core.images import read_pixels
from spatule_synth.generate.plan import SplitPool, plan_sample
from spatule_synth.generate.render import render
from spatule_synth.generate.run import run_generate
from spatule_synth.generate.sources import Background
from conftest import background_photos, tag_photos
from test_generic import ellipse_cutout

MAGENTA = (255, 0, 255)


def test_the_layer_map_names_the_paste_that_wrote_each_pixel():
    rng = np.random.default_rng(0)
    pool = SplitPool("train", tuple(ellipse_cutout(rng) for _ in range(4)), (Background("bg", 160, 160),))
    config = PlacementConfig(canvas_size=160, objects_per_image=(2, 4), blend=("paste", "feather", "seamless_normal"),
                             max_occlusion=0.6, min_visible=0.1, min_visibility=0)
    for index in range(30):
        spec = plan_sample(config, 0, pool, index)
        canvas = np.empty((160, 160, 3), np.uint8)
        canvas[:] = MAGENTA
        sample = render(spec, pool, canvas, config.min_visible, track_layers=True)
        changed = np.any(canvas != MAGENTA, axis=-1)
        assert not (changed & (sample.layers == 0)).any(), index  # nothing written outside the layers
        assert set(np.unique(sample.layers)) <= set(range(len(sample.spec.placements) + 1))
        for obj in sample.objects:  # each object's visible pixels were written last by its own paste
            numbers = np.unique(sample.layers[obj.mask])
            assert len(numbers) == 1 and numbers[0] > 0, index
            placement = sample.spec.placements[numbers[0] - 1]
            assert pool.cutout_of(placement).cutout_id == obj.cutout_id


@pytest.fixture
def scene_run(tmp_path):
    tag_photos(tmp_path / "labelled", 4)
    background_photos(tmp_path / "backgrounds", 3, size=(260, 200))
    out = tmp_path / "out"
    run_generate(GenerateConfig.from_settings(
        input_dirs=(str(tmp_path / "labelled"),), background_dirs=(str(tmp_path / "backgrounds"),),
        output_dir=str(out), num_images=12, canvas_size=128, eval_fraction=0.3, seed=3, num_workers=1,
        report=False, instance_masks=True, scene_outputs=("background", "mask", "layers")))
    return out


def test_scene_files_agree_with_the_photo_the_instance_masks_and_the_layers(scene_run):
    manifest = json.loads((scene_run / "manifest.json").read_text())
    for split in ("train", "eval"):
        for entry in manifest["images"][split]:
            name = entry["name"]
            background = np.asarray(Image.open(scene_run / "background" / split / f"{name}.png"))
            x, y = entry["background"]["window"]
            photo = read_pixels(entry["background"]["file"])
            assert np.array_equal(background, photo[y:y + 128, x:x + 128])  # the window, untouched
            mask = np.asarray(Image.open(scene_run / "mask" / split / f"{name}.png"))
            instances = np.asarray(Image.open(scene_run / "masks" / split / f"{name}.png"))
            assert set(np.unique(mask)) <= {0, 255} and np.array_equal(mask == 255, instances > 0)
            layers = np.asarray(Image.open(scene_run / "layers" / split / f"{name}.png"))
            assert (layers[mask == 255] > 0).all()
            assert layers.max() <= len(entry["placements"])
            image = np.asarray(Image.open(scene_run / "images" / split / f"{name}.jpg")).astype(int)
            untouched = layers == 0  # only JPEG noise there
            assert np.abs(image[untouched] - background[untouched].astype(int)).mean() < 4


def test_depth_is_refused_without_a_model(tmp_path):
    with pytest.raises(ValueError, match=r"^scene_outputs=depth needs depth_model \(a SavedModel folder"):
        GenerateConfig.from_settings(input_dirs=("x",), output_dir=str(tmp_path), scene_outputs=("depth",))
    with pytest.raises(ValueError, match="^depth_model goes with scene_outputs=depth$"):
        GenerateConfig.from_settings(input_dirs=("x",), output_dir=str(tmp_path), depth_model="m")


def test_verify_checks_the_scene_files_against_the_boxes(scene_run):
    from spatule_synth.modes.verify import verify_output
    report = verify_output(str(scene_run))
    assert not report.failed, report.table()
    assert "scene" in report.table()
    manifest = json.loads((scene_run / "manifest.json").read_text())
    entry = next(e for e in manifest["images"]["train"] if e["objects"])
    path = scene_run / "mask" / "train" / f"{entry['name']}.png"
    mask = np.asarray(Image.open(path)).copy()
    boxes = [[int(v) for v in obj["box"]] for obj in entry["objects"]]
    free = next((x, y) for y in range(128) for x in range(128)
                if not any(b[0] <= x < b[2] and b[1] <= y < b[3] for b in boxes))
    mask[free[1], free[0]] = 255  # an object pixel where no box is
    Image.fromarray(mask).save(path)
    (scene_run / "layers" / "train" / f"{entry['name']}.png").unlink()
    table = verify_output(str(scene_run)).table()
    assert f"train/{entry['name']}: layers/train/{entry['name']}.png: missing or unreadable" in table
    assert "mask: object pixels outside every box" in table
