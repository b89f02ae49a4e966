"""Training pairs of the segmenter: what ``--mask=model`` will be shown, and the true answer.

A `Pair` is built to the letter of the model contract (`spatule_synth.core.masks`, "Model contract"):
its ``crop`` is the object's `context_window` (the box rounded outwards, plus
``max(MIN_CONTEXT, CONTEXT_FRACTION x longer side)`` px on every side, clipped to the photo), its
``box`` the object's box inside that crop, its ``truth`` the object's true mask over the crop
(``>= MASK_THRESHOLD``; zero outside the box). The box is the one the annotation gives (COCO and
alpha cutouts: the tight box of the mask), so the model learns on tight boxes; a loose box at
use time is only imitated by the random zoom of `spatule_synth.segmenter.model.augment`.

* A `PhotoObject` keeps its real surroundings: the window is cut out of its photo.
* A `LooseObject` (alpha cutout, rendered tag) is pasted, with its alpha as opacity, in the middle
  of a window of an object-free photo (`Tally.backgrounds`), drawn by
  ``np.random.default_rng([seed, PASTE_STREAM, k])`` for the k-th loose object; a photo smaller
  than the window is enlarged to cover it. Without any object-free photo they are left out.

`model_input` and `model_target` resize a pair to the model's ``size`` x ``size`` exactly as
`spatule_synth.core.masks` resizes the crop (area when shrinking, bilinear when enlarging, RGB / 255).

`split_pairs`: whole classes named by ``unseen_classes`` are kept out of training (evaluated as
classes the model never saw); the others are held out by identity: an identity is held out when
its draw (`spatule_synth.generate.split.split_draw` of ``(seed, "segmenter", identity)``) is below
``holdout_fraction``, so train and held-out never share a photo or a rendered code.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import cv2
import numpy as np

from spatule_synth.core.annotations import MASK_THRESHOLD
from spatule_synth.core.boxes import Box
from spatule_synth.core.images import ImageReadError, check_image, read_image
from spatule_synth.core.masks import CONTEXT_FRACTION, MIN_CONTEXT, context_window, integer_box
from spatule_synth.core.problems import Problem, ProblemLog
from spatule_synth.generate.split import split_draw
from spatule_synth.segmenter.masked_objects import LooseObject, PhotoObject, Tally

PASTE_STREAM = 7
SPLIT_KIND = "segmenter"
NO_BACKGROUND = ("without an object-free photo to be pasted on (alpha cutouts, rendered tags: "
                 "give --background_dirs)")


class PairError(ValueError):
    """The pairs cannot make a training set as asked; the message says why and what to do."""


@dataclasses.dataclass(frozen=True, eq=False)
class Pair:
    name: str
    class_name: str
    identity: str
    crop: np.ndarray  # uint8 RGB: the context window the contract crops
    box: Box  # the object's box inside crop
    truth: np.ndarray  # bool, crop-sized: the object's true mask
    pasted: bool  # pasted on an object-free photo (alpha cutout, rendered tag)

    @property
    def int_box(self) -> tuple[int, int, int, int]:
        return integer_box(self.box, self.crop.shape[1], self.crop.shape[0])


@dataclasses.dataclass(frozen=True, eq=False)
class PairSplit:
    train: tuple[Pair, ...]
    held_out: tuple[Pair, ...]
    unseen: tuple[Pair, ...]  # of the classes the model never saw


def photo_pair(obj: PhotoObject) -> Pair:
    """The pair of an object in its own photo."""
    height, width = obj.photo.shape[:2]
    x0, y0, x1, y1 = integer_box(obj.box, width, height)
    cx0, cy0, cx1, cy1 = context_window((x0, y0, x1, y1), width, height)
    truth = np.zeros((cy1 - cy0, cx1 - cx0), bool)
    truth[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0] = obj.mask >= MASK_THRESHOLD
    box = Box(obj.box.xmin - cx0, obj.box.ymin - cy0, obj.box.xmax - cx0, obj.box.ymax - cy0)
    return Pair(obj.name, obj.class_name, obj.identity,
                np.ascontiguousarray(obj.photo[cy0:cy1, cx0:cx1]), box, truth, False)


def pasted_pair(obj: LooseObject, background: np.ndarray, rng: np.random.Generator) -> Pair:
    """The pair of a loose object pasted in the middle of a window of ``background``."""
    height, width = obj.alpha.shape
    margin = max(MIN_CONTEXT, round(CONTEXT_FRACTION * max(width, height)))
    window_h, window_w = height + 2 * margin, width + 2 * margin
    bg_h, bg_w = background.shape[:2]
    if bg_h < window_h or bg_w < window_w:
        scale = max(window_h / bg_h, window_w / bg_w)
        background = cv2.resize(background, (max(window_w, round(bg_w * scale)),
                                             max(window_h, round(bg_h * scale))), interpolation=cv2.INTER_LINEAR)
        bg_h, bg_w = background.shape[:2]
    top, left = int(rng.integers(bg_h - window_h + 1)), int(rng.integers(bg_w - window_w + 1))
    crop = background[top:top + window_h, left:left + window_w].astype(np.float32)
    alpha = obj.alpha.astype(np.float32)[..., None] / 255.0
    inner = crop[margin:margin + height, margin:margin + width]
    crop[margin:margin + height, margin:margin + width] = inner * (1.0 - alpha) + obj.rgb * alpha
    truth = np.zeros((window_h, window_w), bool)
    truth[margin:margin + height, margin:margin + width] = obj.alpha >= MASK_THRESHOLD
    return Pair(obj.name, obj.class_name, obj.identity, np.round(crop).astype(np.uint8),
                Box(margin, margin, margin + width, margin + height), truth, True)


def build_pairs(objects: Iterable[PhotoObject | LooseObject], tally: Tally, problems: ProblemLog,
                seed: int) -> tuple[list[Pair], dict[str, int]]:
    """Every object of ``objects`` (`masked_objects`, which fills ``tally``) as a pair, in input
    order, and the objects left out (reason -> count). A photo object's window is cut as it comes,
    so one photo is held at a time; loose objects (small) wait for the object-free photos."""
    pairs: list[Pair | None] = []
    loose: dict[int, LooseObject] = {}
    for obj in objects:
        if isinstance(obj, PhotoObject):
            pairs.append(photo_pair(obj))
        else:
            loose[len(pairs)] = obj
            pairs.append(None)
    left_out = dict(tally.left_out)
    backgrounds = _readable(tuple(dict.fromkeys(tally.backgrounds)), problems) if loose else []
    if loose and not backgrounds:
        left_out[NO_BACKGROUND] = len(loose)
    elif loose:
        draws = {k: np.random.default_rng([seed, PASTE_STREAM, number]) for number, k in enumerate(loose)}
        chosen = {k: int(draws[k].integers(len(backgrounds))) for k in loose}
        for index, path in enumerate(backgrounds):  # each photo decoded once
            users = [k for k in loose if chosen[k] == index]
            if users:
                pixels = read_image(path).pixels
                for k in users:
                    pairs[k] = pasted_pair(loose[k], pixels, draws[k])
    return [p for p in pairs if p is not None], left_out


def _readable(paths: tuple[str, ...], problems: ProblemLog) -> list[str]:
    readable = []
    for path in paths:
        try:
            check_image(path)
        except ImageReadError as error:
            problems.report(Problem("unreadable_image", path, f"{error}; background skipped"))
            continue
        readable.append(path)
    return readable


def split_pairs(pairs: list[Pair], holdout_fraction: float, unseen_classes: tuple[str, ...],
                seed: int) -> PairSplit:
    """Train / held-out (by identity) / unseen classes (module docstring); `PairError` if the
    training side is empty, or the held-out side while ``holdout_fraction > 0``."""
    unseen = tuple(p for p in pairs if p.class_name in unseen_classes)
    seen = [p for p in pairs if p.class_name not in unseen_classes]
    identities = sorted({p.identity for p in seen})
    held = {key for key in identities if split_draw(seed, SPLIT_KIND, key) < holdout_fraction}
    train = tuple(p for p in seen if p.identity not in held)
    held_out = tuple(p for p in seen if p.identity in held)
    if not train:
        raise PairError(f"no training pair: all {len(pairs)} objects with a true mask are held out "
                        f"(--seg_unseen_classes, --seg_holdout_fraction={holdout_fraction:g})")
    if holdout_fraction > 0 and not held_out:
        good = [str(s) for s in range(seed + 1, seed + 1001)
                if any(split_draw(s, SPLIT_KIND, key) < holdout_fraction for key in identities)
                and not all(split_draw(s, SPLIT_KIND, key) < holdout_fraction for key in identities)][:3]
        hint = f"--seed={' or '.join(good)} holds some out" if good else "no nearby seed holds one out"
        raise PairError(f"with --seed={seed} and --seg_holdout_fraction={holdout_fraction:g} none of the "
                        f"{len(identities)} identities is held out (each identity's side depends only on "
                        f"the seed and itself); {hint}, or add inputs, or pass --seg_holdout_fraction=0 "
                        "to train on everything without a held-out evaluation")
    return PairSplit(train, held_out, unseen)


def model_input(crop: np.ndarray, size: int) -> np.ndarray:
    """``crop`` as the model sees it: ``(size, size, 3)`` float32 RGB in [0, 1] (as `spatule_synth.core.masks`)."""
    interpolation = cv2.INTER_AREA if size * size < crop.shape[0] * crop.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation).astype(np.float32) / 255.0


def model_target(truth: np.ndarray, size: int) -> np.ndarray:
    """The true mask at the model's size: ``(size, size, 1)`` float32, soft at the edges."""
    interpolation = cv2.INTER_AREA if size * size < truth.size else cv2.INTER_LINEAR
    return cv2.resize(truth.astype(np.float32), (size, size), interpolation=interpolation)[..., None]


def training_arrays(pairs: tuple[Pair, ...], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(n, size, size, 3)`` and targets ``(n, size, size, 1)`` of ``pairs``."""
    inputs = np.stack([model_input(p.crop, size) for p in pairs])
    targets = np.stack([model_target(p.truth, size) for p in pairs])
    return inputs, targets
