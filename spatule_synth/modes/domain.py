"""Domain match before training (``--mode=report --compare_to=REAL_RUN``): does the synthetic
data cover what the detector will face?

Both runs are read from their TFRecords (a generate run's train split; a convert run's records:
real photos, whole or tiled), without TensorFlow, at most `MAX_IMAGES` images each, spread over
the run. Each image is first brought to the size a detector sees (longer side `MODEL_SIDE`), then
every labelled object is measured:

* ``width share`` / ``height share`` / ``size share``: the box's width, height and square root of
  its area over the image's (what the model sees: a 30 px tag in a 640 crop is not a 30 px tag
  in a whole 3264 px photo resized to 640);
* ``aspect``: box width over height; ``centre x`` / ``centre y``: the box centre over the image;
* ``brightness R/G/B``: the mean of each channel inside the box (0-255); ``contrast``: the
  standard deviation of its grey levels; ``sharpness``: log10 of the variance of its Laplacian.

Per measure: both runs' 5th, 50th and 95th percentiles, an **overlap** score (the intersection of
the two histograms, 1 = the same distribution) and **coverage** (the share of the real values
inside the synthetic 2.5-97.5 percentile range). Under `MIN_COVERAGE`, a plain warning says what
differs and which flag moves it, e.g. "real objects fill 30-70 % of the image width; synthetic
5-25 %: raise --scale_range (about x3.1: --scale_range=2.5,4.6)". A detector trained on 640 px
crops with small pasted objects and run on whole photos where the object fills the frame fails
for that reason alone; the report says so before any training.

Writes ``OUT/report/domain.json`` and ``OUT/report/domain.png`` (histograms, real beside
synthetic); `spatule_synth.modes.report` adds a table to ``index.html``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import cv2
import numpy as np

from spatule_synth.core import storage
from spatule_synth.core.output_dir import atomic_write_bytes, write_figure
from spatule_synth.formats.manifest import MANIFEST_NAME, read_manifest_head
from spatule_synth.formats.tfrecord import iter_record_file, parse_example

MODEL_SIDE = 640
MAX_IMAGES = 400
MIN_COVERAGE = 0.8
MEASURES = ("width share", "height share", "size share", "aspect", "centre x", "centre y",
            "brightness R", "brightness G", "brightness B", "contrast", "sharpness")
LOG_SCALE = {"width share", "height share", "size share", "aspect"}


class DomainError(ValueError):
    """A run that cannot be compared; the message names it."""


def run_records(run: str) -> tuple[list[str], dict]:
    """The record files a comparison reads (generate: train; convert: all) and the manifest."""
    path = os.path.join(run, MANIFEST_NAME)
    try:  # without the per-image lists: flat memory on a 400,000-image run
        manifest = read_manifest_head(run)
    except (OSError, ValueError) as error:
        raise DomainError(f"{run}: cannot read {MANIFEST_NAME} ({error}); give the output directory "
                          "of a finished generate or convert run") from None
    if manifest.get("mode") == "generate":
        relative = manifest.get("splits", {}).get("train", {}).get("records", [])
    elif manifest.get("mode") == "convert":
        relative = manifest.get("records", [])
    else:
        raise DomainError(f"{run}: {path} is not the manifest of a generate or convert run")
    if not relative:
        raise DomainError(f"{run}: its manifest lists no records to compare")
    return [os.path.join(run, r) for r in relative], manifest


def _image_count(manifest: dict) -> int:
    if manifest.get("mode") == "generate":
        return int(manifest.get("splits", {}).get("train", {}).get("images", 0))
    return int(manifest.get("counts", {}).get("examples", 0))


def measure_run(run: str, max_images: int = MAX_IMAGES) -> dict[str, np.ndarray]:
    """Every measure of every labelled object of up to ``max_images`` images of ``run``."""
    paths, manifest = run_records(run)
    stride = max(1, math.ceil(_image_count(manifest) / max_images))
    values: dict[str, list[float]] = {name: [] for name in MEASURES}
    taken, number = 0, 0

    def wanted(_: int) -> bool:  # by the run-wide number, counted below
        return number % stride == 0

    for serialized in (data for path in paths for data in iter_record_file(path, wanted)):
        number += 1
        if taken >= max_images:
            break
        if not serialized:
            continue
        record = parse_example(serialized)
        if not record.objects:
            continue
        taken += 1
        pixels = cv2.imdecode(np.frombuffer(record.encoded, np.uint8), cv2.IMREAD_COLOR)
        if pixels is None:
            raise DomainError(f"{run}: example {record.filename!r} does not decode")
        scale = MODEL_SIDE / max(pixels.shape[:2])
        pixels = cv2.resize(pixels, (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale))),
                            interpolation=cv2.INTER_AREA)
        height, width = pixels.shape[:2]
        gray = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
        for obj in record.objects:
            bw, bh = (obj.xmax - obj.xmin), (obj.ymax - obj.ymin)
            if bw <= 0 or bh <= 0:
                continue
            x0, y0 = int(obj.xmin * width), int(obj.ymin * height)
            x1, y1 = max(x0 + 1, int(math.ceil(obj.xmax * width))), max(y0 + 1, int(math.ceil(obj.ymax * height)))
            crop, grey = pixels[y0:y1, x0:x1].reshape(-1, 3).astype(np.float64), gray[y0:y1, x0:x1]
            laplacian = cv2.Laplacian(grey, cv2.CV_64F) if min(grey.shape) >= 3 else np.zeros(1)
            row = {"width share": bw, "height share": bh, "size share": math.sqrt(bw * bh),
                   "aspect": (bw * record.width) / (bh * record.height),
                   "centre x": (obj.xmin + obj.xmax) / 2, "centre y": (obj.ymin + obj.ymax) / 2,
                   "brightness R": crop[:, 2].mean(), "brightness G": crop[:, 1].mean(),
                   "brightness B": crop[:, 0].mean(), "contrast": float(grey.std()),
                   "sharpness": math.log10(float(laplacian.var()) + 1.0)}
            for name, value in row.items():
                values[name].append(float(value))
    if not values["size share"]:
        raise DomainError(f"{run}: no labelled object in its records")
    return {name: np.array(found) for name, found in values.items()}


@dataclasses.dataclass(frozen=True)
class Comparison:
    measure: str
    real: tuple[float, float, float]  # 5th, 50th, 95th percentiles
    synthetic: tuple[float, float, float]
    overlap: float  # histogram intersection, 0..1
    coverage: float  # share of real values inside the synthetic 2.5-97.5 % range
    warning: str = ""


def compare(synthetic: dict[str, np.ndarray], real: dict[str, np.ndarray],
            scale_range: tuple[float, float] | None = None) -> list[Comparison]:
    """One `Comparison` per measure (module docstring)."""
    found = []
    for name in MEASURES:
        s, r = synthetic[name], real[name]
        transform = np.log10 if name in LOG_SCALE else (lambda v: v)
        ts, tr = transform(np.maximum(s, 1e-6)), transform(np.maximum(r, 1e-6))
        low, high = float(min(ts.min(), tr.min())), float(max(ts.max(), tr.max()))
        edges = np.linspace(low, high if high > low else low + 1.0, 21)
        hs = np.histogram(ts, edges)[0] / len(ts)
        hr = np.histogram(tr, edges)[0] / len(tr)
        lo, hi = np.percentile(s, [2.5, 97.5])
        coverage = float(np.mean((r >= lo) & (r <= hi)))
        comparison = Comparison(name, tuple(float(v) for v in np.percentile(r, [5, 50, 95])),
                                tuple(float(v) for v in np.percentile(s, [5, 50, 95])),
                                float(np.minimum(hs, hr).sum()), coverage)
        found.append(dataclasses.replace(comparison, warning=_advice(comparison, scale_range))
                     if coverage < MIN_COVERAGE else comparison)
    size = next(c for c in found if c.measure == "size share")
    if size.warning:  # one warning about size: width and height say the same again
        found = [dataclasses.replace(c, warning="") if c.measure in ("width share", "height share") else c
                 for c in found]
    return found


def _span(values: tuple[float, float, float], percent: bool) -> str:
    low, _, high = values
    return f"{low:.0%}-{high:.0%}" if percent else f"{low:.3g}-{high:.3g}"


def _advice(c: Comparison, scale_range: tuple[float, float] | None) -> str:
    real, synthetic = _span(c.real, c.measure.endswith("share")), _span(c.synthetic, c.measure.endswith("share"))
    ratio = c.real[1] / c.synthetic[1] if c.synthetic[1] else float("inf")
    more = ratio > 1
    if c.measure in ("width share", "height share", "size share"):
        what = {"width share": "of the image width", "height share": "of the image height",
                "size share": "of the image's size (square root of the area)"}[c.measure]
        hint = f"{'raise' if more else 'lower'} --scale_range (about x{ratio:.2g}"
        if scale_range is not None:
            hint += f": --scale_range={scale_range[0] * ratio:.2g},{scale_range[1] * ratio:.2g}"
        hint += ")"
        if c.real[2] > 0.6:  # objects that fill the frame cannot all fit a canvas beside others
            hint += ("; real objects fill much of the frame, so also paste fewer per image "
                     "(--objects_per_image=1,2) and bring --canvas_size near the real photos' size")
        return f"real objects fill {real} {what}; synthetic {synthetic}: {hint}"
    if c.measure == "aspect":
        return (f"real boxes have aspect ratios {real} (width/height); synthetic {synthetic}: the "
                "cutouts' shapes differ from the real objects' (more varied cutouts, or "
                "--object_augment=rotate)")
    if c.measure.startswith("centre"):
        return (f"real objects sit at {real} of the image {c.measure[-1]}; synthetic {synthetic}"
                + ("; objects cut by the image edge: --allow_truncation" if c.real[0] < 0.1 or c.real[2] > 0.9 else ""))
    if c.measure.startswith("brightness"):
        return (f"real objects are {'brighter' if more else 'darker'} in {c.measure[-1]} "
                f"({real} against {synthetic}): widen --object_augment=brightness (and hue, saturation)")
    if c.measure == "contrast":
        return (f"real objects have {'more' if more else 'less'} contrast ({real} against {synthetic} "
                "grey levels): widen --object_augment=contrast")
    return (f"real objects are {'sharper' if more else 'blurrier'} (log10 Laplacian variance {real} "
            f"against {synthetic}): " + ("lower the blur of --object_augment/--image_augment" if more
                                         else "add --object_augment=blur=0:2 or --image_augment=motion_blur=0:5"))


def write_domain_report(output_dir: str, compare_to: str, manifest: dict) -> tuple[list[str], list[Comparison]]:
    """Compare the run in ``output_dir`` with ``compare_to``; the files written and the
    comparisons (module docstring)."""
    synthetic, real = measure_run(output_dir), measure_run(compare_to)
    config = manifest.get("config", {})
    scale_range = tuple(config["scale_range"]) if "scale_range" in config else None
    comparisons = compare(synthetic, real, scale_range)
    folder = storage.join(output_dir, "report")
    storage.makedirs(folder)
    json_path = os.path.join(folder, "domain.json")
    content = {"compare_to": storage.absolute(compare_to), "model_side": MODEL_SIDE,
               "objects": {"synthetic": int(len(synthetic["size share"])), "real": int(len(real["size share"]))},
               "measures": [dataclasses.asdict(c) for c in comparisons]}
    atomic_write_bytes(json_path, (json.dumps(content, indent=1) + "\n").encode("utf-8"))
    png_path = os.path.join(folder, "domain.png")
    _plot(synthetic, real, comparisons, png_path)
    return [json_path, png_path], comparisons


def _plot(synthetic: dict, real: dict, comparisons: list[Comparison], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    figure, axes = pyplot.subplots(3, 4, figsize=(16, 10))
    for axis, comparison in zip(axes.ravel(), comparisons):
        name = comparison.measure
        s, r = synthetic[name], real[name]
        if name in LOG_SCALE:
            s, r = np.log10(np.maximum(s, 1e-6)), np.log10(np.maximum(r, 1e-6))
        edges = np.linspace(min(s.min(), r.min()), max(s.max(), r.max()) + 1e-9, 26)
        axis.hist(r, edges, alpha=0.6, density=True, label="real", color="tab:green")
        axis.hist(s, edges, alpha=0.6, density=True, label="synthetic", color="tab:blue")
        axis.set_title(f"{name}{' (log10)' if name in LOG_SCALE else ''}: overlap {comparison.overlap:.2f}, "
                       f"coverage {comparison.coverage:.0%}", fontsize=9,
                       color="tab:red" if comparison.warning else "black")
        axis.legend(fontsize=8)
    for axis in axes.ravel()[len(comparisons):]:
        axis.axis("off")
    figure.tight_layout()
    write_figure(figure, path, dpi=70)
    pyplot.close(figure)
