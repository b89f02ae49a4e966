"""``report``: what a run made, in numbers and pictures (``--mode=report``, and at the end of every
generation run unless ``--noreport``).

* ``OUT/report/stats.json``: images, negatives and objects per split and class; objects per image;
  box width, height, area and aspect (width / height) summaries (count, min, max, mean, and median,
  p05 and p95 as inverted-CDF percentiles: values that occur) and histograms; a 16x16 heatmap of
  box centres (shares of the image); per-channel mean and std of the pixels (RGB, 0-255: the
  numbers training configs ask for), measured on up to `PIXEL_SAMPLE` images evenly spread over the
  split; blend modes and augmentations used; labelled placements re-drawn and dropped as not
  recognisable (``visibility``); inputs skipped, by kind.
* ``OUT/report/stats.png``: the histograms and heatmaps (matplotlib, `stats_figure`); box areas
  and aspects on log axes ticked at powers of 2 written as plain numbers (16, 64, 256, 1k, 4k px²;
  1/4, 1/2, 1, 2, 4).
* ``OUT/report/gallery_{train,eval}.png``: contact sheets (`spatule_synth.modes.gallery`);
  with rendered tags or --gan_model instances, ``instances_{photographed,rendered,generated}.png``: the pasted objects of each origin.
* ``OUT/report/scenes_{train,eval}.png`` with ``--scene_outputs``: a row per kind (gallery module);
  index.html gives each kind's exact per-channel pixel mean and std over every image of the split
  (the manifest's ``pixel_stats``, summed while the run wrote them).
* ``OUT/report/index.html``: one page with all of it: the numbers in HTML tables (counts per class,
  blend mode, ... as ``name | count`` tables; box size summaries per split; inputs skipped or noted
  with their files, as the end-of-run summary names them), then the pictures.

Boxes come from the manifest (generate: per image; convert: per example), in pixels, or from a
stream of the same entries (`collect_stats`'s ``split_images``; `generated_image` turns a generate
entry into what it takes). Each image is read once, by a `SplitStatistics` per split, whose memory
does not grow with the number of images: boxes are counted per (width, height), objects per image
per count, centres in a fixed grid, and pixels summed over the sample only.
"""

from __future__ import annotations

import collections
import html
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence

import cv2
import numpy as np

from spatule_synth.modes.gallery import write_galleries, write_instance_galleries, write_scene_galleries
from spatule_synth.formats.manifest import read_manifest
from spatule_synth.core import storage
from spatule_synth.core.images import read_plane
from spatule_synth.core.output_dir import atomic_write_bytes, write_figure
from spatule_synth.core.problems import KINDS, listed_files

PIXEL_SAMPLE = 500
HEATMAP_BINS = 16


def generated_image(entry: dict, canvas_size: int, split: str) -> dict:
    """The image dict `SplitStatistics.add` takes, for one generate-mode manifest entry (an item of
    ``manifest["images"][split]``, or a line of a JSON-lines stream of them): ``width`` and
    ``height`` are ``canvas_size``, ``file`` is ``images/SPLIT/NAME.jpg`` (relative to the output
    dir), and the entry's own keys (``name``, ``objects``, ``placements``, ...) are kept."""
    return {"width": canvas_size, "height": canvas_size, "file": f"images/{split}/{entry['name']}.jpg",
            **entry}


def _converted_image(example: dict) -> dict:
    """The image dict of one convert-mode manifest example."""
    return {"width": example["width"], "height": example["height"], "file": example["image"],
            "objects": [{"class": o["name"], "box": o["box"]} for o in example["objects"]]}


def _split_images(manifest: dict) -> dict[str, tuple[int, Iterable[dict]]]:
    """Per split: (number of images, the images as `SplitStatistics.add` takes them), lazily."""
    if manifest.get("mode") == "convert":
        examples = manifest.get("examples", [])
        return {"records": (len(examples), (_converted_image(e) for e in examples))}
    size = manifest["config"]["canvas_size"]
    return {split: (len(entries), generated_images(entries, size, split))
            for split, entries in manifest.get("images", {}).items()}


def generated_images(entries: Iterable[dict], canvas_size: int, split: str) -> Iterator[dict]:
    """`generated_image` of each of ``entries``, lazily. Use it rather than a generator expression
    written inside a loop or comprehension over the splits: such an expression looks ``split`` up
    when it is iterated, after the loop has moved on, and would file every image under the last
    split (whose pixels then go unmeasured: wrong paths)."""
    return (generated_image(entry, canvas_size, split) for entry in entries)


def _weighted(counts: Mapping[float, int]) -> tuple[np.ndarray, np.ndarray]:
    """``counts`` (value -> multiplicity) as arrays of values (ascending) and their weights."""
    values = sorted(counts)
    return (np.asarray(values, np.float64),
            np.asarray([counts[value] for value in values], np.int64))


def _summary(counts: Mapping[float, int]) -> dict:
    """Count, min, max, mean, median, p05 and p95 of the values ``counts`` holds, each with its
    multiplicity. The percentiles are the inverted-CDF kind (numpy ``method="inverted_cdf"``): the
    smallest value with at least that share of the values at or below it, a value that occurs."""
    values, weights = _weighted({v: c for v, c in counts.items() if c})
    if not values.size:
        return {"count": 0}
    total = int(weights.sum())
    median, p05, p95 = np.percentile(values, [50, 5, 95], weights=weights, method="inverted_cdf")
    return {"count": total, "min": float(values[0]), "max": float(values[-1]),
            "mean": math.fsum(float(v) * int(c) for v, c in zip(values, weights)) / total,
            "median": float(median), "p05": float(p05), "p95": float(p95)}


def _histogram(counts: Mapping[float, int], bins: int = 20, log: bool = False) -> dict:
    """``bins`` equal bins (on a log scale if ``log``) from the smallest to the largest value."""
    values, weights = _weighted({v: c for v, c in counts.items() if c})
    if not values.size:
        return {"edges": [], "counts": []}
    if log:
        lowest = max(float(values[0]), 1e-6)
        edges = np.logspace(np.log10(lowest), np.log10(values[-1] * 1.0001), bins + 1)
        edges[0] = lowest  # 10 ** log10(x) can round above x, which would leave x out
    else:
        edges = np.linspace(values[0], values[-1] + 1e-9, bins + 1)
    histogram, edges = np.histogram(values, edges, weights=weights)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in histogram]}


def _sample_step(count: int) -> int:
    return max(1, count // PIXEL_SAMPLE)


class PixelStatistics:
    """Per-channel pixel sums over the images of a split, fed in order: of a split of ``count``
    images, image ``i`` is measured iff ``i % step == 0 and i // step < PIXEL_SAMPLE`` (step =
    ``max(1, count // PIXEL_SAMPLE)``): up to `PIXEL_SAMPLE` images evenly spread over the split."""

    def __init__(self, output_dir: str, count: int) -> None:
        self.output_dir = output_dir
        self.step = _sample_step(count)
        self.seen = 0
        self.histogram = np.zeros((3, 256), np.int64)  # per RGB channel: pixels of each value
        self.pixels = 0
        self.measured = 0

    def add(self, file: str) -> None:
        """The next image of the split (its path, absolute or relative to the output dir)."""
        index, self.seen = self.seen, self.seen + 1
        if index % self.step or index // self.step >= PIXEL_SAMPLE:
            return
        path = file if os.path.isabs(file) else storage.join(self.output_dir, file)
        bgr = read_plane(path, cv2.IMREAD_COLOR)
        if bgr is None:
            return
        for channel in range(3):  # exact integer counts; 20x faster than float sums of squares
            counts = cv2.calcHist([bgr], [2 - channel], None, [256], [0, 256])
            self.histogram[channel] += counts.reshape(-1).astype(np.int64)
        self.pixels += bgr.shape[0] * bgr.shape[1]
        self.measured += 1

    def result(self) -> dict:
        """``images_measured``, and ``mean_rgb`` and ``std_rgb`` (0-255) if any image was read."""
        if not self.pixels:
            return {"images_measured": 0}
        values = np.arange(256, dtype=np.float64)
        mean = self.histogram @ values / self.pixels
        std = np.sqrt(np.maximum(self.histogram @ values ** 2 / self.pixels - mean ** 2, 0.0))
        return {"images_measured": self.measured, "mean_rgb": [round(float(v), 3) for v in mean],
                "std_rgb": [round(float(v), 3) for v in std]}


class SplitStatistics:
    """The ``stats.json`` numbers of one split, fed one image at a time, in memory independent of
    the number of images.

    ``count`` is the number of images that will be added; it only chooses which ones have their
    pixels measured (`PixelStatistics`). `add` takes an image dict: ``width``, ``height``, ``file``
    (absolute, or relative to ``output_dir``), ``objects`` (each ``class``, ``box`` = ``[x0, y0, x1,
    y1]`` in pixels, optional ``blend``) and optional ``placements`` (each optional ``augment``
    dict). Boxes are kept as a count per (width, height) pair, from which the widths, heights,
    areas and aspects, with their multiplicities, follow exactly; generated boxes are whole pixels,
    so there are at most canvas-size squared pairs (converted boxes may be fractional: the pairs
    are then exact floats, as many as there are distinct sizes)."""

    def __init__(self, output_dir: str, count: int) -> None:
        self.images = 0
        self.sizes: collections.Counter = collections.Counter()  # (box width, box height) -> boxes
        self.per_image: collections.Counter = collections.Counter()  # objects in an image -> images
        self.centres = np.zeros((HEATMAP_BINS, HEATMAP_BINS), int)
        self.classes: collections.Counter = collections.Counter()
        self.blends: collections.Counter = collections.Counter()
        self.augmentations: collections.Counter = collections.Counter()
        self.visibility = collections.Counter()  # generated: labelled placements, re-drawn, dropped
        self.pixels = PixelStatistics(output_dir, count)

    def add(self, image: dict) -> None:
        """Count one image (the next of the split) and its objects."""
        self.images += 1
        self.per_image[len(image["objects"])] += 1
        for obj in image["objects"]:
            x0, y0, x1, y1 = obj["box"]
            self.sizes[(x1 - x0, y1 - y0)] += 1
            self.classes[obj["class"]] += 1
            if "blend" in obj:
                self.blends[obj["blend"]] += 1
            column = min(HEATMAP_BINS - 1, int((x0 + x1) / 2 / image["width"] * HEATMAP_BINS))
            row = min(HEATMAP_BINS - 1, int((y0 + y1) / 2 / image["height"] * HEATMAP_BINS))
            self.centres[row, column] += 1
        for placement in image.get("placements", []):
            self.augmentations.update(key for key in placement.get("augment", {}))
        if "redrawn" in image:
            self.visibility["labelled_placements"] += image["invisible_dropped"] + sum(
                not placement["distractor"] for placement in image["placements"])
            self.visibility["redrawn"] += image["redrawn"]
            self.visibility["invisible_dropped"] += image["invisible_dropped"]
        self.pixels.add(image["file"])

    def result(self) -> dict:
        """The split's entry of ``stats.json["splits"]``."""
        widths: collections.Counter = collections.Counter()
        heights: collections.Counter = collections.Counter()
        areas: collections.Counter = collections.Counter()
        aspects: collections.Counter = collections.Counter()
        for (width, height), boxes in self.sizes.items():
            widths[width] += boxes
            heights[height] += boxes
            areas[width * height] += boxes
            aspects[width / height if height else 0.0] += boxes
        return {
            "images": self.images, "negatives": self.per_image[0],
            "objects_per_class": dict(sorted(self.classes.items())),
            "objects_per_image": {**_summary(self.per_image),
                                  "histogram": {n: c for n, c in sorted(self.per_image.items()) if c}},
            "box_width": {**_summary(widths), "histogram": _histogram(widths)},
            "box_height": {**_summary(heights), "histogram": _histogram(heights)},
            "box_area": {**_summary(areas), "histogram": _histogram(areas, log=True)},
            "box_aspect": {**_summary(aspects), "histogram": _histogram(aspects, log=True)},
            "box_centre_heatmap": self.centres.tolist(),
            "blend_modes": dict(sorted(self.blends.items())),
            "augmented_objects": dict(sorted(self.augmentations.items())),
            **({"visibility": dict(self.visibility)} if self.visibility else {}),
            "pixels": self.pixels.result(),
        }


def collect_stats(output_dir: str, manifest: dict,
                  split_images: Mapping[str, tuple[int, Iterable[dict]]] | None = None) -> dict:
    """The numbers of ``stats.json`` (module docstring), reading each image dict once.

    ``split_images``: per split, (number of images, the image dicts as `SplitStatistics.add` takes
    them, e.g. `generated_image` of each entry of a stream); if None, taken from the manifest
    (generate: ``manifest["images"]``; convert: ``manifest["examples"]``), which otherwise needs
    only ``mode`` and ``problems``."""
    if split_images is None:
        split_images = _split_images(manifest)
    stats: dict = {"mode": manifest.get("mode"), "splits": {}}
    for split, (count, images) in split_images.items():
        accumulator = SplitStatistics(output_dir, count)
        for image in images:
            accumulator.add(image)
        stats["splits"][split] = accumulator.result()
    problems = collections.Counter(p["kind"] for p in manifest.get("problems", []))
    stats["inputs_skipped_or_noted"] = dict(sorted(problems.items()))
    return stats


def _power_of_two_label(exponent: int, units: bool) -> str:
    """2 ** ``exponent`` as plain text: ``"1/4"``, ``"1"``, ``"512"``; with ``units``, multiples of
    1024 read ``"2k"``, ``"64k"``, ``"1M"`` (k = 1024, M = 1024²: box areas of 32², 1024² px)."""
    if exponent < 0:
        return f"1/{2 ** -exponent}"
    if units and exponent >= 20:
        return f"{2 ** (exponent - 20)}M"
    if units and exponent >= 10:
        return f"{2 ** (exponent - 10)}k"
    return str(2 ** exponent)


def log_ticks(low: float, high: float, units: bool,
              most: int = 6) -> tuple[tuple[float, float], list[float], list[str]]:
    """Limits, tick values and tick labels of a log axis showing ``low`` .. ``high`` (> 0).

    The limits are the powers of 2 around the values with at least a quarter octave to spare, and
    at least 2 octaves apart; the ticks are the powers of 2 between them (every one; or every 2nd:
    ..., 16, 64, 256, 1k, ...; or every 4th, ...: the first that gives at most ``most``, so 3 to
    ``most`` ticks), labelled as plain numbers (`_power_of_two_label`)."""
    low, high = math.log2(max(low, 1e-6)), math.log2(max(high, low, 1e-6))
    lowest, highest = math.floor(low - 0.25), math.ceil(high + 0.25)
    if highest - lowest < 2:  # one more octave on the side with less room
        if low - lowest < highest - high:
            lowest -= 1
        else:
            highest += 1
    step = 1
    while highest // step - -(-lowest // step) + 1 > most:
        step *= 2
    exponents = range(-(-lowest // step) * step, highest // step * step + 1, step)
    return ((2.0 ** lowest, 2.0 ** highest), [2.0 ** e for e in exponents],
            [_power_of_two_label(e, units) for e in exponents])


def _shown(histogram: dict, log: bool) -> tuple[list[int], list[float]]:
    """A histogram's counts and edges as drawn: the histogram of one value (edges a hair apart) is
    widened to one visible bar around it (a 16th of an octave on a log axis, 1 px on a linear one)."""
    counts, edges = histogram["counts"], histogram["edges"]
    low, high = edges[0], edges[-1]
    if log and high / low < 1.01:
        return [sum(counts)], [low * 2 ** -(1 / 32), low * 2 ** (1 / 32)]
    if not log and high - low < 0.5:
        return [sum(counts)], [low - 0.5, low + 0.5]
    return counts, edges


def stats_figure(stats: dict):
    """The ``stats.png`` figure (a matplotlib ``Figure``, not saved): one row per split with
    images: objects per image, box width and height, box area and aspect (log axes, ticks at powers
    of 2 labelled as plain numbers: `log_ticks`), box centres."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedFormatter, FixedLocator, MaxNLocator, NullFormatter

    splits = [s for s, v in stats["splits"].items() if v["images"]]
    rows = max(1, len(splits))
    figure = Figure(figsize=(22, 4.2 * rows))
    axes = figure.subplots(rows, 5, squeeze=False)
    for row, split in zip(axes, splits):
        data = stats["splits"][split]
        counts = data["objects_per_image"]["histogram"]
        row[0].bar([int(k) for k in counts], list(counts.values()), color="tab:blue")
        row[0].set(title=f"{split}: objects per image", xlabel="objects in the image",
                   ylabel="images")
        row[0].xaxis.set_major_locator(MaxNLocator(integer=True))
        for key, colour in (("box_width", "tab:orange"), ("box_height", "tab:green")):
            histogram = data[key]["histogram"]
            if histogram["counts"]:
                row[1].stairs(*_shown(histogram, False), label=key[4:], color=colour)
        row[1].set(title=f"{split}: box width and height", xlabel="box side (px)", ylabel="objects")
        row[1].xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        row[1].legend()
        for axis, key, title, xlabel, units in (
                (row[2], "box_area", "box area", "width × height (px², log scale; 1k = 1024)", True),
                (row[3], "box_aspect", "box aspect", "width / height (log scale)", False)):
            histogram, summary = data[key]["histogram"], data[key]
            if histogram["counts"]:
                axis.stairs(*_shown(histogram, True), fill=True, color="tab:purple")
                axis.set_xscale("log")
                limits, ticks, labels = log_ticks(summary["min"], summary["max"], units)
                axis.set_xlim(*limits)
                axis.xaxis.set_major_locator(FixedLocator(ticks))
                axis.xaxis.set_major_formatter(FixedFormatter(labels))
                octaves = range(round(math.log2(limits[0])), round(math.log2(limits[1])) + 1)
                axis.xaxis.set_minor_locator(FixedLocator([2.0 ** e for e in octaves]))  # unlabelled
                axis.xaxis.set_minor_formatter(NullFormatter())
            axis.set(title=f"{split}: {title}", xlabel=xlabel, ylabel="objects")
        heat = row[4].imshow(np.asarray(data["box_centre_heatmap"]), extent=(0, 1, 1, 0), cmap="magma")
        row[4].set(title=f"{split}: box centres", xlabel="centre x / image width",
                   ylabel="centre y / image height")
        colourbar = figure.colorbar(heat, ax=row[4])
        colourbar.set_label("objects")
        colourbar.locator = MaxNLocator(integer=True)
        colourbar.update_ticks()
        for axis in row[:4]:
            axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    figure.tight_layout()
    return figure


def plot_stats(stats: dict, path: str) -> None:
    """Write `stats_figure` to ``path`` (PNG, 80 dpi)."""
    write_figure(stats_figure(stats), path, dpi=80)


def _number(value: float) -> str:
    """A number as plain text, never scientific: whole numbers as integers, others to 4 significant
    digits or 1 decimal (``"1843.3"``, ``"12.35"``, ``"0.4123"``)."""
    if float(value).is_integer():
        return str(int(value))
    digits = max(1, 3 - math.floor(math.log10(abs(value))))
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


def _cell(content: str, number: bool = False) -> str:
    """A ``<td>`` holding ``content`` (HTML already escaped), right-aligned if ``number``."""
    return f'<td class="n">{content}</td>' if number else f"<td>{content}</td>"


def _counts_table(counts: Mapping[str, int | str]) -> str:
    """``name | count`` rows (the names escaped), or "none"."""
    if not counts:
        return "none"
    return '<table class="counts">' + "".join(
        f"<tr>{_cell(html.escape(str(name)))}{_cell(html.escape(str(count)), True)}</tr>"
        for name, count in counts.items()) + "</table>"


def _visibility_table(visibility: dict | None) -> str:
    """Labelled placements, re-drawn (and share), dropped; "not counted" for runs without them."""
    if not visibility:
        return "not counted"
    total = visibility.get("labelled_placements", 0)
    redrawn = visibility.get("redrawn", 0)
    share = f" ({redrawn / total:.1%})" if total else ""
    return _counts_table({"labelled placements": total, "re-drawn": f"{redrawn}{share}",
                          "dropped": visibility.get("invisible_dropped", 0)})


# stats.json key -> (row name in the box size table, unit)
BOX_SUMMARIES = {"box_width": ("width", "px"), "box_height": ("height", "px"),
                 "box_area": ("area", "px²"), "box_aspect": ("aspect", "width / height")}
SUMMARY_COLUMNS = ("count", "min", "p05", "median", "mean", "p95", "max")


def _box_table(split: str, data: dict) -> str:
    """The box size summaries of one split: a row per measure, a column per summary number."""
    rows = "".join(
        "<tr>" + _cell(f"{name} ({html.escape(unit)})")
        + "".join(_cell(_number(data[key][column]) if column in data[key] else "–", True)
                  for column in SUMMARY_COLUMNS) + "</tr>"
        for key, (name, unit) in BOX_SUMMARIES.items())
    return (f'<h3>{html.escape(split)}</h3><table class="boxes" id="boxes-{html.escape(split)}">'
            "<tr><th>box</th>" + "".join(f"<th>{c}</th>" for c in SUMMARY_COLUMNS) + "</tr>"
            + rows + "</table>")


def _problems_table(skipped: Mapping[str, int], problems: Sequence[dict]) -> str:
    """Count, kind, meaning and files (`listed_files`) of each kind of input skipped or noted."""
    if not skipped:
        return "<p>none</p>"
    places: dict[str, list[tuple[str, str | None]]] = collections.defaultdict(list)
    for problem in problems:
        places[problem.get("kind", "")].append((problem.get("file", ""), problem.get("image")))
    rows = "".join(
        "<tr>" + _cell(str(count), True) + _cell(html.escape(kind))
        + _cell(html.escape(KINDS.get(kind, ("",))[0]))
        + _cell(html.escape(listed_files(places[kind]))) + "</tr>"
        for kind, count in skipped.items())
    return ('<table class="problems"><tr><th>count</th><th>kind</th><th>what it means</th>'
            f"<th>files</th></tr>{rows}</table>")


def _domain_html(comparisons) -> str:
    """The ``--compare_to`` table: per measure, both runs' percentiles, overlap, coverage, advice."""
    if not comparisons:
        return ""
    rows = "".join(
        "<tr>" + _cell(html.escape(c.measure)) + _cell(" / ".join(_number(v) for v in c.real))
        + _cell(" / ".join(_number(v) for v in c.synthetic)) + _cell(f"{c.overlap:.2f}", True)
        + _cell(f"{c.coverage:.0%}", True) + _cell(html.escape(c.warning) or "covered") + "</tr>"
        for c in comparisons)
    return ("<h2>domain match (--compare_to)</h2><table><tr><th>measure</th><th>real p5 / p50 / p95</th>"
            "<th>synthetic p5 / p50 / p95</th><th>overlap</th><th>coverage</th><th></th></tr>" + rows
            + '</table><img src="domain.png">')


def _scene_stats_html(scene_stats: Mapping[str, dict]) -> str:
    """Per split and kind, the exact pixel mean and std of every image (manifest ``pixel_stats``)."""
    if not scene_stats:
        return ""
    rows = "".join(
        "<tr>" + _cell(html.escape(split)) + _cell(html.escape(kind))
        + _cell(", ".join(f"{v:.4f}" for v in values["mean"])) + _cell(", ".join(f"{v:.4f}" for v in values["std"]))
        + "</tr>" for split, kinds in scene_stats.items() for kind, values in kinds.items())
    return ('<h2>scene outputs: pixel mean and std</h2><p>Every image of the split, per channel, as '
            'fractions of full scale (255; 65535 for depth).</p><table class="scene-stats"><tr>'
            "<th>split</th><th>kind</th><th>mean</th><th>std</th></tr>" + rows + "</table>")


def _html(stats: dict, galleries: list[str], problems: Sequence[dict] = (), comparisons=(),
          scene_stats: Mapping[str, dict] | None = None) -> str:
    """``index.html``: a table of the splits, the box sizes per split, the inputs skipped or noted
    (``problems``: the manifest's, for their files), the per-kind pixel statistics of the scene
    outputs, the plots and the galleries."""
    rows = []
    for split, data in stats["splits"].items():
        pixels = data["pixels"]
        rows.append("<tr>" + _cell(html.escape(split)) + _cell(str(data["images"]), True)
                    + _cell(str(data["negatives"]), True)
                    + _cell(_counts_table(data["objects_per_class"]))
                    + _cell(_counts_table(data["blend_modes"]))
                    + _cell(_counts_table(data["augmented_objects"]))
                    + _cell(_visibility_table(data.get("visibility")))
                    + _cell(str(pixels["images_measured"]), True)
                    + "".join(_cell(", ".join(_number(v) for v in pixels[key]) if key in pixels
                                    else "–") for key in ("mean_rgb", "std_rgb"))
                    + "</tr>")
    boxes = "".join(_box_table(split, data) for split, data in stats["splits"].items())
    pictures = "".join(f'<h2>{html.escape(os.path.basename(g))}</h2><img src="{html.escape(os.path.basename(g))}">'
                       for g in galleries)
    return ("<!doctype html><meta charset=utf-8><title>spatule_synth report</title>"
            "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px;vertical-align:top}td.n{text-align:right}"
            "table.counts td{border:none;padding:0 6px 0 0}img{max-width:100%}</style>"
            "<h1>spatule_synth report</h1>"
            '<h2>splits</h2><table class="splits"><tr><th>split</th><th>images</th><th>negatives</th>'
            "<th>objects per class</th><th>blend modes</th><th>augmented objects</th>"
            "<th>re-drawn as not recognisable</th><th>images measured (pixels)</th>"
            "<th>mean RGB (0-255)</th><th>std RGB (0-255)</th></tr>" + "".join(rows) + "</table>"
            "<h2>box sizes</h2>" + boxes
            + "<h2>inputs skipped or noted</h2>"
            + _problems_table(stats["inputs_skipped_or_noted"], problems)
            + _domain_html(comparisons) + _scene_stats_html(scene_stats or {})
            + '<h2>distributions</h2><img src="stats.png">' + pictures)


def write_report(output_dir: str, manifest: dict | None = None,
                 split_images: Mapping[str, tuple[int, Iterable[dict]]] | None = None,
                 compare_to: str = "", warnings: list[str] | None = None) -> list[str]:
    """Write the report of the run in ``output_dir`` (its ``manifest``, read from disk if None: a
    generation run reports before writing its manifest, which comes last); the files written.
    ``split_images``: as for `collect_stats` (the images streamed instead of listed in the manifest).
    ``compare_to``: a run of the real photos the detector will face (`spatule_synth.modes.domain`);
    its warnings are appended to ``warnings``."""
    if manifest is None:
        manifest = read_manifest(output_dir)
    folder = storage.join(output_dir, "report")
    storage.makedirs(folder)
    stats = collect_stats(output_dir, manifest, split_images)
    written = [os.path.join(folder, "stats.json")]
    atomic_write_bytes(written[0], (json.dumps(stats, indent=1) + "\n").encode("utf-8"))
    written.append(os.path.join(folder, "stats.png"))
    plot_stats(stats, written[-1])
    pictures = []
    if manifest.get("mode") == "generate":
        pictures = write_galleries(output_dir)
        pictures += write_instance_galleries(output_dir, manifest.get("images", {}).get("train", ()))
        scene_kinds = manifest.get("config", {}).get("scene_outputs") or ()
        if scene_kinds:
            pictures += write_scene_galleries(output_dir, scene_kinds)
    written += pictures
    comparisons = []
    if compare_to:
        from spatule_synth.modes.domain import write_domain_report
        domain_files, comparisons = write_domain_report(output_dir, compare_to, manifest)
        written += domain_files
        if warnings is not None:
            warnings += [c.warning for c in comparisons if c.warning]
    written.append(os.path.join(folder, "index.html"))
    scene_stats = {split: data["pixel_stats"] for split, data in manifest.get("splits", {}).items()
                   if data.get("pixel_stats")}
    atomic_write_bytes(written[-1], _html(stats, pictures, manifest.get("problems", []), comparisons,
                                          scene_stats).encode("utf-8"))
    return written
