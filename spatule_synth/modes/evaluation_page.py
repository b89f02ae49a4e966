"""The pictures and the page of ``--mode=evaluate`` (`spatule_synth.modes.evaluate` computes the
numbers): ``precision_recall.png`` (matplotlib), the contact sheets ``worst_misses.png`` and
``false_positives.png`` (OpenCV, as `spatule_synth.modes.gallery`), and ``evaluation.html``
(tables styled as the run report's ``index.html``).

Contact sheets: one thumbnail per missed object (largest first) or false detection (highest score
first) at the score threshold: the object or detection with context around it (half its size, at
least 16 px), labelled boxes in green, detections scoring at least the threshold in red, the one
the thumbnail is about drawn thicker. Crops are cut from the records' own pixels (for a tiled run,
put together from the tiles that cover them), so the sheets need no access to the original photos.
"""

from __future__ import annotations

import collections
import html
import math
import os

import cv2
import numpy as np

from spatule_synth.core.output_dir import atomic_write_bytes, write_figure
from spatule_synth.formats.tfrecord import iter_record_file, parse_example
from spatule_synth.modes.coco_metrics import STAT_NAMES, Finding
from spatule_synth.modes.gallery import _write_png
from spatule_synth.modes.report import _cell, _number
from spatule_synth.modes.stitch import Detections

THUMB = 160
COLUMNS = 6
CAPTION = 40  # px of text under each thumbnail (3 lines)
TRUTH_COLOUR = (0, 200, 80)
DETECTION_COLOUR = (255, 64, 64)
BACKGROUND = 32


def _window(box, width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    margin = max(16.0, 0.5 * max(x1 - x0, y1 - y0))
    return (max(0, math.floor(x0 - margin)), max(0, math.floor(y0 - margin)),
            min(width, math.ceil(x1 + margin)), min(height, math.ceil(y1 + margin)))


def gather_crops(items: list[tuple], tile_size: int) -> list[np.ndarray]:
    """The pixels of each ``(image, window)`` of ``items`` (an `EvaluatedImage` and a window in
    its pixels), read from the records: every part of the image that overlaps the window is
    decoded once and pasted in place."""
    crops = [np.full((w[3] - w[1], w[2] - w[0], 3), BACKGROUND, np.uint8) for _, w in items]
    wanted: dict[str, dict[int, list]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for index, (image, window) in enumerate(items):
        for path, number, x, y in image.parts:
            right = x + (tile_size or image.width)
            bottom = y + (tile_size or image.height)
            if x < window[2] and right > window[0] and y < window[3] and bottom > window[1]:
                wanted[path][number].append((index, x, y))
    for path, entries in wanted.items():
        for number, serialized in enumerate(iter_record_file(path, wanted=entries.__contains__)):
            if number not in entries:
                continue
            encoded = parse_example(serialized).encoded
            pixels = cv2.cvtColor(cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR),
                                  cv2.COLOR_BGR2RGB)
            for index, x, y in entries[number]:
                _paste(crops[index], items[index][1], pixels, x, y)
    return crops


def _paste(crop: np.ndarray, window, pixels: np.ndarray, x: int, y: int) -> None:
    wx0, wy0, wx1, wy1 = window
    x0, y0 = max(wx0, x), max(wy0, y)
    x1, y1 = min(wx1, x + pixels.shape[1]), min(wy1, y + pixels.shape[0])
    if x1 > x0 and y1 > y0:
        crop[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0] = pixels[y0 - y:y1 - y, x0 - x:x1 - x]


def _thumbnail(crop: np.ndarray, window, finding: Finding, image, detections: Detections,
               threshold: float, caption: list[str], miss: bool) -> np.ndarray:
    scale = (THUMB - 4) / max(crop.shape[:2])
    shown = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)

    def draw(box, colour, thickness):
        x0, y0, x1, y1 = (round((v - o) * scale) for v, o in zip(box, window[:2] * 2))
        cv2.rectangle(shown, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), colour, thickness)

    for box in image.truth.boxes:
        draw(box, TRUTH_COLOUR, 1)
    for box, score in zip(detections.boxes, detections.scores):
        if score >= threshold:
            draw(box, DETECTION_COLOUR, 1)
    draw(finding.box, TRUTH_COLOUR if miss else DETECTION_COLOUR, 2)
    tile = np.full((THUMB + CAPTION, THUMB, 3), BACKGROUND, np.uint8)
    tile[:shown.shape[0], :shown.shape[1]] = shown
    for row, text in enumerate(caption):
        cv2.putText(tile, text[:28], (3, THUMB + 11 + 12 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.36,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _caption(finding: Finding, image, class_names: dict[int, str], miss: bool) -> list[str]:
    x0, y0, x1, y1 = finding.box
    name = class_names.get(finding.class_id, str(finding.class_id))
    if miss:
        state = "missed" + (f" (found at {finding.score:.2f})" if finding.score is not None else "")
        return [f"{name} {x1 - x0:.0f}x{y1 - y0:.0f} px", state, image.name]
    return [f"{name} score {finding.score:.2f}", f"{x1 - x0:.0f}x{y1 - y0:.0f} px, no object", image.name]


def contact_sheet(findings: list[Finding], images: dict, merged: dict[int, Detections],
                  class_names: dict[int, str], threshold: float, tile_size: int, miss: bool) -> np.ndarray:
    """The thumbnails of ``findings`` in rows of `COLUMNS`; a "none" tile when there are none."""
    items = [(images[f.image_id], _window(f.box, images[f.image_id].width, images[f.image_id].height))
             for f in findings]
    crops = gather_crops(items, tile_size)
    tiles = [_thumbnail(crop, window, f, image, merged[f.image_id], threshold,
                        _caption(f, image, class_names, miss), miss)
             for f, (image, window), crop in zip(findings, items, crops)]
    if not tiles:
        tile = np.full((THUMB + CAPTION, THUMB, 3), BACKGROUND, np.uint8)
        cv2.putText(tile, "none", (60, THUMB // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1,
                    cv2.LINE_AA)
        return tile
    tiles += [np.full_like(tiles[0], BACKGROUND)] * (-len(tiles) % COLUMNS)
    return np.vstack([np.hstack(tiles[i:i + COLUMNS]) for i in range(0, len(tiles), COLUMNS)])


def precision_recall_figure(document: dict):
    """Per class: COCO's interpolated precision against recall at IoU 0.5 (drawn up to the highest
    recall reached; COCO counts precision 0 beyond), and a dot where the detector works at the
    score threshold."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4.5))
    axis = figure.add_subplot()
    curves = document["precision_recall"]
    recall = curves["recall"]
    for index, (name, precision) in enumerate(curves["precision"].items()):
        if all(p is None for p in precision):
            continue
        colour = f"C{index % 10}"
        points = [(r, p) for r, p in zip(recall, precision) if p]  # up to the highest recall reached
        if not points:
            continue
        stats = document["per_class"][name]
        axis.step(*zip(*points), where="post", color=colour,
                  label=f"{name} (AP50 {stats['coco']['AP50']:.3f})")
        at = stats["at_threshold"]
        if at["recall"] is not None and at["precision"] is not None:
            axis.plot([at["recall"]], [at["precision"]], "o", color=colour)
    axis.set(xlim=(0, 1.01), ylim=(0, 1.03), xlabel="recall", ylabel="precision",
             title=f"precision-recall at IoU 0.5 (dots: score >= {document['score_threshold']:g})")
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(loc="lower left")
    figure.tight_layout()
    return figure


def write_pictures(out: str, document: dict, images: list, merged: dict[int, Detections],
                   misses: list[Finding], false: list[Finding], run, threshold: float) -> list[str]:
    """Write precision_recall.png, worst_misses.png and false_positives.png; their paths."""
    path = os.path.join(out, "precision_recall.png")
    write_figure(precision_recall_figure(document), path, dpi=90)
    written = [path]
    by_id = {image.image_id: image for image in images}
    for name, findings, miss in (("worst_misses.png", misses, True), ("false_positives.png", false, False)):
        written.append(os.path.join(out, name))
        _write_png(written[-1], contact_sheet(findings, by_id, merged, run.class_names, threshold,
                                              run.tile_size, miss))
    return written


def _stats_rows(document: dict) -> str:
    rows = [("all", document["coco"], document["at_threshold"])]
    rows += [(name, c["coco"], c["at_threshold"]) for name, c in document["per_class"].items()]
    return "".join(
        "<tr>" + _cell(html.escape(name)) + _cell(str(at["objects"]), True)
        + "".join(_cell("–" if coco[s] is None else f"{coco[s]:.3f}", True) for s in STAT_NAMES)
        + "".join(_cell("–" if at[k] is None else f"{at[k]:.3f}", True) for k in ("recall", "precision"))
        + _cell(f"{at['true_positives']} / {at['false_positives']}", True) + "</tr>"
        for name, coco, at in rows)


def write_html(out: str, document: dict, pictures: list[str]) -> str:
    """``OUT/evaluation.html``: the numbers as tables, then the pictures; its path."""
    threshold = f"{document['score_threshold']:g}"
    counts = document["counts"]
    sizes = "".join("<tr>" + _cell(html.escape(size)) + _cell(str(b["objects"]), True)
                    + _cell(str(b["found"]), True)
                    + _cell("–" if b["recall"] is None else _number(round(b["recall"], 4)), True) + "</tr>"
                    for size, b in document["recall_by_size"].items())
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in document.get("notes", []))
    page = ("<!doctype html><meta charset=utf-8><title>spatule_synth evaluation</title>"
            "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px;vertical-align:top}td.n{text-align:right}"
            "img{max-width:100%}</style><h1>spatule_synth evaluation</h1>"
            f"<p>detector <code>{html.escape(document['detector'])}</code> on "
            f"<code>{html.escape(document['records'])}</code>: {counts['images']} "
            f"{'photos (stitched from tiles)' if document['tiles'] else 'images'}, {counts['objects']} "
            f"objects ({counts['difficult_objects']} difficult, not scored), {counts['detections']} "
            "detections.</p>" + (f"<ul>{notes}</ul>" if notes else "")
            + "<h2>COCO metrics</h2><table><tr><th>class</th><th>objects</th>"
            + "".join(f"<th>{s}</th>" for s in STAT_NAMES)
            + f"<th>recall @{threshold}</th><th>precision @{threshold}</th><th>right / wrong @{threshold}</th></tr>"
            + _stats_rows(document) + "</table>"
            + f"<h2>objects found at score >= {threshold} (IoU 0.5), by size</h2>"
            "<table><tr><th>size (COCO: small &lt; 32², large &gt;= 96² px²)</th><th>objects</th>"
            "<th>found</th><th>recall</th></tr>" + sizes + "</table>"
            + "".join(f'<h2>{html.escape(os.path.basename(p))}</h2><img src="{html.escape(os.path.basename(p))}">'
                      for p in pictures if p.endswith(".png")))
    path = os.path.join(out, "evaluation.html")
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
