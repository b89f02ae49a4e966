"""The render stage: a `SampleSpec` and a canvas in, pixels, tight boxes and visible masks out.

Labels come from the pixels actually written, never from centre arithmetic. Each placement is
warped (`spatule_synth.core.transform`), colour-augmented, then blended. **Every blend mode changes
only pixels of the object's own mask** (warped mask >= 128), so the box, the bounding box of that
mask, holds every pixel the paste changed, and no context of the source photo is painted around
the object:

* ``paste`` copies the object pixels; ``alpha`` mixes them by the mask's value (soft inner edges);
* ``feather`` ramps the opacity from the mask's edge inwards over up to `CUTOUT_MARGIN` pixels
  (at most half the object's thickness, so a small tag keeps an opaque core);
* ``seamless_normal`` / ``seamless_mixed`` solve the Poisson equation on the placed rectangle with
  the canvas around it as boundary (`spatule_synth.generate.poisson`; ``*_opencv``: the same with
  ``cv2.seamlessClone`` over the mask widened by the margin), then keep the result only inside
  the object's mask, ramped over 2 px inside it (`spatule_synth.generate.blends`).

The parts of a group (objects cut out together) are warped one by one, then made disjoint again:
each pixel of the placed mask goes to the part with the highest warped value (ties to the smallest
part), so instance PNGs, record masks and COCO agree.

**Ghosts.** With ``min_visibility`` > 0, each labelled paste is scored against its cutout right
after blending (`spatule_synth.generate.visibility`); below the threshold the canvas is restored and the
placement re-drawn (``redraw``: another position and blend, up to `MAX_REDRAWS` times), then
dropped. The returned sample's spec lists the placements really pasted.

An object's *visible* mask is its part of the placed mask on the canvas, inside what its blend
wrote, minus every pixel written by a later paste. Its box is the bounding box of that mask (one box
around all pieces when occlusion splits it); it is labelled only if at least ``min_visible`` of its
whole warped mask (off-canvas part included) is visible. ``truncated`` marks objects whose mask
crosses the canvas edge. Distractors are pasted and occlude, but are never labelled.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from spatule_synth.core.annotations import mask_box
from spatule_synth.core.augment import augment_image
from spatule_synth.core.boxes import Box
from spatule_synth.generate.blends import blend_into
from spatule_synth.generate.cutouts import Cutout
from spatule_synth.generate.placing import clip, place
from spatule_synth.generate.plan import Placement, SampleSpec, SplitPool
from spatule_synth.generate.visibility import visibility

MAX_REDRAWS = 4  # a placement that stays a ghost after this many re-draws is dropped


@dataclasses.dataclass(frozen=True, eq=False)
class SampleObject:
    class_name: str
    class_id: int
    box: Box  # canvas pixel edges, tight on the visible written object
    truncated: bool
    cutout_id: str
    blend: str
    mask: np.ndarray  # (size, size) bool: the visible pixels of this object
    mirrored: bool = False  # pasted flipped one way (its code, if any, reads mirrored)
    quarter_turns: int = 0  # np.rot90 turns that undo its paste's rotation (and a flip both ways)
    visible_share: float = 1.0  # its visible pixels over its whole placed mask


@dataclasses.dataclass(frozen=True, eq=False)
class Sample:
    spec: SampleSpec  # with the placements really pasted (re-drawn ones replaced, dropped ones out)
    pixels: np.ndarray  # (size, size, 3) uint8 RGB
    objects: tuple[SampleObject, ...]
    hidden: int = 0  # labelled objects pasted but left unlabelled (under min_visible)
    redrawn: int = 0  # labelled placements re-drawn because their first paste was not recognisable
    invisible: int = 0  # labelled placements dropped: not recognisable after every re-draw
    layers: np.ndarray | None = None  # with track_layers: 0 background, k = the k-th paste written


# (placement number, attempt, the placements pasted so far) -> the placement re-drawn, or None
Redraw = Callable[[int, int, tuple], "Placement | None"]


def render(spec: SampleSpec, pool: SplitPool, canvas: np.ndarray, min_visible: float = 0.0,
           min_visibility: float = 0.0, redraw: Redraw | None = None, track_layers: bool = False) -> Sample:
    """Paste the placements of ``spec`` onto ``canvas`` (modified in place) in order. With
    ``track_layers``, the sample's ``layers`` says which paste (1 = the first written, distractors
    included) wrote each pixel last, 0 where none did."""
    layers = np.zeros(canvas.shape[:2], np.uint16) if track_layers else None
    labelled: list[tuple[np.ndarray, int, bool, Placement, Cutout, int]] = []
    pasted: list[Placement] = []
    redrawn = invisible = 0
    for number, first in enumerate(spec.placements):
        placement, attempt = first, 0
        while placement is not None:
            outcome = _paste(canvas, pool, placement, labelled, min_visibility, layers, len(pasted) + 1)
            if outcome != "ghost":
                pasted.append(placement)  # pasted, or (off the canvas, nothing to clone) as planned
                break
            redrawn += attempt == 0
            attempt += 1
            placement = (redraw(number, attempt, tuple(pasted))
                         if redraw is not None and attempt <= MAX_REDRAWS else None)
            invisible += placement is None
    objects, hidden = [], 0
    for visible, total, truncated, placement, cutout, part_index in labelled:
        box = mask_box(visible)
        if box is None or np.count_nonzero(visible) < min_visible * total:
            hidden += 1
            continue
        part = cutout.parts[part_index]
        augment = placement.augment
        mirrored = augment.flip_h != augment.flip_v
        turns = (round(augment.angle / 90.0) + (2 if augment.flip_h and augment.flip_v else 0)) % 4
        objects.append(SampleObject(part.class_name, part.class_id, box, truncated, cutout.cutout_id,
                                    placement.blend, visible, mirrored, turns,
                                    np.count_nonzero(visible) / max(total, 1)))
    pixels = augment_image(canvas, spec.image_augment)
    final = dataclasses.replace(spec, placements=tuple(pasted))
    return Sample(final, pixels, tuple(objects), hidden, redrawn, invisible, layers)


def _paste(canvas: np.ndarray, pool: SplitPool, placement: Placement, labelled: list,
           min_visibility: float, layers: np.ndarray | None = None, number: int = 0) -> str:
    """Blend one placement; ``"pasted"``, ``"nothing"`` (off the canvas, or nothing to clone) or
    ``"ghost"`` (a labelled object not recognisable: the canvas is put back as it was)."""
    size = canvas.shape[0]
    cutout = pool.cutout_of(placement)
    placed = place(cutout, placement)
    rows, cols, x0, y0, x1, y1 = clip(placement, size)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return "nothing"
    before = canvas[y0:y1, x0:x1].copy()
    local_written = blend_into(canvas, placed.pixels, placed.alpha, placement.x, placement.y,
                               placement.blend)
    if local_written is None:
        return "nothing"
    if not placement.distractor and min_visibility > 0:
        written, source = canvas[y0:y1, x0:x1], placed.pixels[rows, cols]
        if any(visibility(written, source, part[rows, cols] & local_written) < min_visibility
               for part in placed.parts):
            canvas[y0:y1, x0:x1] = before
            return "ghost"
    written = np.zeros((size, size), bool)
    written[y0:y1, x0:x1] = local_written
    if layers is not None:
        layers[written] = number
    for visible, *_ in labelled:  # what this paste covers is no longer visible below it
        visible &= ~written
    for part_index, solid in enumerate(placed.parts):
        visible = np.zeros((size, size), bool)
        visible[y0:y1, x0:x1] = solid[rows, cols] & local_written
        total = int(np.count_nonzero(solid))
        truncated = int(np.count_nonzero(solid[rows, cols])) < total
        labelled.append((visible, total, truncated, placement, cutout, part_index))
    return "pasted"
