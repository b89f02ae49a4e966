"""``evaluate``: did the synthetic data help? A detector exported by the OD API, scored on a convert
run of real photos (``--mode=evaluate --detector=EXPORT --records=RUN --output_dir=OUT``).

Every example of RUN's records (``manifest.json`` lists them) goes through the detector
(`spatule_synth.modes.detector`) one at a time; the detections are scored against the labels by
pycocotools (`spatule_synth.modes.coco_metrics`). Writes, in a new ``OUT`` (as every mode: refused
if it exists, unless ``--overwrite``; RUN itself is never written to, so one run can score many
detectors):

* ``OUT/evaluation.json``: COCO's 12 numbers overall and per class, recall per object size and
  precision at ``score_threshold``, counts, the precision-recall curves (IoU 0.5), and the objects
  and detections shown on the contact sheets;
* ``OUT/precision_recall.png``, ``OUT/worst_misses.png``, ``OUT/false_positives.png`` and
  ``OUT/evaluation.html`` (`spatule_synth.modes.evaluation_page`).

**Tiled runs** (convert ``--tile_size``) are scored per photo, not per tile: each tile's detections
are shifted back to its photo (the manifest gives each example's photo and tile origin) and merged
(`spatule_synth.modes.stitch`), then compared with the photo's own boxes, which convert records in
the manifest (``photos``). The union of the tiles' boxes would count an object cut by a tile border
twice and would miss the slivers under ``--tile_min_visible``; a manifest written before ``photos``
existed falls back to it, joining the pieces of each object (same photo, same XML object) into
their bounding box, with a note. Convert leaves out tiles without labels (object-free ones beyond
``--tile_negative_fraction``, and those that show only slivers under ``--tile_min_visible``): the
detector never sees them, so its false positives there are not counted; the summary says how many
tiles are missing. ``--tile_negative_fraction=1 --tile_min_visible=0`` keeps every tile, so whole
photos are scored.
"""

from __future__ import annotations

import dataclasses
import json
import os

from tqdm import tqdm

from spatule_synth.core.image_models import error_reason
from spatule_synth.core import storage
from spatule_synth.core.output_dir import atomic_write_bytes, check_output_dir, output_dir_for_run
from spatule_synth.formats.manifest import MANIFEST_NAME, read_manifest
from spatule_synth.formats.tfrecord import iter_record_file, parse_example
from spatule_synth.modes import coco_metrics
from spatule_synth.modes.coco_metrics import Truth
from spatule_synth.modes.stitch import Detections, merge_tiles, on_photo
from spatule_synth.modes.tiles import tile_origins

SHEET_ITEMS = 24  # objects or detections per contact sheet


class EvaluateError(ValueError):
    """The records cannot be evaluated as asked; the message starts with the path at fault."""


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    detector: str
    records: str
    output_dir: str
    score_threshold: float = 0.5
    overwrite: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_dir", storage.local(self.output_dir))  # file://PATH is PATH


@dataclasses.dataclass
class EvaluatedImage:
    """One scored image: a whole photo (one record example) or a photo put together from tiles."""

    image_id: int
    name: str
    width: int
    height: int
    truth: Truth
    parts: list[tuple[str, int, int, int]]  # (record file, entry number, x, y): its pixels
    detections: list[Detections] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class EvaluationRun:
    """What evaluate reads of a convert run."""

    path: str
    manifest: dict
    class_names: dict[int, str]
    record_paths: list[str]
    tile_size: int
    tile_overlap: int


def read_run(path: str) -> EvaluationRun:
    """The convert run in ``path``, checked: a finished convert run with records."""
    if not storage.is_dir(path):
        raise EvaluateError(f"{path}: no such folder")
    try:
        manifest = read_manifest(path)
    except FileNotFoundError:
        raise EvaluateError(f"{path}: no {MANIFEST_NAME}: not the output folder of a finished "
                            "--mode=convert run") from None
    except (OSError, ValueError) as error:
        raise EvaluateError(f"{path}: cannot read {MANIFEST_NAME}: {error}") from None
    if manifest.get("mode") != "convert":
        raise EvaluateError(f"{path}: a {manifest.get('mode', 'unknown')} run; --records takes a "
                            "--mode=convert run of labelled real photos")
    records = [storage.join(path, r) for r in manifest.get("records", [])]
    if not records:
        raise EvaluateError(f"{path}: no records (annotations/*.record*) to evaluate")
    missing = [r for r in records if not storage.is_file(r)]
    if missing:
        raise EvaluateError(f"{missing[0]}: missing ({len(missing)} of the run's record files)")
    config = manifest.get("config", {})
    return EvaluationRun(path, manifest, {int(i["id"]): i["name"] for i in manifest.get("label_map", [])},
                         records, int(config.get("tile_size") or 0), int(config.get("tile_overlap") or 0))


def _truth(objects, names: dict[str, int], box_of) -> Truth:
    return Truth([box_of(o) for o in objects], [names[o["name"]] for o in objects],
                 [bool(o.get("difficult", False)) for o in objects])


def _tiled_photos(run: EvaluationRun, notes: list[str]) -> tuple[dict, dict]:
    """(photo path -> `EvaluatedImage` without parts yet, source id -> (photo path, x, y))."""
    names = {name: class_id for class_id, name in run.class_names.items()}
    tiles = {e["source_id"]: (e["image"], *e["tile"][:2]) for e in run.manifest.get("examples", [])}
    photos = {}
    entries = run.manifest.get("photos")
    if entries is None:
        notes.append("the run's manifest predates the photos' own boxes: each object's box is joined "
                     "from its pieces in the tiles (reconvert for the exact boxes)")
        entries = _photos_from_tiles(run.manifest.get("examples", []))
    for entry in entries:
        photos[entry["image"]] = EvaluatedImage(
            len(photos) + 1, os.path.basename(entry["image"]), entry["width"], entry["height"],
            _truth(entry["objects"], names, lambda o: o["box"]), [])
    return photos, tiles


def _photos_from_tiles(examples: list[dict]) -> list[dict]:
    """Photo entries rebuilt from tile examples: each XML object's pieces joined into one box."""
    photos: dict[str, dict] = {}
    for example in examples:
        x, y, size = example["tile"]
        photo = photos.setdefault(example["image"], {"image": example["image"], "width": 0, "height": 0,
                                                     "objects": {}})
        photo["width"], photo["height"] = max(photo["width"], x + size), max(photo["height"], y + size)
        for obj in example["objects"]:
            x0, y0, x1, y1 = obj["box"]
            box = [x0 + x, y0 + y, x1 + x, y1 + y]
            known = photo["objects"].setdefault(obj["object_index"], {**obj, "box": box})
            known["box"] = [min(known["box"][0], box[0]), min(known["box"][1], box[1]),
                            max(known["box"][2], box[2]), max(known["box"][3], box[3])]
    return [{**p, "objects": list(p["objects"].values())} for p in photos.values()]


def detect_all(run: EvaluationRun, detector, notes: list[str]) -> list[EvaluatedImage]:
    """Every example of the run through ``detector``; the scored images (photos when tiled)."""
    from spatule_synth.modes.detector import decode_image

    photos, tiles = _tiled_photos(run, notes) if run.tile_size else ({}, {})
    images: dict[str, EvaluatedImage] = {}
    total = int(run.manifest.get("counts", {}).get("examples", 0)) or None
    with tqdm(total=total, desc="evaluate", unit="img", disable=None) as progress:
        for path in run.record_paths:
            for number, serialized in _examples(path):
                record, pixels = _read_example(path, number, serialized, decode_image)
                detections = detector(pixels)
                _check_classes(detections, run, detector, record.filename)
                if run.tile_size:
                    if record.source_id not in tiles:
                        raise EvaluateError(f"{path}: entry #{number}: source id {record.source_id!r} is "
                                            f"no tile that {os.path.join(run.path, MANIFEST_NAME)} lists: "
                                            "the run's records and manifest disagree")
                    photo, x, y = tiles[record.source_id]
                    image = images.setdefault(photo, photos[photo])
                    image.parts.append((path, number, x, y))
                    image.detections.append(on_photo(detections, x, y, image.width, image.height,
                                                     tile=len(image.parts)))
                else:
                    if not record.source_id.isdigit() or record.source_id in images:
                        raise EvaluateError(f"{path}: entry #{number}: source id {record.source_id!r} is not "
                                            "a convert run's (a number, once per example)")
                    images[record.source_id] = EvaluatedImage(
                        int(record.source_id), record.filename, record.width, record.height,
                        _record_truth(record), [(path, number, 0, 0)], [detections])
                progress.update()
    if not images:
        raise EvaluateError(f"{run.path}: its records hold no example")
    if run.tile_size:
        _note_tiling(run, photos, images, notes)
    return list(images.values())


def _examples(path: str):
    """``(entry number, serialized example)`` of one record file; a damaged file is an EvaluateError."""
    try:
        yield from enumerate(iter_record_file(path))
    except ValueError as error:  # damaged length or data: the message names the file and entry
        raise EvaluateError(str(error)) from None


def _read_example(path: str, number: int, serialized: bytes, decode_image):
    """The parsed example and its decoded RGB pixels; anything unreadable is an EvaluateError."""
    try:
        record = parse_example(serialized)
        return record, decode_image(record.encoded)
    except Exception as error:  # pylint: disable=broad-except  (protobuf and TensorFlow raise anything)
        raise EvaluateError(f"{path}: entry #{number}: cannot read its example or image: "
                            f"{error_reason(error)}") from None


def _record_truth(record) -> Truth:
    boxes = [o.box(record.width, record.height) for o in record.objects]
    return Truth([(b.xmin, b.ymin, b.xmax, b.ymax) for b in boxes],
                 [o.class_label for o in record.objects], [o.difficult for o in record.objects])


def _check_classes(detections: Detections, run: EvaluationRun, detector, where: str) -> None:
    unknown = sorted(set(detections.classes.tolist()) - set(run.class_names))
    if unknown:
        known = ", ".join(f"{i} {n}" for i, n in sorted(run.class_names.items()))
        raise EvaluateError(f"{detector.path}: detected class id {unknown[0]} on {where}, which is not "
                            f"in the label map of {run.path} (ids: {known}); was it trained with "
                            "another label map?")


def _note_tiling(run: EvaluationRun, photos: dict, images: dict, notes: list[str]) -> None:
    unseen = len(photos) - len(images)
    if unseen:
        notes.append(f"{unseen} photo(s) have no tile in the records (left out of the scores)")
    expected = sum(len(tile_origins(i.width, run.tile_size, run.tile_overlap))
                   * len(tile_origins(i.height, run.tile_size, run.tile_overlap)) for i in images.values())
    seen = sum(len(i.parts) for i in images.values())
    if seen < expected:
        notes.append(f"{expected - seen} of the photos' {expected} tiles are not in the records "
                     "(convert leaves out tiles without labels: object-free ones beyond "
                     "--tile_negative_fraction, and those showing only slivers under "
                     "--tile_min_visible): false positives there are not counted; convert with "
                     "--tile_negative_fraction=1 --tile_min_visible=0 to score whole photos")


@dataclasses.dataclass
class EvaluateResult:
    output_dir: str
    evaluation: dict
    written: list[str]
    notes: list[str]

    def summary(self) -> str:
        """The end-of-run table: COCO numbers and recall/precision at the threshold, per class."""
        e, counts = self.evaluation, self.evaluation["counts"]
        threshold = e["score_threshold"]
        lines = [f"evaluate: {counts['images']} {'photos' if e['tiles'] else 'images'}, "
                 f"{counts['objects']} objects ({counts['difficult_objects']} difficult, not scored), "
                 f"{counts['detections']} detections ({e['at_threshold']['detections']} scoring "
                 f">= {threshold:g})"]
        header = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR100")
        lines.append(f"  {'class':<16}{'objects':>8}" + "".join(f"{h:>10}" for h in header)
                     + f"{'recall@' + format(threshold, 'g'):>12}{'precision@' + format(threshold, 'g'):>15}")
        rows = [("all", e["at_threshold"]["objects"], e["coco"], e["at_threshold"])]
        rows += [(name, c["at_threshold"]["objects"], c["coco"], c["at_threshold"])
                 for name, c in e["per_class"].items()]
        for name, objects, coco, at in rows:
            lines.append(f"  {name[:15]:<16}{objects:>8}" + "".join(f"{_value(coco[h]):>10}" for h in header)
                         + f"{_value(at['recall']):>12}{_value(at['precision']):>15}")
        sizes = ", ".join(f"{size} {b['found']}/{b['objects']}" for size, b in e["recall_by_size"].items()
                          if size != "all")
        lines.append(f"  found at >= {threshold:g}, by size (COCO buckets): {sizes}")
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  {os.path.basename(path)}: {path}" for path in self.written]
        return "\n".join(lines)


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def evaluation_document(images: list[EvaluatedImage], run: EvaluationRun, config: EvaluateConfig,
                        merged: dict[int, Detections]) -> tuple[dict, tuple]:
    """(evaluation.json's content, (misses, false detections) for the sheets)."""
    truths = {image.image_id: image.truth for image in images}
    class_ids = sorted(run.class_names)
    scored = coco_metrics.coco_evaluation(truths, merged, class_ids)
    threshold = config.score_threshold
    per_class = {}
    for index, class_id in enumerate(class_ids):
        per_class[run.class_names[class_id]] = {
            "id": class_id, "coco": coco_metrics.summary_stats(scored, index),
            "at_threshold": coco_metrics.at_threshold(scored, threshold, index),
            "recall_by_size": coco_metrics.recall_by_size(scored, threshold, index)}
    misses, false = coco_metrics.findings(scored, threshold)
    names = {image.image_id: image.name for image in images}
    document = {
        "detector": config.detector, "records": config.records, "score_threshold": threshold,
        "tiles": ({"tile_size": run.tile_size, "tile_overlap": run.tile_overlap,
                   "tiles_evaluated": sum(len(i.parts) for i in images),
                   "merge": "per class, across tiles, intersection over the smaller box >= 0.5"}
                  if run.tile_size else None),
        "counts": {"images": len(images),
                   "objects": int(sum((~i.truth.difficult).sum() for i in images)),
                   "difficult_objects": int(sum(i.truth.difficult.sum() for i in images)),
                   "detections": sum(len(d) for d in merged.values())},
        "coco": coco_metrics.summary_stats(scored),
        "at_threshold": coco_metrics.at_threshold(scored, threshold),
        "recall_by_size": coco_metrics.recall_by_size(scored, threshold),
        "per_class": per_class,
        "precision_recall": {"iou": 0.5, "recall": [round(float(r), 2) for r in scored.params.recThrs],
                             "precision": {run.class_names[c]: coco_metrics.precision_recall(scored, k)
                                           for k, c in enumerate(class_ids)}},
        "worst_misses": [_finding_json(f, names, run) for f in misses[:SHEET_ITEMS]],
        "false_positives": [_finding_json(f, names, run) for f in false[:SHEET_ITEMS]],
    }
    return document, (misses[:SHEET_ITEMS], false[:SHEET_ITEMS])


def _finding_json(finding, names: dict[int, str], run: EvaluationRun) -> dict:
    return {"image": names[finding.image_id], "class": run.class_names[finding.class_id],
            "box": [round(float(v), 1) for v in finding.box],
            "score": None if finding.score is None else round(finding.score, 4)}


def run_evaluate(config: EvaluateConfig) -> EvaluateResult:
    """Score ``config.detector`` on ``config.records``; raises `EvaluateError`, `DetectorError`,
    `OutputDirError`."""
    from spatule_synth.modes.detector import Detector
    from spatule_synth.modes import evaluation_page

    run = read_run(config.records)
    check_output_dir(config.output_dir, config.overwrite, [config.records, config.detector])
    detector = Detector(config.detector)
    notes: list[str] = []
    images = detect_all(run, detector, notes)
    merged = {image.image_id: (merge_tiles(Detections.concatenate(image.detections)) if run.tile_size
                               else Detections.concatenate(image.detections)) for image in images}
    document, (misses, false) = evaluation_document(images, run, config, merged)
    document["notes"] = notes
    with output_dir_for_run(config.output_dir, config.overwrite, [config.records, config.detector]):
        out = config.output_dir
        written = [os.path.join(out, "evaluation.json")]
        atomic_write_bytes(written[0], (json.dumps(document, indent=1) + "\n").encode("utf-8"))
        written += evaluation_page.write_pictures(out, document, images, merged, misses, false, run,
                                                  config.score_threshold)
        written.append(evaluation_page.write_html(out, document, written))
    return EvaluateResult(config.output_dir, document, written, notes)

