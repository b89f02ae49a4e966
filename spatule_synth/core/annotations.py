"""Labelled photos from any annotation format, in the one shape the read stage consumes.

Every format module (``labelimg``/``voc``, ``coco``, ``yolo``, ``voc_segmentation``,
``alpha_cutouts``) turns its files into `AnnotatedImage`s: a photo path and its objects, each with
a class name, a box in pixel edges (see `spatule_synth.core.boxes`) and, when the format has one, a
mask. Validation against the label map and the decoded photo happens later, in one place
(`spatule_synth.generate.sources`), so every format gets the same checks and messages.

Masks: a ``uint8`` array covering exactly the integer rectangle ``box`` (``mask.shape ==
(box.height, box.width)``, box edges whole pixels), 255 where the object is opaque; soft values
(alpha PNG edges) are allowed; ``mask >= 128`` is the object for labels. ``box`` is then the tight
bounding box of ``mask >= 128`` (`tight_masked_object` builds it from a full-image mask).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spatule_synth.core.boxes import Box

MASK_THRESHOLD = 128


@dataclasses.dataclass(frozen=True, eq=False)
class AnnotatedObject:
    class_name: str
    box: Box  # pixel edges in the photo as the annotation tool displayed it
    object_index: int  # position in the annotation file (for messages and provenance)
    mask: np.ndarray | None = None  # uint8 (box.height, box.width), see the module docstring
    truncated: bool = False
    difficult: bool = False
    pose: str = "Unspecified"
    reference: str | None = None  # where it is in its file, for messages: "annotation id 7", "line 3"


@dataclasses.dataclass(frozen=True)
class LostObject:
    """An object of the annotation file that its reader could not read (already reported): the
    photo still shows it, so the photo has an object without a label."""

    object_index: int
    class_name: str | None
    reason: str


@dataclasses.dataclass(frozen=True, eq=False)
class AnnotatedImage:
    """A photo and what its annotation file says of it.

    ``labelled`` is False for a photo that has no annotation file at all (not labelled yet, or a
    photo known to be object-free if the user says so: ``--unlabelled``). ``lost`` lists the
    objects the reader had to drop; validation skips such a photo whole (`spatule_synth.core.validation`).
    ``usable`` is False for a photo whose annotation file exists but could not be used at all
    (already reported: malformed, copied from another photo, ...): what it shows is unknown, so it
    is skipped, and never taken as object-free by another input either (`unusable`).
    """

    image_path: str
    annotation_path: str  # the file the objects come from (messages name it)
    objects: tuple[AnnotatedObject, ...]
    declared_size: tuple[int, int] | None = None  # (width, height) the annotation states, if any
    lost: tuple[LostObject, ...] = ()
    labelled: bool = True
    is_cutout_file: bool = False  # the file is one cut-out object (alpha PNG): its edges are its own
    usable: bool = True


def unusable(image_path: str, annotation_path: str) -> AnnotatedImage:
    """A photo whose annotation could not be used (the reader reported why)."""
    return AnnotatedImage(image_path, annotation_path, (), usable=False)


def mask_bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` (exclusive ends) of the pixels ``>= MASK_THRESHOLD``, or None."""
    solid = mask >= MASK_THRESHOLD if mask.dtype == np.uint8 else mask.astype(bool)
    rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def mask_box(mask: np.ndarray) -> Box | None:
    """The pixel-edge `Box` of `mask_bounds`, or None for an empty mask."""
    bounds = mask_bounds(mask)
    return None if bounds is None else Box(*bounds)


def tight_masked_object(class_name: str, full_mask: np.ndarray, object_index: int,
                        **fields) -> AnnotatedObject | None:
    """An object from a full-image mask (bool, or uint8 with 255 = object); None if it is empty."""
    mask = full_mask.astype(np.uint8) * 255 if full_mask.dtype == bool else full_mask
    bounds = mask_bounds(mask)
    if bounds is None:
        return None
    x0, y0, x1, y1 = bounds
    return AnnotatedObject(class_name, Box(x0, y0, x1, y1), object_index,
                           np.ascontiguousarray(mask[y0:y1, x0:x1]), **fields)
