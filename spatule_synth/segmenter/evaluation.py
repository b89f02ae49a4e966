"""How good the trained segmenter is, next to what ``--mask`` offers without it, on the same boxes.

Every held-out pair (and every pair of a class the model never saw) gets three masks over its
box, each compared with the true mask by IoU (intersection over union, inside the box; the true
mask lies inside it):

* ``model``: the exported SavedModel, loaded by `load_mask_model` and called exactly as
  ``generate --mask=model`` calls it (crop resized to the model's size, probabilities resized
  back to the crop, ``>= 0.5``);
* ``grabcut``: `grabcut_foreground`, as ``--mask=grabcut`` runs it;
* ``box``: the whole box (``--mask=box``): its IoU is the share of the box the object covers.

``iou`` is the method's own mask; ``iou_as_used`` the mask ``generate`` would paste, which is the
whole box when the method's mask fails the agreement rule of `spatule_synth.core.masks.disagreement`
(misses a side of the box by more than 2 px, or covers under 15 % of it); ``fallback_share`` how
often that happens. The crop of a pair is the context window of its box, so `refine_mask` on it
gives the mask ``generate`` gives on the whole photo.

`evaluation_sheet`: one row per shown object (spread over the range of the model's IoU: worst to
best), columns input (box drawn), truth, model, GrabCut, each mask drawn over the input.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from spatule_synth.core.masks import MaskModel, disagreement, grabcut_foreground
from spatule_synth.segmenter.pairs import Pair, model_input

METHODS = ("model", "grabcut", "box")
SHEET_TILE = 112
SHEET_COLUMNS = ("input", "truth", "model", "GrabCut")


@dataclasses.dataclass(frozen=True)
class PairScores:
    name: str
    class_name: str
    iou: dict[str, float]  # method -> IoU of its own mask
    iou_as_used: dict[str, float]  # method -> IoU of the mask generate pastes
    fallback: dict[str, str | None]  # method -> why generate would use the whole box instead

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks; 1.0 when both are empty."""
    union = np.count_nonzero(mask | truth)
    return 1.0 if union == 0 else np.count_nonzero(mask & truth) / union


def model_foreground(model: MaskModel, crop: np.ndarray) -> np.ndarray:
    """The model's foreground (bool, crop-sized) for ``crop``, as ``--mask=model`` computes it."""
    height, width = model.input_size
    if height != width:
        raise ValueError(f"{model.path}: the segmenter evaluation expects a square input, got {height}x{width}")
    probabilities = model.probabilities(model_input(crop, height)[np.newaxis])
    probabilities = cv2.resize(probabilities, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_LINEAR)
    return probabilities >= 0.5


def method_masks(pair: Pair, model: MaskModel) -> dict[str, np.ndarray | str]:
    """Each method's own mask over the pair's integer box (bool), or why it found none."""
    x0, y0, x1, y1 = pair.int_box
    found = {"model": model_foreground(model, pair.crop),
             "grabcut": grabcut_foreground(pair.crop, (x0, y0, x1, y1)),
             "box": np.ones(pair.crop.shape[:2], bool)}
    return {name: mask if isinstance(mask, str) else mask[y0:y1, x0:x1] for name, mask in found.items()}


def score_pair(pair: Pair, masks: dict[str, np.ndarray | str]) -> PairScores:
    """IoU of each method's mask (from `method_masks`) and of the mask generate would paste."""
    x0, y0, x1, y1 = pair.int_box
    truth = pair.truth[y0:y1, x0:x1]
    whole = np.ones_like(truth)
    scores, used, reasons = {}, {}, {}
    for name, mask in masks.items():
        reason = mask if isinstance(mask, str) else (
            None if name == "box" else disagreement(mask, pair.box, (x0, y0, x1, y1)))
        own = whole if isinstance(mask, str) else mask
        scores[name] = iou(own, truth)
        used[name] = iou(whole, truth) if reason else scores[name]
        reasons[name] = reason
    return PairScores(pair.name, pair.class_name, scores, used, reasons)


def summary(scores: list[PairScores]) -> dict | None:
    """Mean IoU, mean IoU as used and fallback share per method; None without any object."""
    if not scores:
        return None
    result: dict = {"objects": len(scores)}
    for name in METHODS:
        result[name] = {"iou": float(np.mean([s.iou[name] for s in scores])),
                        "iou_median": float(np.median([s.iou[name] for s in scores])),
                        "iou_as_used": float(np.mean([s.iou_as_used[name] for s in scores])),
                        "fallback_share": float(np.mean([s.fallback[name] is not None for s in scores]))}
    return result


def table(sections: dict[str, dict | None]) -> str:
    """The IoU table: one row per method, three columns (IoU, as used, fallback) per section."""
    labels = {"model": "model (this segmenter)", "grabcut": "GrabCut", "box": "whole box"}
    head = f"{'mask IoU on the same boxes':<26}" + "".join(
        f"  {_section_title(title, value):<26}" for title, value in sections.items())
    sub = f"{'':<26}" + "".join(f"  {'IoU':>5} {'as used':>8} {'fallback':>9}  " for _ in sections)
    lines = [head, sub]
    for name in METHODS:
        cells = []
        for value in sections.values():
            if value is None:
                cells.append(f"  {'-':>5} {'-':>8} {'-':>9}  ")
                continue
            method = value[name]
            fallback = "-" if name == "box" else f"{method['fallback_share'] * 100:.0f}%"
            cells.append(f"  {method['iou']:>5.3f} {method['iou_as_used']:>8.3f} {fallback:>9}  ")
        lines.append(f"{labels[name]:<26}" + "".join(cells))
    return "\n".join(line.rstrip() for line in lines)


def _section_title(title: str, value: dict | None) -> str:
    return f"{title}: {value['objects'] if value else 0} objects"


def evaluation_sheet(rows: list[tuple[str, Pair, PairScores, dict]], tile: int = SHEET_TILE) -> np.ndarray:
    """RGB sheet: a header, then per row ``(label, pair, scores, masks)`` (label: lines; masks from
    `method_masks`) the input with its box, the truth, the model's and GrabCut's masks."""
    header = np.full((24, tile * len(SHEET_COLUMNS) + 150, 3), 255, np.uint8)
    for k, title in enumerate(SHEET_COLUMNS):
        cv2.putText(header, title, (150 + k * tile + 6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    lines = [header]
    for label, pair, scores, masks in rows:
        x0, y0, x1, y1 = pair.int_box
        full = {}
        for name in ("model", "grabcut"):
            mask = np.zeros(pair.truth.shape, bool)
            if not isinstance(masks[name], str):
                mask[y0:y1, x0:x1] = masks[name]
            full[name] = mask
        picture = pair.crop.copy()
        cv2.rectangle(picture, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 0), max(1, round(max(picture.shape) / 120)))
        tiles = [_fit(picture, tile), _fit(_overlay(pair.crop, pair.truth), tile),
                 _fit(_overlay(pair.crop, full["model"]), tile, f"{scores.iou['model']:.2f}"),
                 _fit(_overlay(pair.crop, full["grabcut"]), tile, f"{scores.iou['grabcut']:.2f}"
                      + (" box" if scores.fallback["grabcut"] else ""))]
        side = np.full((tile, 150, 3), 255, np.uint8)
        for k, text in enumerate([line for part in label.split("\n") for line in _wrap(part, 21)][:4]
                                 + [f"box IoU {scores.iou['box']:.2f}"]):
            cv2.putText(side, text, (4, 18 + 18 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        lines.append(np.hstack([side] + tiles))
    return np.vstack(lines)


def _overlay(crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    shown = crop.astype(np.float32) * 0.45
    shown[mask] = shown[mask] * 0.3 + np.array([60, 230, 60], np.float32) * 0.7 + crop[mask] * 0.1
    return np.clip(shown, 0, 255).astype(np.uint8)


def _fit(picture: np.ndarray, tile: int, caption: str = "") -> np.ndarray:
    """``picture`` scaled to fit a ``tile`` square on white, with an optional caption."""
    height, width = picture.shape[:2]
    scale = (tile - 4) / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = cv2.resize(picture, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST)
    out = np.full((tile, tile, 3), 255, np.uint8)
    top, left = (tile - size[1]) // 2, (tile - size[0]) // 2
    out[top:top + size[1], left:left + size[0]] = resized
    if caption:
        cv2.rectangle(out, (0, tile - 16), (len(caption) * 8 + 6, tile), (255, 255, 255), -1)
        cv2.putText(out, caption, (3, tile - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def _wrap(text: str, width: int) -> list[str]:
    return [text[k:k + width] for k in range(0, len(text), width)] or [""]


def spread(scores: list[PairScores], count: int) -> list[int]:
    """Indices of ``count`` objects spread over the model's IoU, worst first."""
    order = sorted(range(len(scores)), key=lambda k: (scores[k].iou["model"], k))
    if len(order) <= count:
        return order
    return [order[round(k * (len(order) - 1) / (count - 1))] for k in range(count)] if count > 1 else order[:1]


def evaluate_split(held_out: tuple[Pair, ...], unseen: tuple[Pair, ...], model: MaskModel,
                   sheet_rows: int = 6) -> tuple[dict[str, dict | None], list[PairScores], np.ndarray | None]:
    """Scores of the held-out and unseen-class pairs: the summaries by section, every object's
    scores, and the evaluation sheet (None without any object)."""
    sections: dict[str, dict | None] = {}
    everything: list[PairScores] = []
    rows = []
    for title, pairs in (("held-out", held_out), ("unseen classes", unseen)):
        scored = [(pair, method_masks(pair, model)) for pair in pairs]
        scores = [score_pair(pair, masks) for pair, masks in scored]
        sections[title] = summary(scores)
        everything += scores
        for k in spread(scores, sheet_rows):
            pair, masks = scored[k]
            rows.append((f"{title}\n{pair.class_name}\n{_short(pair.name)}", pair, scores[k], masks))
    return sections, everything, evaluation_sheet(rows) if rows else None


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]
