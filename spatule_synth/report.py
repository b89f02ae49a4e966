"""``report``: what a run made, in numbers and pictures (``--mode=report``, and at the end of every
generation run unless ``--noreport``).

* ``OUT/report/stats.json``: images, negatives and objects per split and class; objects per image;
  box width, height, area and aspect (width / height) summaries and histograms; a 16x16 heatmap of
  box centres (shares of the image); per-channel mean and std of the pixels (RGB, 0-255: the
  numbers training configs ask for), measured on up to `PIXEL_SAMPLE` images evenly spread over the
  split; blend modes and augmentations used; inputs skipped, by kind.
* ``OUT/report/stats.png``: the histograms and heatmaps (matplotlib).
* ``OUT/report/gallery_{train,eval}.png``: contact sheets (`spatule_synth.gallery`).
* ``OUT/report/index.html``: one page with all of it.

Boxes come from the manifest (generate: per image; convert: per example), in pixels.
"""

from __future__ import annotations

import collections
import html
import json
import os

import cv2
import numpy as np

from spatule_synth.gallery import write_galleries
from spatule_synth.manifest import MANIFEST_NAME
from spatule_synth.output_dir import atomic_write_bytes

PIXEL_SAMPLE = 500
HEATMAP_BINS = 16


def _split_images(manifest: dict) -> dict[str, list[dict]]:
    """Per split: images as dicts with ``width``, ``height``, ``objects`` (class, box, blend?)."""
    if manifest.get("mode") == "convert":
        return {"records": [{"width": e["width"], "height": e["height"], "file": e["image"],
                             "objects": [{"class": o["name"], "box": o["box"]} for o in e["objects"]]}
                            for e in manifest.get("examples", [])]}
    size = manifest["config"]["canvas_size"]
    return {split: [{"width": size, "height": size, "file": f"images/{split}/{image['name']}.jpg",
                     **image} for image in images]
            for split, images in manifest.get("images", {}).items()}


def _summary(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    array = np.asarray(values, np.float64)
    return {"count": int(array.size), "min": float(array.min()), "max": float(array.max()),
            "mean": float(array.mean()), "median": float(np.median(array)),
            "p05": float(np.percentile(array, 5)), "p95": float(np.percentile(array, 95))}


def _histogram(values: list[float], bins: int = 20, log: bool = False) -> dict:
    if not values:
        return {"edges": [], "counts": []}
    array = np.asarray(values, np.float64)
    if log:
        edges = np.logspace(np.log10(max(array.min(), 1e-6)), np.log10(array.max() * 1.0001), bins + 1)
    else:
        edges = np.linspace(array.min(), array.max() + 1e-9, bins + 1)
    counts, edges = np.histogram(array, edges)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def pixel_statistics(output_dir: str, images: list[dict]) -> dict:
    """Per-channel mean and std (RGB, 0-255) over up to PIXEL_SAMPLE evenly spread images."""
    if not images:
        return {"images_measured": 0}
    step = max(1, len(images) // PIXEL_SAMPLE)
    total = np.zeros(3)
    squares = np.zeros(3)
    pixels = 0
    measured = 0
    for image in images[::step][:PIXEL_SAMPLE]:
        path = image["file"] if os.path.isabs(image["file"]) else os.path.join(output_dir, image["file"])
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        rgb = bgr[..., ::-1].reshape(-1, 3).astype(np.float64)
        total += rgb.sum(axis=0)
        squares += (rgb ** 2).sum(axis=0)
        pixels += rgb.shape[0]
        measured += 1
    if not pixels:
        return {"images_measured": 0}
    mean = total / pixels
    std = np.sqrt(np.maximum(squares / pixels - mean ** 2, 0.0))
    return {"images_measured": measured, "mean_rgb": [round(float(v), 3) for v in mean],
            "std_rgb": [round(float(v), 3) for v in std]}


def collect_stats(output_dir: str, manifest: dict) -> dict:
    """The numbers of ``stats.json`` (module docstring)."""
    stats: dict = {"mode": manifest.get("mode"), "splits": {}}
    for split, images in _split_images(manifest).items():
        widths, heights, areas, aspects, per_image = [], [], [], [], []
        centres = np.zeros((HEATMAP_BINS, HEATMAP_BINS), int)
        classes: collections.Counter = collections.Counter()
        blends: collections.Counter = collections.Counter()
        augmentations: collections.Counter = collections.Counter()
        for image in images:
            per_image.append(len(image["objects"]))
            for obj in image["objects"]:
                x0, y0, x1, y1 = obj["box"]
                width, height = x1 - x0, y1 - y0
                widths.append(width)
                heights.append(height)
                areas.append(width * height)
                aspects.append(width / height if height else 0.0)
                classes[obj["class"]] += 1
                if "blend" in obj:
                    blends[obj["blend"]] += 1
                column = min(HEATMAP_BINS - 1, int((x0 + x1) / 2 / image["width"] * HEATMAP_BINS))
                row = min(HEATMAP_BINS - 1, int((y0 + y1) / 2 / image["height"] * HEATMAP_BINS))
                centres[row, column] += 1
            for placement in image.get("placements", []):
                augmentations.update(key for key in placement.get("augment", {}))
        stats["splits"][split] = {
            "images": len(images), "negatives": sum(1 for n in per_image if n == 0),
            "objects_per_class": dict(sorted(classes.items())),
            "objects_per_image": {**_summary(per_image),
                                  "histogram": dict(sorted(collections.Counter(per_image).items()))},
            "box_width": {**_summary(widths), "histogram": _histogram(widths)},
            "box_height": {**_summary(heights), "histogram": _histogram(heights)},
            "box_area": {**_summary(areas), "histogram": _histogram(areas, log=True)},
            "box_aspect": {**_summary(aspects), "histogram": _histogram(aspects, log=True)},
            "box_centre_heatmap": centres.tolist(),
            "blend_modes": dict(sorted(blends.items())),
            "augmented_objects": dict(sorted(augmentations.items())),
            "pixels": pixel_statistics(output_dir, images),
        }
    problems = collections.Counter(p["kind"] for p in manifest.get("problems", []))
    stats["inputs_skipped_or_noted"] = dict(sorted(problems.items()))
    return stats


def plot_stats(stats: dict, path: str) -> None:
    """``stats.png``: one row per split: objects per image, box sizes, areas, aspects, centres."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    splits = [s for s, v in stats["splits"].items() if v["images"]]
    figure, axes = pyplot.subplots(max(1, len(splits)), 5, figsize=(22, 4.2 * max(1, len(splits))),
                                   squeeze=False)
    for row, split in zip(axes, splits):
        data = stats["splits"][split]
        counts = data["objects_per_image"]["histogram"]
        row[0].bar([int(k) for k in counts], list(counts.values()), color="tab:blue")
        row[0].set(title=f"{split}: objects per image", xlabel="objects", ylabel="images")
        for key, colour in (("box_width", "tab:orange"), ("box_height", "tab:green")):
            histogram = data[key]["histogram"]
            if histogram["counts"]:
                row[1].stairs(histogram["counts"], histogram["edges"], label=key[4:], color=colour)
        row[1].set(title=f"{split}: box width / height (px)", xlabel="px", ylabel="objects")
        row[1].legend()
        for axis, key, label in ((row[2], "box_area", "box area (px², log)"),
                                 (row[3], "box_aspect", "box aspect w/h (log)")):
            histogram = data[key]["histogram"]
            if histogram["counts"]:
                axis.stairs(histogram["counts"], histogram["edges"], fill=True, color="tab:purple")
                axis.set_xscale("log")
            axis.set(title=f"{split}: {label}", ylabel="objects")
        heat = row[4].imshow(np.asarray(data["box_centre_heatmap"]), extent=(0, 1, 1, 0), cmap="magma")
        row[4].set(title=f"{split}: box centres", xlabel="x / width", ylabel="y / height")
        figure.colorbar(heat, ax=row[4])
    figure.tight_layout()
    figure.savefig(path + ".tmp.png", dpi=80)
    pyplot.close(figure)
    os.replace(path + ".tmp.png", path)


def _html(stats: dict, galleries: list[str]) -> str:
    rows = []
    for split, data in stats["splits"].items():
        pixels = data["pixels"]
        rows.append(f"<tr><td>{html.escape(split)}</td><td>{data['images']}</td><td>{data['negatives']}</td>"
                    f"<td>{html.escape(json.dumps(data['objects_per_class']))}</td>"
                    f"<td>{html.escape(json.dumps(data['blend_modes']))}</td>"
                    f"<td>{pixels.get('mean_rgb', '')}</td><td>{pixels.get('std_rgb', '')}</td></tr>")
    skipped = "".join(f"<li>{html.escape(kind)}: {count}</li>"
                      for kind, count in stats["inputs_skipped_or_noted"].items()) or "<li>none</li>"
    pictures = "".join(f'<h2>{html.escape(os.path.basename(g))}</h2><img src="{html.escape(os.path.basename(g))}">'
                       for g in galleries)
    return ("<!doctype html><meta charset=utf-8><title>spatule_synth report</title>"
            "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px}"
            "img{max-width:100%}</style><h1>spatule_synth report</h1>"
            "<table><tr><th>split</th><th>images</th><th>negatives</th><th>objects per class</th>"
            "<th>blend modes</th><th>mean RGB</th><th>std RGB</th></tr>" + "".join(rows) + "</table>"
            f"<h2>inputs skipped or noted</h2><ul>{skipped}</ul>"
            '<h2>distributions</h2><img src="stats.png">' + pictures)


def write_report(output_dir: str, manifest: dict | None = None) -> list[str]:
    """Write the report of the run in ``output_dir`` (its ``manifest``, read from disk if None: a
    generation run reports before writing its manifest, which comes last); the files written."""
    if manifest is None:
        with open(os.path.join(output_dir, MANIFEST_NAME), encoding="utf-8") as handle:
            manifest = json.load(handle)
    folder = os.path.join(output_dir, "report")
    os.makedirs(folder, exist_ok=True)
    stats = collect_stats(output_dir, manifest)
    written = [os.path.join(folder, "stats.json")]
    atomic_write_bytes(written[0], (json.dumps(stats, indent=1) + "\n").encode("utf-8"))
    written.append(os.path.join(folder, "stats.png"))
    plot_stats(stats, written[-1])
    pictures = write_galleries(output_dir) if manifest.get("mode") == "generate" else []
    written += pictures
    written.append(os.path.join(folder, "index.html"))
    atomic_write_bytes(written[-1], _html(stats, pictures).encode("utf-8"))
    return written
