"""COCO detection metrics of boxes held in memory, computed by pycocotools (the code behind the
OD API's ``coco_detection_metrics``), plus what its summary leaves out: numbers per class, recall
and precision at one score threshold (per object size bucket), the precision-recall curves, and
which objects were missed and which detections were false at that threshold.

Conventions, as pycocotools (so the numbers match the OD API's evaluator on the same boxes):

* boxes are pixel ``xmin, ymin, xmax, ymax`` (`spatule_synth.core.boxes`), areas ``w * h``; size
  buckets by ground-truth area: small < 32², medium 32²-96², large >= 96² px²;
* AP is averaged over IoU 0.50:0.05:0.95 and 101 recall points, at most 100 detections per image;
  a class without ground truth has no AP (None) and is left out of the means;
* a ``difficult`` object is a COCO "crowd" region: missing it costs nothing and a detection on it is
  neither right nor wrong (the OD API's evaluators leave difficult objects out too);
* at the score threshold, matches are COCO's own at IoU 0.5 (greedy, highest score first): an
  object is found when a detection of its class scoring at least the threshold matched it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from typing import Mapping, Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from spatule_synth.modes.stitch import Detections

STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")
COCO_MAX_DETECTIONS = 100  # per image, in COCO's AP and AR
# COCO's area ranges, in the order of COCOeval.params.areaRng
SIZE_BUCKETS = ("all", "small", "medium", "large")


@dataclasses.dataclass(frozen=True)
class Truth:
    """The labelled objects of one evaluated image: boxes (N, 4) in pixels, class ids (N,),
    difficult flags (N,)."""

    boxes: np.ndarray
    classes: np.ndarray
    difficult: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", np.asarray(self.boxes, np.float64).reshape(-1, 4))
        object.__setattr__(self, "classes", np.asarray(self.classes, np.int64).reshape(-1))
        object.__setattr__(self, "difficult", np.asarray(self.difficult, bool).reshape(-1))


@dataclasses.dataclass(frozen=True)
class Finding:
    """A missed object or a false detection at the threshold, for the contact sheets."""

    image_id: int
    class_id: int
    box: tuple[float, float, float, float]
    score: float | None  # the detection's; for a miss, the best score of a match below the threshold


def _coco_boxes(boxes: np.ndarray) -> list[list[float]]:
    return [[float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1 in boxes]


def _quiet_coco(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_evaluation(truths: Mapping[int, Truth], detections: Mapping[int, Detections],
                    class_ids: Sequence[int]) -> COCOeval:
    """COCOeval of every image of ``truths`` (image id -> objects), evaluated and accumulated;
    ``detections``: image id -> boxes (images without an entry have none)."""
    images = [{"id": int(image_id)} for image_id in truths]
    categories = [{"id": int(c)} for c in class_ids]
    objects, found = [], []
    for image_id, truth in truths.items():
        for box, class_id, difficult in zip(_coco_boxes(truth.boxes), truth.classes, truth.difficult):
            objects.append({"id": len(objects) + 1, "image_id": int(image_id), "category_id": int(class_id),
                            "bbox": box, "area": box[2] * box[3], "iscrowd": int(difficult)})
    for image_id, dets in detections.items():
        for box, class_id, score in zip(_coco_boxes(dets.boxes), dets.classes, dets.scores):
            found.append({"id": len(found) + 1, "image_id": int(image_id), "category_id": int(class_id),
                          "bbox": box, "area": box[2] * box[3], "score": float(score), "iscrowd": 0})
    evaluation = COCOeval(_quiet_coco({"images": images, "categories": categories, "annotations": objects}),
                          _quiet_coco({"images": images, "categories": categories, "annotations": found}),
                          "bbox")
    evaluation.params.imgIds = sorted(int(i) for i in truths)
    evaluation.params.catIds = sorted(int(c) for c in class_ids)
    # COCO's numbers use at most 100 detections per image; the counts at a score threshold use
    # them all (a photo stitched from tiles may carry more): a last, larger maxDets entry
    most = max((len(dets) for dets in detections.values()), default=0)
    if most > COCO_MAX_DETECTIONS:
        evaluation.params.maxDets = [1, 10, COCO_MAX_DETECTIONS, most]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation.evaluate()
        evaluation.accumulate()
    return evaluation


def _mean(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else None


def summary_stats(evaluation: COCOeval, class_index: int | None = None) -> dict[str, float | None]:
    """COCO's 12 summary numbers (`STAT_NAMES`), of all classes or of the class at ``class_index``
    in ``params.catIds``; None where there is nothing to measure (no object of that size)."""
    params, precision, recall = evaluation.params, evaluation.eval["precision"], evaluation.eval["recall"]
    k = slice(None) if class_index is None else [class_index]
    thresholds = list(np.round(params.iouThrs, 2))
    m_last = list(params.maxDets).index(COCO_MAX_DETECTIONS)

    def ap(iou=None, area=0):
        t = slice(None) if iou is None else [thresholds.index(iou)]
        return _mean(precision[t][:, :, k, area, m_last])

    def ar(area=0, m=m_last):
        return _mean(recall[:, k, area, m])

    values = [ap(), ap(0.5), ap(0.75), ap(area=1), ap(area=2), ap(area=3),
              ar(m=0), ar(m=1), ar(), ar(1), ar(2), ar(3)]
    return dict(zip(STAT_NAMES, values))


def _results(evaluation: COCOeval, class_index: int | None, area_index: int):
    """The per-image results (evalImgs) of one class (or all) and one area range, with every
    detection (``maxDets[-1]``), skipping images with neither objects nor detections."""
    params = evaluation.params
    images, ranges = len(params.imgIds), len(params.areaRng)
    classes = range(len(params.catIds)) if class_index is None else [class_index]
    for k in classes:
        for i in range(images):
            result = evaluation.evalImgs[k * ranges * images + area_index * images + i]
            if result is not None:
                yield result


def at_threshold(evaluation: COCOeval, threshold: float, class_index: int | None = None,
                 area_index: int = 0) -> dict:
    """Objects (not difficult) and those found, detections at or above ``threshold`` that are
    right and wrong, and recall / precision, at IoU 0.5 (None where the share has no denominator)."""
    objects = found = right = wrong = 0
    for result in _results(evaluation, class_index, area_index):
        scores = dict(zip(result["dtIds"], result["dtScores"]))
        for match, ignored in zip(result["gtMatches"][0], result["gtIgnore"]):
            if not ignored:
                objects += 1
                found += bool(match) and scores[int(match)] >= threshold
        for score, match, ignored in zip(result["dtScores"], result["dtMatches"][0], result["dtIgnore"][0]):
            if score >= threshold and not ignored:
                right += bool(match)
                wrong += not match
    return {"objects": objects, "found": found, "recall": found / objects if objects else None,
            "detections": right + wrong, "true_positives": right, "false_positives": wrong,
            "precision": right / (right + wrong) if right + wrong else None}


def recall_by_size(evaluation: COCOeval, threshold: float, class_index: int | None = None) -> dict:
    """`at_threshold`'s objects, found and recall for each of `SIZE_BUCKETS`."""
    return {name: {key: at_threshold(evaluation, threshold, class_index, a)[key]
                   for key in ("objects", "found", "recall")}
            for a, name in enumerate(SIZE_BUCKETS)}


def precision_recall(evaluation: COCOeval, class_index: int, iou: float = 0.5) -> list[float | None]:
    """COCO's interpolated precision at each of the 101 recall points (``params.recThrs``), at
    ``iou``, all sizes, at most 100 detections per image; None where that recall is never reached
    (or the class has no object)."""
    t = list(np.round(evaluation.params.iouThrs, 2)).index(iou)
    m = list(evaluation.params.maxDets).index(COCO_MAX_DETECTIONS)
    curve = evaluation.eval["precision"][t, :, class_index, 0, m]
    if (curve <= -1).all():
        return [None] * len(curve)
    return [float(p) for p in curve]


def findings(evaluation: COCOeval, threshold: float) -> tuple[list[Finding], list[Finding]]:
    """(missed objects, false detections) at ``threshold`` and IoU 0.5, all sizes: misses largest
    first, false detections highest score first."""
    gt_anns, dt_anns = evaluation.cocoGt.anns, evaluation.cocoDt.anns
    misses, false = [], []

    def box(annotation) -> tuple:
        x, y, w, h = annotation["bbox"]
        return (x, y, x + w, y + h)

    for result in _results(evaluation, None, 0):
        scores = dict(zip(result["dtIds"], result["dtScores"]))
        for gt_id, match, ignored in zip(result["gtIds"], result["gtMatches"][0], result["gtIgnore"]):
            if not ignored and not (match and scores[int(match)] >= threshold):
                obj = gt_anns[gt_id]
                misses.append(Finding(obj["image_id"], obj["category_id"], box(obj),
                                      scores[int(match)] if match else None))
        for dt_id, score, match, ignored in zip(result["dtIds"], result["dtScores"], result["dtMatches"][0],
                                               result["dtIgnore"][0]):
            if score >= threshold and not ignored and not match:
                det = dt_anns[dt_id]
                false.append(Finding(det["image_id"], det["category_id"], box(det), float(score)))
    misses.sort(key=lambda f: (-(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), f.image_id))
    false.sort(key=lambda f: (-f.score, f.image_id))
    return misses, false
