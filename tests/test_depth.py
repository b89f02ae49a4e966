"""--scene_outputs=depth with --depth_model: the user's depth model on every written image."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from spatule_synth.core.config import GenerateConfig
from spatule_synth.core.depth import DepthModelError, depth_png_plane
from spatule_synth.core.images import read_pixels
from spatule_synth.generate.run import run_generate
from conftest import background_photos, tag_photos
from test_scale import disk_full_after, reference_run, tree


def depth_config(tmp_path, out, model, **options):
    settings = dict(input_dirs=(str(tmp_path / "labelled"),), background_dirs=(str(tmp_path / "backgrounds"),),
                    output_dir=str(out), num_images=8, canvas_size=64, eval_fraction=0.25, seed=2,
                    num_workers=1, report=False, scene_outputs=("mask", "depth"), depth_model=str(model))
    settings.update(options)
    return GenerateConfig.from_settings(**settings)


def test_the_depth_plane_keeps_the_range_to_read_the_map_back():
    depth = np.array([[2.0, 3.0], [4.5, 2.0]], np.float32)
    plane, lo, hi = depth_png_plane(depth)
    assert plane.dtype == np.uint16 and (lo, hi) == (2.0, 4.5)
    assert plane.tolist() == [[0, round(65535 * 0.4)], [65535, 0]]
    assert np.allclose(lo + plane / 65535 * (hi - lo), depth, atol=(hi - lo) / 65535)
    flat, lo, hi = depth_png_plane(np.full((3, 3), 7.0, np.float32))
    assert not flat.any() and lo == hi == 7.0


def test_a_missing_depth_model_stops_the_run_before_anything_is_written(tmp_path):
    tag_photos(tmp_path / "labelled", 3)
    background_photos(tmp_path / "backgrounds", 2)
    with pytest.raises(DepthModelError, match=f"^{tmp_path}/nope: no such depth model file or SavedModel folder$"):
        run_generate(depth_config(tmp_path, tmp_path / "out", tmp_path / "nope"))
    assert not (tmp_path / "out").exists()


def red_channel_model(folder, input_size=None):
    """A SavedModel whose depth is the red channel of its input (exact in float32)."""
    import tensorflow as tf

    class Red(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, input_size, input_size, 3], tf.float32)])
        def __call__(self, image):
            return {"depth": image[..., :1] * 1.0}

    module = Red()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.__call__})
    return folder


@pytest.mark.slow
def test_depth_maps_are_the_models_answer_on_the_written_images(tmp_path):
    tag_photos(tmp_path / "labelled", 4)
    background_photos(tmp_path / "backgrounds", 3)
    model = red_channel_model(tmp_path / "red")
    out = tmp_path / "out"
    expected_tree = reference_run(lambda o, **k: depth_config(tmp_path, o, model, **k), out, num_workers=1)
    run_generate(depth_config(tmp_path, out, model, num_workers=2))
    assert tree(out) == expected_tree  # the same bytes for any number of workers
    manifest = json.loads((out / "manifest.json").read_text())
    planes = []
    for split in ("train", "eval"):
        for entry in manifest["images"][split]:
            red = read_pixels(str(out / "images" / split / f"{entry['name']}.jpg"))[..., 0]
            written = np.asarray(Image.open(out / "depth" / split / f"{entry['name']}.png"))
            expected, lo, hi = depth_png_plane(red.astype(np.float32) / 255)
            assert written.dtype == np.uint16 and np.array_equal(written, expected), entry["name"]
            assert entry["depth_range"] == [lo, hi]
            if split == "train":
                planes.append(written)
    stats = manifest["splits"]["train"]["pixel_stats"]["depth"]
    assert np.allclose(stats["mean"], [np.stack(planes).mean() / 65535], atol=1e-6)


@pytest.mark.slow
def test_a_fixed_size_depth_model_sees_the_image_resized_and_answers_at_its_size(tmp_path):
    tag_photos(tmp_path / "labelled", 4)
    background_photos(tmp_path / "backgrounds", 3)
    model = red_channel_model(tmp_path / "red32", input_size=32)
    out = tmp_path / "out"
    run_generate(depth_config(tmp_path, out, model, num_images=4, eval_fraction=0.25))
    names = sorted(os.listdir(out / "depth" / "train"))
    assert names and all(np.asarray(Image.open(out / "depth" / "train" / n)).shape == (64, 64) for n in names)


@pytest.mark.slow
def test_a_depth_model_that_fails_on_the_canvas_stops_the_run_before_any_image(tmp_path):
    import tensorflow as tf

    class NeedsMultiplesOf32(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
        def __call__(self, image):
            tf.debugging.assert_equal(tf.shape(image)[1] % 32, 0, message="height must be a multiple of 32")
            return {"depth": image[..., :1]}

    module = NeedsMultiplesOf32()
    tf.saved_model.save(module, str(tmp_path / "m32"), signatures={"serving_default": module.__call__})
    tag_photos(tmp_path / "labelled", 3)
    background_photos(tmp_path / "backgrounds", 2)
    with pytest.raises(DepthModelError, match=rf"^{tmp_path}/m32: the model failed on a 72x72 image: "
                                              r"assertion failed: \[height must be a multiple of 32\]"):
        run_generate(depth_config(tmp_path, tmp_path / "out", tmp_path / "m32", canvas_size=72))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_an_interrupted_depth_run_resumes_to_the_bytes_of_an_uninterrupted_one(tmp_path, monkeypatch):
    from spatule_synth.generate.run import OutputWriteError
    tag_photos(tmp_path / "labelled", 4)
    background_photos(tmp_path / "backgrounds", 3)
    model = red_channel_model(tmp_path / "red")
    out = tmp_path / "out"
    expected = reference_run(lambda o, **k: depth_config(tmp_path, o, model, **k), out, num_images=24)
    with disk_full_after(2, monkeypatch), pytest.raises(OutputWriteError):
        run_generate(depth_config(tmp_path, out, model, num_images=24))
    run_generate(depth_config(tmp_path, out, model, num_images=24, resume=True))
    assert tree(out) == expected and any(name.startswith("depth/") for name in expected)
