"""report: the statistics agree with the run, and the pictures exist."""

import json

import cv2
import numpy as np
import pytest

from spatule_synth.manifest import read_manifest
from spatule_synth.report import collect_stats, write_report
from spatule_synth.synthesize import run_generate
from test_cli import run
from test_generate import background_photos, config_for, tag_photos


@pytest.fixture
def output(tmp_path):
    tag_photos(tmp_path / "labelled", 6)
    background_photos(tmp_path / "backgrounds", 6)
    out = tmp_path / "out"
    run_generate(config_for(tmp_path, out, num_images=20, negative_fraction=0.1, report=True))
    return out


def test_generation_ends_with_a_report_that_matches_the_manifest(output):
    stats = json.loads((output / "report" / "stats.json").read_text())
    manifest = read_manifest(str(output))
    for split in ("train", "eval"):
        numbers, listed = stats["splits"][split], manifest["splits"][split]
        assert numbers["images"] == listed["images"] and numbers["negatives"] == listed["negatives"]
        assert numbers["objects_per_class"] == listed["objects_per_class"]
        objects = [o for image in manifest["images"][split] for o in image["objects"]]
        assert numbers["box_width"]["count"] == len(objects)
        assert sum(map(sum, numbers["box_centre_heatmap"])) == len(objects)
        assert sum(numbers["objects_per_image"]["histogram"].values()) == listed["images"]
    for name in ("stats.png", "gallery_train.png", "gallery_eval.png", "index.html"):
        assert (output / "report" / name).stat().st_size > 0
    assert cv2.imread(str(output / "report" / "stats.png")) is not None


def test_pixel_statistics_are_the_images_mean_and_std(output):
    stats = collect_stats(str(output), read_manifest(str(output)))
    paths = sorted((output / "images" / "eval").glob("*.jpg"))
    pixels = np.concatenate([cv2.imread(str(path))[..., ::-1].reshape(-1, 3) for path in paths]).astype(float)
    measured = stats["splits"]["eval"]["pixels"]
    assert measured["images_measured"] == len(paths) == 5
    np.testing.assert_allclose(measured["mean_rgb"], pixels.mean(axis=0), atol=1e-3)
    np.testing.assert_allclose(measured["std_rgb"], pixels.std(axis=0), atol=1e-3)


def test_report_mode_on_a_finished_run_and_on_a_convert_run(output, tmp_path, quirks_dir):
    (output / "report" / "stats.json").unlink()
    done = run("--mode=report", f"--output_dir={output}")
    assert done.returncode == 0 and (output / "report" / "stats.json").exists(), done.stderr
    converted = tmp_path / "converted"
    assert run("--mode=convert", f"--input_dirs={quirks_dir / 'photos'}", f"--output_dir={converted}").returncode == 0
    written = write_report(str(converted))
    stats = json.loads((converted / "report" / "stats.json").read_text())
    assert stats["splits"]["records"]["objects_per_class"] == \
        read_manifest(str(converted))["counts"]["objects_per_class"] == {"tag": 4}
    assert str(converted / "report" / "index.html") in written
    done = run("--mode=report", f"--output_dir={tmp_path / 'nothing'}")
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1].startswith("error: ")
