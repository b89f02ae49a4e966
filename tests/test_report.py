"""report: the statistics agree with the run, and the pictures exist."""

import json

import cv2
import numpy as np
import pytest

from spatule_synth.formats.manifest import read_manifest
from spatule_synth.modes import report
from spatule_synth.modes.report import (SplitStatistics, collect_stats, generated_image, generated_images,
                                  write_report)
from spatule_synth.generate.run import run_generate
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
        assert numbers["visibility"] == {"labelled_placements": listed["placements"],
                                         "redrawn": listed["redrawn"],
                                         "invisible_dropped": listed["invisible_dropped"]}
    assert "re-drawn as not recognisable" in (output / "report" / "index.html").read_text()
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


def test_streamed_images_give_the_same_report_as_the_manifest(output, tmp_path):
    manifest = read_manifest(str(output))
    from_manifest = collect_stats(str(output), manifest)
    assert json.loads(json.dumps(from_manifest)) == json.loads((output / "report" / "stats.json").read_text())
    # what a generator streaming its entries from a JSON-lines file would pass: no "images" key
    size = manifest["config"]["canvas_size"]
    lines = {}
    for split, entries in manifest["images"].items():
        lines[split] = tmp_path / f"{split}.jsonl"
        lines[split].write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    slim = {key: value for key, value in manifest.items() if key != "images"}

    def stream(split):
        with open(lines[split], encoding="utf-8") as handle:
            for line in handle:
                yield generated_image(json.loads(line), size, split)

    streamed = {split: (len(entries), stream(split)) for split, entries in manifest["images"].items()}
    (output / "report" / "stats.json").unlink()
    write_report(str(output), slim, streamed)
    assert all(next(images, None) is None for _, images in streamed.values())  # each read once, fully
    written = (output / "report" / "stats.json").read_text()
    assert written == json.dumps(from_manifest, indent=1) + "\n"
    assert json.loads(written)["splits"]["eval"]["pixels"]["images_measured"] == 5


def test_generated_image_is_the_manifest_entry_with_size_and_file():
    entry = {"name": "000007", "objects": [{"class": "tag", "box": [1, 2, 3, 4]}], "placements": []}
    assert generated_image(entry, 640, "eval") == {"width": 640, "height": 640,
                                                  "file": "images/eval/000007.jpg", **entry}
    streams = {split: generated_images([entry], 64, split) for split in ("train", "eval")}
    assert [image["file"] for image in streams["train"]] == ["images/train/000007.jpg"]


BOXES = [  # (x0, y0, x1, y1) per object, per image: repeated sizes, a negative, a tall and a flat box
    [(0, 0, 10, 20), (50, 50, 60, 70), (10, 10, 20, 30)],
    [],
    [(0, 0, 10, 20), (90, 0, 100, 20), (5, 5, 45, 15), (20, 20, 30, 40)],
    [(30, 40, 33, 90)],
    [],
    [(0, 0, 10, 20), (0, 0, 100, 100)],
]


def test_summaries_and_histograms_are_numpy_on_the_expanded_lists(tmp_path):
    images = [{"name": f"{i:06d}", "objects": [{"class": "tag" if j % 2 else "spatula", "box": list(box),
                                                 **({"blend": "poisson"} if j == 0 else {})}
                                                for j, box in enumerate(boxes)],
               "placements": [{"augment": {"blur": 1.0, "hue": 3}} for _ in boxes]}
              for i, boxes in enumerate(BOXES * 7)]
    manifest = {"mode": "generate", "config": {"canvas_size": 100}, "images": {"train": images},
                "problems": [{"kind": "no_annotation"}, {"kind": "no_annotation"}]}
    stats = collect_stats(str(tmp_path), manifest)
    split = stats["splits"]["train"]
    boxes = [box for boxes in BOXES * 7 for box in boxes]
    widths = [x1 - x0 for x0, _, x1, _ in boxes]
    heights = [y1 - y0 for _, y0, _, y1 in boxes]
    expanded = {"box_width": widths, "box_height": heights,
                "box_area": [w * h for w, h in zip(widths, heights)],
                "box_aspect": [w / h for w, h in zip(widths, heights)],
                "objects_per_image": [len(b) for b in BOXES * 7]}
    for key, values in expanded.items():
        summary, array = split[key], np.asarray(values, float)
        assert summary["count"] == array.size
        assert (summary["min"], summary["max"]) == (array.min(), array.max())
        assert summary["mean"] == pytest.approx(array.mean(), rel=1e-12)
        for name, q in (("median", 50), ("p05", 5), ("p95", 95)):
            assert summary[name] == np.percentile(array, q, method="inverted_cdf"), (key, name)
            assert summary[name] in values  # inverted-CDF percentiles are values that occur
        if key != "objects_per_image":
            histogram = summary["histogram"]
            assert sum(histogram["counts"]) == len(boxes) == 70
            assert histogram["counts"] == np.histogram(array, histogram["edges"])[0].tolist()
            assert len(histogram["edges"]) == 21
            assert histogram["edges"][0] == array.min() and histogram["edges"][-1] > array.max()
    assert split["objects_per_image"]["histogram"] == {0: 14, 1: 7, 2: 7, 3: 7, 4: 7}
    assert split["images"] == 42 and split["negatives"] == 14
    assert split["objects_per_class"] == {"spatula": 7 * 6, "tag": 7 * 4}  # even / odd object indices
    assert split["blend_modes"] == {"poisson": 7 * 4}  # first object of each non-empty image
    assert split["augmented_objects"] == {"blur": 70, "hue": 70}
    assert sum(map(sum, split["box_centre_heatmap"])) == 70
    heatmap = split["box_centre_heatmap"]  # [row][column], 16 bins of 100 / 16 px
    assert heatmap[1][0] == 7 * 3  # centre (5, 10): the 10x20 box at the origin, 3 per cycle
    assert heatmap[1][15] == 7 and heatmap[8][8] == 7 and heatmap[9][8] == 7  # (95, 10), (50, 50), (55, 60)
    assert heatmap[15][15] == 0
    assert split["pixels"] == {"images_measured": 0}  # no image files
    assert stats["inputs_skipped_or_noted"] == {"no_annotation": 2}


def test_memory_does_not_grow_with_the_images(tmp_path):
    statistics = SplitStatistics(str(tmp_path), 20_000)
    for i in range(20_000):
        statistics.add({"width": 64, "height": 64, "file": "missing.jpg",
                        "objects": [{"class": "tag", "box": [0, 0, 1 + i % 5, 2 + i % 3]}] * (i % 4)})
    assert len(statistics.sizes) == 15 and len(statistics.per_image) == 4
    result = statistics.result()
    assert result["images"] == 20_000 and result["negatives"] == 5_000
    assert result["box_width"]["count"] == sum(i % 4 for i in range(20_000))


def test_fractional_converted_boxes(tmp_path):
    examples = [{"image": "a.jpg", "width": 50, "height": 40,
                 "objects": [{"name": "tag", "box": [0.5, 1.25, 10.75, 5.5]},
                             {"name": "tag", "box": [2.5, 3.0, 12.75, 7.25]},
                             {"name": "cap", "box": [40.0, 30.0, 49.5, 39.9]}]}] * 3
    stats = collect_stats(str(tmp_path), {"mode": "convert", "examples": examples})
    split = stats["splits"]["records"]
    widths = [10.25, 10.25, 9.5] * 3
    heights = [4.25, 4.25, 39.9 - 30.0] * 3
    assert split["box_width"]["count"] == 9 and split["box_width"]["min"] == 9.5
    assert split["box_width"]["median"] == np.percentile(widths, 50, method="inverted_cdf") == 10.25
    assert split["box_height"]["max"] == max(heights)
    assert split["box_aspect"]["p95"] == np.percentile([w / h for w, h in zip(widths, heights)], 95,
                                                       method="inverted_cdf")
    assert split["objects_per_class"] == {"cap": 3, "tag": 6}


def test_pixels_are_measured_on_the_evenly_spread_sample(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "PIXEL_SAMPLE", 3)
    images = []
    for i in range(10):  # step 10 // 3 = 3: images 0, 3 and 6 (as images[::3][:3])
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), np.full((4, 4, 3), (10 * i, 20 * i, 5 * i), np.uint8))  # BGR
        images.append({"width": 4, "height": 4, "file": str(path), "objects": []})
    stats = collect_stats(str(tmp_path), {"mode": "generate"}, {"train": (10, iter(images))})
    pixels = stats["splits"]["train"]["pixels"]
    sample = np.asarray([(5 * i, 20 * i, 10 * i) for i in (0, 3, 6)], float)  # RGB
    assert pixels["images_measured"] == 3
    np.testing.assert_allclose(pixels["mean_rgb"], sample.mean(axis=0), atol=1e-3)
    np.testing.assert_allclose(pixels["std_rgb"], sample.std(axis=0), atol=1e-3)
