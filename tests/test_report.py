"""report: the statistics agree with the run, and the pictures exist."""

import json
import re
from html.parser import HTMLParser
from itertools import combinations

import cv2
import numpy as np
import pytest

from spatule_synth.formats.manifest import read_manifest
from spatule_synth.modes import report
from spatule_synth.modes.report import (SplitStatistics, collect_stats, generated_image, generated_images,
                                        log_ticks, stats_figure, write_report)
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


@pytest.mark.slow
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


# --- the pictures and the page are readable ---------------------------------------------------------


def plain_number(label: str) -> float:
    """The value of a tick label written as a plain number: "16", "1/4", "2k" (x 1024), "1M"."""
    match = re.fullmatch(r"(1/)?(\d+)([kM]?)", label)
    assert match, f"tick label {label!r} is not a plain number"
    value = int(match[2]) * {"": 1, "k": 1024, "M": 1024 ** 2}[match[3]]
    return 1 / value if match[1] else float(value)


def figure_stats(tmp_path):
    """stats.json numbers of two splits: boxes from 3x40 to 600x500 (areas 120 to 300k px², aspects
    1/13 to 6), and boxes all 30x60 (one value: the histograms are a single bar)."""
    wide = [[(0, 0, 3, 40), (0, 0, 600, 500), (10, 10, 70, 20), (5, 5, 25, 45)], [(0, 0, 8, 8)], []]
    same = [[(0, 0, 30, 60)] * 3, [(100, 100, 130, 160)]]
    images = {split: [{"name": f"{i:06d}", "objects": [{"class": "tag", "box": list(box)} for box in boxes]}
                      for i, boxes in enumerate(boxes_per_image)]
              for split, boxes_per_image in (("train", wide * 5), ("eval", same))}
    return collect_stats(str(tmp_path), {"mode": "generate", "config": {"canvas_size": 640},
                                         "images": images})


def test_log_panels_have_plain_ordered_tick_labels_that_do_not_overlap(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    stats = figure_stats(tmp_path)
    figure = stats_figure(stats)
    figure.set_dpi(80)  # as plot_stats saves it
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    rows = [figure.axes[0:5], figure.axes[5:10]]  # 5 panels per split, then the colour bars
    seen = {}
    for split, row in zip(("train", "eval"), rows):
        for axis, key in ((row[2], "box_area"), (row[3], "box_aspect")):
            assert axis.get_xscale() == "log"
            labels = [label.get_text() for label in axis.get_xticklabels()]
            values = [plain_number(label) for label in labels]
            assert values == sorted(values) and len(set(values)) == len(values) >= 3, labels
            np.testing.assert_allclose(values, axis.get_xticks())  # each label names its tick
            low, high = axis.get_xlim()
            assert low <= values[0] and values[-1] <= high
            assert low < stats["splits"][split][key]["min"] <= stats["splits"][split][key]["max"] < high
            assert not any(label.get_text() for label in axis.xaxis.get_minorticklabels())
            seen[split, key] = labels
        assert "px²" in row[2].get_xlabel() and "px" in row[1].get_xlabel()
    assert seen["eval", "box_aspect"] == ["1/4", "1/2", "1"]  # all 0.5
    assert seen["eval", "box_area"] == ["1k", "2k", "4k"]  # all 1800 px²
    assert seen["train", "box_area"] == ["256", "4k", "64k"]  # 64 to 300k px² (axis 32 to 512k)
    assert seen["train", "box_aspect"] == ["1/16", "1/4", "1", "4"]  # 3/40 to 6
    texts = []  # every title, axis label and tick label drawn in the figure, none over another
    for axis in figure.axes:
        texts += [axis.title, axis.xaxis.label, axis.yaxis.label]
        for labels, (low, high), coordinate in (
                (axis.get_xticklabels() + axis.get_xticklabels(minor=True), sorted(axis.get_xlim()), 0),
                (axis.get_yticklabels() + axis.get_yticklabels(minor=True), sorted(axis.get_ylim()), 1)):
            texts += [label for label in labels  # the locator's ticks beyond the limits are not drawn
                      if low - 1e-9 * abs(high - low) <= label.get_position()[coordinate]
                      <= high + 1e-9 * abs(high - low)]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_text()]
    assert len(boxes) > 100
    for (one, first), (other, second) in combinations(boxes, 2):
        assert not first.overlaps(second), (one, other)


def test_log_ticks_thin_out_to_at_most_six():
    assert log_ticks(1800, 1800, True) == ((1024, 4096), [1024, 2048, 4096], ["1k", "2k", "4k"])
    assert log_ticks(16, 409_600, True)[2] == ["16", "256", "4k", "64k"]
    assert log_ticks(20, 20_000, True)[2] == ["16", "64", "256", "1k", "4k", "16k"]
    assert log_ticks(1, 1, False)[2] == ["1/2", "1", "2"]
    assert log_ticks(0.1, 10, False)[2] == ["1/16", "1/4", "1", "4", "16"]
    assert log_ticks(2 ** 20, 2 ** 24, True)[2] == ["1M", "4M", "16M"]


class Tables(HTMLParser):
    """Every <table> of a page, nested ones included: ``tables`` in document order, each a list of
    rows, each a list of cells ``{"text": ..., "tables": [nested tables]}``."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tables, self.open, self.ids = [], [], {}
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            table = []
            if self.open and self.open[-1] and self.open[-1][-1]:
                self.open[-1][-1][-1]["tables"].append(table)
            self.tables.append(table)
            self.open.append(table)
            if dict(attrs).get("id"):
                self.ids[dict(attrs)["id"]] = table
        elif tag == "tr":
            self.open[-1].append([])
        elif tag in ("td", "th"):
            self.open[-1][-1].append({"text": "", "tables": []})

    def handle_endtag(self, tag):
        if tag == "table":
            self.open.pop()

    def handle_data(self, data):
        if self.open and self.open[-1] and self.open[-1][-1]:
            self.open[-1][-1][-1]["text"] += data


def name_counts(cell):
    """A nested ``name | count`` table as a dict (the counts as written)."""
    [table] = cell["tables"]
    return {name["text"]: count["text"] for name, count in table}


def test_index_html_shows_the_stats_in_tables(output):
    manifest = read_manifest(str(output))
    problems = [{"kind": "missing_image", "file": f"photos/<{k}>&.xml", "image": None} for k in range(5)]
    problems.append({"kind": "box_clipped", "file": "coco.json", "image": "a.jpg", "object_index": 0})
    write_report(str(output), manifest | {"problems": problems})
    stats = json.loads((output / "report" / "stats.json").read_text())  # as written, not recomputed
    page = (output / "report" / "index.html").read_text()
    tables = Tables(page)
    for table in tables.tables:
        for row in table:
            for cell in row:
                assert "{" not in cell["text"] and "}" not in cell["text"], cell
    splits = tables.tables[0]
    header = [cell["text"] for cell in splits[0]]
    assert header[:3] == ["split", "images", "negatives"]
    assert {"objects per class", "blend modes", "re-drawn as not recognisable"} <= set(header)
    rows = {row[0]["text"]: dict(zip(header, row)) for row in splits[1:]}
    assert set(rows) == set(stats["splits"]) == {"train", "eval"}
    for split, numbers in stats["splits"].items():
        row = rows[split]
        assert int(row["images"]["text"]) == numbers["images"]
        assert int(row["negatives"]["text"]) == numbers["negatives"]
        assert {k: int(v) for k, v in name_counts(row["objects per class"]).items()} == \
            numbers["objects_per_class"]
        assert {k: int(v) for k, v in name_counts(row["blend modes"]).items()} == numbers["blend_modes"]
        visibility = name_counts(row["re-drawn as not recognisable"])
        assert int(visibility["labelled placements"]) == numbers["visibility"]["labelled_placements"]
        assert int(visibility["re-drawn"].split()[0]) == numbers["visibility"]["redrawn"]
        assert int(visibility["dropped"]) == numbers["visibility"]["invisible_dropped"]
        for key in ("mean_rgb", "std_rgb"):
            shown = [float(v) for v in row[f"{key[:-4]} RGB (0-255)"]["text"].split(", ")]
            np.testing.assert_allclose(shown, numbers["pixels"][key], rtol=1e-3)
        boxes = tables.ids[f"boxes-{split}"]
        columns = [cell["text"] for cell in boxes[0]][1:]
        assert {"count", "min", "median", "p95", "max"} <= set(columns)
        measures = {row[0]["text"]: row[1:] for row in boxes[1:]}
        for name, key in (("width (px)", "box_width"), ("height (px)", "box_height"),
                          ("area (px²)", "box_area"), ("aspect (width / height)", "box_aspect")):
            for column, cell in zip(columns, measures[name]):
                assert float(cell["text"]) == pytest.approx(numbers[key][column], rel=1e-3), \
                    (split, name, column)
    assert stats["inputs_skipped_or_noted"] == {"missing_image": 5, "box_clipped": 1}
    skipped = {row[1]["text"]: row for row in tables.tables[-1][1:]}
    assert {kind: int(row[0]["text"]) for kind, row in skipped.items()} == stats["inputs_skipped_or_noted"]
    assert skipped["missing_image"][2]["text"] == "annotation whose image is missing (skipped)"
    assert skipped["missing_image"][3]["text"] == ("photos/<0>&.xml, photos/<1>&.xml, photos/<2>&.xml "
                                                   "and 2 more (all in manifest.json)")
    assert "photos/&lt;0&gt;&amp;.xml" in page  # escaped in the source
    assert skipped["box_clipped"][3]["text"] == "coco.json (image a.jpg)"
