"""The conditional GAN: crops, training (seeded, resumable, evaluated) and generated instances in
generate. Everything that imports TensorFlow is marked slow."""

import filecmp
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from spatule_synth.core.boxes import Box
from spatule_synth.core.config import GenerateConfig
from spatule_synth.gan.crops import on_checkerboard, square_crop, to_uint8
from spatule_synth.generate.cutouts import Cutout, CutoutPart
from conftest import background_photos, tag_photos

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_crop_is_the_object_box_letterboxed_with_a_transparent_border():
    pixels = np.zeros((30, 50, 3), np.uint8)
    pixels[8:22, 8:42] = 200  # the object: 34 x 14, inside an 8 px margin
    alpha = np.zeros((30, 50), np.uint8)
    alpha[8:22, 8:42] = 255
    cutout = Cutout("c", "c", pixels, alpha, Box(8, 8, 42, 22), (CutoutPart("tag", 1, alpha, 0),), "c.jpg")
    crop = to_uint8(square_crop(cutout, 34))
    assert crop.shape == (34, 34, 4)
    assert (crop[10:24, :, 3] == 255).all() and (crop[:10, :, 3] == 0).all() and (crop[24:, :, 3] == 0).all()
    assert (crop[10:24, :, :3] == 200).all()
    assert on_checkerboard(crop).shape == (68, 68, 3)


def test_gan_train_refuses_flags_it_does_not_read():
    done = subprocess.run([sys.executable, "-m", "spatule_synth.gan", "train", "--output=/tmp/x",
                           "--input_dirs=spatule_synth/demo_data/labelled", "--num_images=5"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: --num_images not used by gan train (see python -m "
                                   "spatule_synth.gan --help)")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """2 epochs on 12 tag cutouts (6 photos x 2 tags), 32x32."""
    root = tmp_path_factory.mktemp("gan")
    tag_photos(root / "labelled", 6)
    background_photos(root / "backgrounds", 4, size=(260, 200))
    done = subprocess.run([sys.executable, "-m", "spatule_synth.gan", "train", f"--output={root / 'model'}",
                           f"--input_dirs={root / 'labelled'}", "--gan_epochs=2", "--gan_eval_every=1",
                           "--seed=3"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    return root, done.stdout


@pytest.mark.slow
def test_training_writes_a_model_samples_checkpoints_and_its_evaluation(tiny_model):
    root, stdout = tiny_model
    model = root / "model"
    assert sorted(os.listdir(model)) == ["checkpoints", "gan.json", "generator.keras", "samples"]
    assert sorted(os.listdir(model / "samples")) == ["epoch_0001.png", "epoch_0002.png"]
    info = json.loads((model / "gan.json").read_text())
    assert info["classes"] == ["tag"] and info["size"] == 32 and info["training_crops"] == 12
    assert info["typical_sizes"] == {"tag": [30, 20]}
    assert [e["epoch"] for e in info["evaluation"]] == [1, 2]
    assert all(0.0 <= e["two_sample_accuracy"] <= 1.0 and e["nearest_median"] > 0 for e in info["evaluation"])
    assert "training crops: 12 (tag: 12)" in stdout and "two-sample test accuracy" in stdout


@pytest.mark.slow
def test_resume_continues_after_the_last_epoch(tiny_model, tmp_path):
    root, _ = tiny_model
    import shutil
    shutil.copytree(root / "model", tmp_path / "model")
    done = subprocess.run([sys.executable, "-m", "spatule_synth.gan", "train", f"--output={tmp_path / 'model'}",
                           f"--input_dirs={root / 'labelled'}", "--gan_epochs=3", "--seed=3", "--resume"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads((tmp_path / "model" / "gan.json").read_text())
    assert [e["epoch"] for e in info["evaluation"]] == [1, 2, 3]
    again = subprocess.run([sys.executable, "-m", "spatule_synth.gan", "train", f"--output={tmp_path / 'model'}",
                            f"--input_dirs={root / 'labelled'}"], capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 1 and "is not empty: pass --resume" in again.stderr


@pytest.mark.slow
def test_generate_pastes_generated_instances_in_train_only_with_the_same_bytes_for_any_workers(tiny_model, tmp_path):
    from spatule_synth.generate.run import run_generate
    root, _ = tiny_model
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        run_generate(GenerateConfig.from_settings(
            input_dirs=(str(root / "labelled"),), background_dirs=(str(root / "backgrounds"),),
            output_dir=str(out), num_images=24, canvas_size=128, eval_fraction=0.3, seed=2,
            num_workers=workers, gan_model=str(root / "model"), gan_instances=20, gan_fraction=0.5,
            blend=("paste",)))  # a 2-epoch generator's blobs do not survive seamless cloning
        outputs.append(out)
    manifest = json.loads((outputs[0] / "manifest.json").read_text())
    train = [c for c in manifest["splits"]["train"]["cutouts"] if c.startswith("gan:")]
    assert len(train) == 20 and not any(c.startswith("gan:") for c in manifest["splits"]["eval"]["cutouts"])
    pasted = [o for e in manifest["images"]["train"] for o in e["objects"] if o["cutout"].startswith("gan:")]
    assert pasted
    assert (outputs[0] / "report" / "instances_generated.png").exists()
    for folder, _, files in os.walk(outputs[0] / "images"):
        for name in files:
            path = os.path.join(folder, name)
            assert filecmp.cmp(path, os.path.join(outputs[1], os.path.relpath(path, outputs[0])), shallow=False)
    for name in ("train.record", "eval.record"):
        assert filecmp.cmp(outputs[0] / "annotations" / name, outputs[1] / "annotations" / name, shallow=False)


@pytest.mark.slow
def test_the_two_sample_test_tells_an_untrained_generator_apart_and_copies_have_distance_zero(tiny_model):
    import tensorflow as tf
    from spatule_synth.core.config import InputsConfig, PlacementConfig, SplitConfig
    from spatule_synth.core.problems import ProblemLog
    from spatule_synth.formats.label_map import LabelMap
    from spatule_synth.gan.crops import crop_set
    from spatule_synth.gan.evaluation import nearest_distances, two_sample_accuracy
    from spatule_synth.gan.model import LATENT_DIM, build_generator
    from spatule_synth.generate.sources import read_sources
    root, _ = tiny_model
    tag_photos(root / "more", 20, seed=5)
    sources = read_sources(InputsConfig(input_dirs=(str(root / "more"),)), SplitConfig(), PlacementConfig(),
                           LabelMap.from_names(["tag"]), ProblemLog(), backgrounds_required=False)
    real = crop_set(list(sources.cutouts), ["tag"], 32).crops
    assert len(real) == 40
    tf.keras.utils.set_random_seed(0)
    untrained = build_generator(1, 32)
    noise = np.random.default_rng(0).normal(size=(40, LATENT_DIM)).astype(np.float32)
    fake = untrained([tf.constant(noise), tf.one_hot(np.zeros(40, np.int32), 1)], training=False).numpy()
    assert two_sample_accuracy(real, fake, seed=1) >= 0.95
    assert np.all(nearest_distances(real[:5], real) < 1e-6)  # a memorised copy is at distance 0
    assert np.all(nearest_distances(real, real, exclude_self=True) > 0)


def test_a_folder_that_is_not_a_finished_model_is_refused_by_name(tmp_path):
    from spatule_synth.generate.run import run_generate
    from spatule_synth.generate.sources import SourceError
    tag_photos(tmp_path / "labelled", 4)
    background_photos(tmp_path / "backgrounds", 3, size=(260, 200))
    (tmp_path / "model").mkdir()
    config = GenerateConfig.from_settings(
        input_dirs=(str(tmp_path / "labelled"),), background_dirs=(str(tmp_path / "backgrounds"),),
        output_dir=str(tmp_path / "out"), num_images=4, canvas_size=128, gan_model=str(tmp_path / "model"))
    with pytest.raises(SourceError, match=rf"^--gan_model={tmp_path / 'model'}: cannot read gan.json \("):
        run_generate(config)
    assert not (tmp_path / "out").exists()


def test_flags_of_a_flagfile_that_gan_train_does_not_read_are_one_warning(tmp_path):
    flagfile = tmp_path / "shared.flags"
    flagfile.write_text("--mode=generate\n--input_dirs=spatule_synth/demo_data/labelled\n--num_images=5\n")
    done = subprocess.run([sys.executable, "-m", "spatule_synth.gan", "train", f"--flagfile={flagfile}"],
                          capture_output=True, text=True, cwd=REPO)
    lines = [line for line in done.stderr.splitlines() if line.startswith(("warning:", "error:"))]
    assert lines == ["warning: gan train ignores these flags of the --flagfile: --mode, --num_images",
                     "error: --output (the model folder) is required (see python -m spatule_synth.gan --help)"]
    typed = subprocess.run([sys.executable, "-m", "spatule_synth.gan", "train", f"--flagfile={flagfile}",
                            "--num_images=3", "--output=/tmp/unused"], capture_output=True, text=True, cwd=REPO)
    assert typed.returncode == 2 and typed.stderr.strip().endswith(
        "error: --num_images not used by gan train (see python -m spatule_synth.gan --help)")
