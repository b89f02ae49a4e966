"""Masks for box-only labels: the whole box, GrabCut, or the user's own segmentation model.

`refine_mask` returns a `RefinedMask`: a ``uint8`` mask (255 = object, 0 = background) covering
exactly the integer box, ``mask.shape == (box_height, box_width)``, as `spatule_synth.core.annotations`
expects, and why it fell back to the whole box, if it did. A box with fractional edges is first
rounded outwards (`Box.voc_ints`), so no labelled pixel is lost; it must lie inside the photo (the
read stage clips boxes before asking for masks).

Methods (`MASK_METHODS`):

* ``"box"``: every pixel of the box (the behaviour of a box-only label).
* ``"grabcut"``: OpenCV's ``cv2.grabCut`` initialised with the box as its rectangle
  (``GC_INIT_WITH_RECT``) on a crop of the photo around the box: `context_window` adds
  `CONTEXT_FRACTION` of the box's longer side (at least `MIN_CONTEXT` px) on every side, clipped to
  the photo; that ring is the background GrabCut learns its colours from. `GRABCUT_ITERATIONS`
  iterations. Crops longer than `GRABCUT_MAX_SIDE` px are shrunk for GrabCut and the mask scaled
  back: GrabCut's cost grows with the pixel count (measured: 65 ms for a 155 px box, 80 ms for
  200 px, 2.1 s for 1000 px at full size; shrunk, no box costs more than about 0.4 s, and the mask
  edge is then within a pixel or two of the full-size one). The object is ``GC_FGD | GC_PR_FGD``
  inside the box, then cleaned: 8-connected foreground components smaller than
  `MIN_COMPONENT_FRACTION` of the largest are dropped (GrabCut's speckles), larger ones are kept
  (an occluder can split an object in two); holes are kept (often real: the inside of a handle).
  GrabCut seeds its colour models with k-means, which draws from OpenCV's per-thread RNG;
  ``cv2.setRNGSeed(0)`` is called before each GrabCut so a photo always gets the same mask.
* ``"model"``: a segmentation model the user trained, loaded once by `load_mask_model`; see
  "Model contract" below.

Fallback: when a method cannot give a mask that agrees with the human box, the full box is
returned and ``RefinedMask.fallback_reason`` says why, in words that read after ``--mask=grabcut``
(``used_fallback`` is True) so the caller can report it. The label box made from a mask is the
mask's bounding box, so a mask is only kept when:

* its bounding box reaches every side of the box within `BOX_AGREEMENT_PX` px (measured from the
  box as given, fractional edges included: the mask is over the integer box `integer_box`, pixel
  column ``i`` of the mask is photo column ``x0 + i``), reason "its mask misses the box's left side
  by 7 px"; and
* it covers at least `MIN_BOX_SHARE` of the integer box, reason "its mask covers 9% of the box";
  an empty mask is "found no object in the box".

GrabCut also falls back on boxes narrower or lower than `MIN_GRABCUT_SIDE` px, on a box covering
the whole photo (no background to learn from) and on an OpenCV error. A fallback never makes a
wrong label: the whole box gives back the human box (rounded outwards to whole pixels); it only
pastes some background along with the object.

Model contract (``"model"``):

* Files: a TensorFlow SavedModel folder (its ``serving_default`` signature is called; it must have
  one input and one output), or a Keras model file ``.keras``, ``.h5`` or ``.hdf5``, loaded as
  `spatule_synth.core.image_models` says (the depth model of `spatule_synth.core.depth` too).
* Input: one ``float32`` batch ``(1, S_h, S_w, 3)``, **RGB** in **[0, 1]** (pixel / 255): the crop
  of `context_window` (the box plus the same context margin as GrabCut, clipped to the photo)
  resized to ``S_h x S_w`` regardless of its aspect ratio. ``S_h, S_w`` come from the model's input
  shape; a dynamic dimension takes the other one's size, and `DEFAULT_MODEL_SIZE` when both are
  dynamic.
* Output: one tensor ``(1, H, W, 1)`` or ``(1, H, W)`` of foreground **probabilities** in [0, 1]
  (``H, W`` need not equal the input's). Outputs with values outside [0, 1] (beyond
  `LOGIT_TOLERANCE`) are taken as logits and go through a sigmoid. This is decided per call, so a
  model that emits logits should end with a sigmoid: a logit map that happens to lie entirely in
  [0, 1] would be read as probabilities. Non-finite values raise `MaskModelError`.
* The probability map is resized (bilinear) to the crop, thresholded at 0.5 (``>= 0.5`` is the
  object) and cut to the box. No component cleaning is applied: the model's answer is kept.

TensorFlow is imported inside `load_mask_model` only (importing it costs seconds). A `MaskModel`
is not shared between processes: load it in each worker.

Masks are cached on disk (`spatule_synth.core.mask_cache`) under a key that includes
`REFINE_VERSION`: bump it whenever `refine_mask` may return another mask or reason for the same
pixels, box and method (a constant above, the cleaning, the fallback rules), so that no run reuses
a mask the new code would not make.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import cv2
import numpy as np

from spatule_synth.core.boxes import Box
from spatule_synth.core.image_models import load_image_model, one_plane

MASK_METHODS = ("box", "grabcut", "model")
CONTEXT_FRACTION = 0.15  # context margin, as a fraction of the box's longer side
MIN_CONTEXT = 8  # px of context at least, on every side (before clipping to the photo)
MIN_GRABCUT_SIDE = 8  # boxes narrower or lower than this get the full box
GRABCUT_ITERATIONS = 5
GRABCUT_MAX_SIDE = 512  # crops longer than this are shrunk for GrabCut
GRABCUT_SEED = 0
# The mask's bounding box is the label box: it must reach each side of the human box within this.
BOX_AGREEMENT_PX = 2
# Least share of the box the mask must cover. Compact objects (the tags this project is for, and
# most objects) fill well over a third of their box: an ellipse pi/4, a triangle 1/2, a thick ring
# about 0.6. A mask that touches all four sides yet covers less than 15% is mostly GrabCut keeping
# an outline or a sliver (a 2-px frame in a 60-px box covers 13%); the thinnest real objects it
# refuses are diagonal sticks thinner than about a tenth of their length (share ~1.4 x thickness /
# length), which then get the whole box: a fallback is never a wrong label, a sliver is.
MIN_BOX_SHARE = 0.15
MIN_COMPONENT_FRACTION = 0.1  # GrabCut components smaller than this x the largest are dropped
DEFAULT_MODEL_SIZE = 256
LOGIT_TOLERANCE = 1e-3
# Version of refine_mask's output, part of every mask cache key (module docstring); bump it on any
# change that can give another mask or fallback reason for the same inputs.
REFINE_VERSION = 1

IntBox = tuple[int, int, int, int]  # (x0, y0, x1, y1) whole-pixel edges, exclusive ends


class RefinedMask(NamedTuple):
    """A mask over the integer box and, when it is the full-box fallback, why (module docstring).

    Unpacked as ``mask, fell_back = refine_mask(...)``, ``if fell_back:`` tests for a fallback.
    """

    mask: np.ndarray  # uint8 (box height, box width), 255 = object
    fallback_reason: str | None  # e.g. "its mask covers 9% of the box"; None: the mask is kept

    @property
    def used_fallback(self) -> bool:
        return self.fallback_reason is not None


class MaskModelError(ValueError):
    """A mask model that cannot be loaded or whose output breaks the contract; says why."""


@dataclasses.dataclass(frozen=True, eq=False)
class MaskModel:
    """A loaded segmentation model following the contract of the module docstring."""

    path: str
    kind: str  # "saved_model" or "keras"
    input_size: tuple[int, int]  # (S_h, S_w) the crop is resized to
    _call: Callable[[np.ndarray], Any] = dataclasses.field(repr=False)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Foreground probabilities ``(H, W)`` float32 in [0, 1] for a ``(1, S_h, S_w, 3)`` batch."""
        output = one_plane(self._call(batch), self.path, "foreground probabilities", MaskModelError)
        if output.size and (output.min() < -LOGIT_TOLERANCE or output.max() > 1 + LOGIT_TOLERANCE):
            output = 1.0 / (1.0 + np.exp(-np.clip(output, -80.0, 80.0)))  # logits
        return np.ascontiguousarray(output)


def refine_mask(pixels: np.ndarray, box: Box, method: str,
                model: MaskModel | None = None) -> RefinedMask:
    """The object's mask over ``box`` of the RGB ``uint8`` photo ``pixels`` (module docstring)."""
    if method not in MASK_METHODS:
        raise ValueError(f"mask method must be one of {MASK_METHODS}, got {method!r}")
    if method == "model" and model is None:
        raise ValueError("mask method 'model' needs a model loaded by load_mask_model")
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"pixels must be an RGB uint8 (height, width, 3) array, got {pixels.dtype} "
                         f"{pixels.shape}")
    height, width = pixels.shape[:2]
    x0, y0, x1, y1 = integer_box(box, width, height)
    full = np.full((y1 - y0, x1 - x0), 255, np.uint8)
    if method == "box":
        return RefinedMask(full, None)
    window = context_window((x0, y0, x1, y1), width, height)
    cx0, cy0, cx1, cy1 = window
    crop = np.ascontiguousarray(pixels[cy0:cy1, cx0:cx1])
    inner = (x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0)  # the box inside the crop
    if method == "grabcut":
        foreground = grabcut_foreground(crop, inner)
    else:
        foreground = _model_foreground(model, crop)
    if isinstance(foreground, str):
        return RefinedMask(full, foreground)
    in_box = foreground[inner[1]:inner[3], inner[0]:inner[2]]
    reason = disagreement(in_box, box, (x0, y0, x1, y1))
    if reason is not None:
        return RefinedMask(full, reason)
    return RefinedMask(np.ascontiguousarray(in_box.astype(np.uint8) * 255), None)


def disagreement(in_box: np.ndarray, box: Box, int_box: IntBox) -> str | None:
    """Why the mask ``in_box`` (bool, over ``int_box``, the integer box of ``box``) cannot give
    ``box`` back as its bounding box, or None when it can (module docstring)."""
    rows, cols = np.flatnonzero(in_box.any(axis=1)), np.flatnonzero(in_box.any(axis=0))
    if not cols.size:
        return "found no object in the box"
    x0, y0, _, _ = int_box
    # Pixel edges of the mask's bounding box in the photo, against the box as the human drew it.
    misses = {"left": x0 + cols[0] - box.xmin, "top": y0 + rows[0] - box.ymin,
              "right": box.xmax - (x0 + cols[-1] + 1), "bottom": box.ymax - (y0 + rows[-1] + 1)}
    far = [f"{side} by {distance:g} px" for side, distance in misses.items() if distance > BOX_AGREEMENT_PX]
    if far:  # "its mask misses the box's left side by 7 px", "... top side by 9 px and right by 3 px"
        far[0] = far[0].replace(" by ", " side by ", 1)
        listed = far[0] if len(far) == 1 else ", ".join(far[:-1]) + " and " + far[-1]
        return f"its mask misses the box's {listed}"
    share = np.count_nonzero(in_box) / in_box.size
    if share < MIN_BOX_SHARE:
        return f"its mask covers {_percent(share)} of the box (at least {_percent(MIN_BOX_SHARE)} needed)"
    return None


def _percent(share: float) -> str:
    """``share`` as a whole percentage, never rounded up to the limit it failed (14.9% -> 14%)."""
    return f"{math.floor(share * 100 + 1e-9)}%"


def integer_box(box: Box, width: int, height: int) -> IntBox:
    """``box`` rounded outwards to whole pixels; ValueError if it leaves the photo."""
    x0, y0, x1, y1 = box.voc_ints()
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        raise ValueError(f"box ({box}) is not inside the {width}x{height} photo; clip it first")
    return x0, y0, x1, y1


def context_window(box: IntBox, width: int, height: int) -> IntBox:
    """The box grown by the context margin on every side, clipped to a ``width x height`` photo."""
    x0, y0, x1, y1 = box
    margin = max(MIN_CONTEXT, round(CONTEXT_FRACTION * max(x1 - x0, y1 - y0)))
    return max(0, x0 - margin), max(0, y0 - margin), min(width, x1 + margin), min(height, y1 + margin)


def grabcut_foreground(crop: np.ndarray, inner: IntBox) -> np.ndarray | str:
    """GrabCut's cleaned foreground (bool, crop-sized) for the box ``inner`` of ``crop``; or, when
    GrabCut cannot run, why (box too small, no background around it, OpenCV error)."""
    x0, y0, x1, y1 = inner
    crop_height, crop_width = crop.shape[:2]
    if min(x1 - x0, y1 - y0) < MIN_GRABCUT_SIDE:
        return f"cannot refine a box narrower or lower than {MIN_GRABCUT_SIDE} px"
    if (x0, y0, x1, y1) == (0, 0, crop_width, crop_height):
        return "has no background to learn from: the box covers the whole photo"
    scale = min(1.0, GRABCUT_MAX_SIDE / max(crop_height, crop_width))
    small, rect = crop, (x0, y0, x1 - x0, y1 - y0)
    if scale < 1.0:
        size = (max(1, round(crop_width * scale)), max(1, round(crop_height * scale)))
        small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        rect = _scaled_rect(inner, scale, size)
    labels = np.zeros(small.shape[:2], np.uint8)
    cv2.setRNGSeed(GRABCUT_SEED)
    try:
        cv2.grabCut(small, labels, rect, np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64),
                    GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_RECT)
    except cv2.error as error:
        return f"stopped on an OpenCV error ({_first_line(error)})"
    foreground = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    if scale < 1.0:
        grown = cv2.resize(foreground.astype(np.uint8) * 255, (crop_width, crop_height),
                           interpolation=cv2.INTER_LINEAR)
        foreground = grown >= 128
        outside = np.ones_like(foreground)
        outside[y0:y1, x0:x1] = False
        foreground[outside] = False  # the box rectangle is exact at full size
    return _without_speckles(foreground)


def _first_line(error: Exception) -> str:
    text = getattr(error, "err", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def _scaled_rect(inner: IntBox, scale: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of ``inner`` in the shrunk crop, at least one pixel, inside it."""
    x0, y0 = math.floor(inner[0] * scale), math.floor(inner[1] * scale)
    x1 = min(size[0], max(x0 + 1, math.ceil(inner[2] * scale)))
    y1 = min(size[1], max(y0 + 1, math.ceil(inner[3] * scale)))
    return x0, y0, x1 - x0, y1 - y0


def _without_speckles(foreground: np.ndarray) -> np.ndarray:
    """``foreground`` without 8-connected components under MIN_COMPONENT_FRACTION of the largest."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(foreground.astype(np.uint8), connectivity=8)
    if count <= 2:
        return foreground
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.concatenate([[False], areas >= MIN_COMPONENT_FRACTION * areas.max()])
    return keep[labels]


def _model_foreground(model: MaskModel, crop: np.ndarray) -> np.ndarray:
    """The model's foreground (bool, crop-sized) for ``crop`` (contract in the module docstring)."""
    crop_height, crop_width = crop.shape[:2]
    in_height, in_width = model.input_size
    shrinking = in_height * in_width < crop_height * crop_width
    resized = cv2.resize(crop, (in_width, in_height),
                         interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    batch = (resized.astype(np.float32) / 255.0)[np.newaxis]
    probabilities = model.probabilities(batch)
    probabilities = cv2.resize(probabilities, (crop_width, crop_height), interpolation=cv2.INTER_LINEAR)
    return probabilities >= 0.5


def load_mask_model(path: str) -> MaskModel:
    """Load a SavedModel folder or a Keras file (contract in the module docstring)."""
    model = load_image_model(path, "mask model", DEFAULT_MODEL_SIZE, MaskModelError)
    return MaskModel(model.path, model.kind, model.input_size, model.call)
