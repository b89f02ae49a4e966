"""Which labelled objects carry a *true* mask, read from generate's inputs.

A true mask is one somebody (or a renderer) drew: COCO polygons or RLE (``--coco_json``), VOC
``SegmentationObject`` PNGs (``--voc_seg_dirs``), the alpha of a cutout file (``--cutout_dirs``)
and rendered tags (``--rendered_tags=N``: the renderer knows every pixel). A box-only label
(labelImg XML, YOLO txt, a COCO annotation without ``segmentation``) has none: GrabCut or the whole
box would only be a guess, so such objects are counted (`Tally.left_out`) and never
become training truth, whatever ``--mask`` says.

The inputs are read in the order and by the readers of `spatule_synth.generate.sources`, and every
photo with a masked object goes through the same validation (`spatule_synth.core.validation.load_photo`:
label map, boxes inside the photo, masks not empty, a photo that lost a label skipped, problems
reported the same way). Photos whose labels are all boxes are not decoded (they give nothing).

Two kinds of objects come out:

* `PhotoObject`: an object of a photo (COCO, VOC segmentation): its real surroundings are known;
* `LooseObject`: an object without a scene (alpha cutout, rendered tag): RGB and alpha over its
  box; `spatule_synth.segmenter.pairs` pastes it on a background photo, so the object-free photos of the
  inputs and ``--background_dirs`` are listed too (`Tally.backgrounds`).

Identities (for the held-out split): a photo's content (SHA-256 of its bytes, as ``--identity=image``:
every object of one photo, and of its copies, shares one), a rendered tag's code (its identity
in generate too).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Iterator

import numpy as np

from spatule_synth.core.boxes import Box
from spatule_synth.core.config import InputsConfig
from spatule_synth.core.problems import ProblemLog
from spatule_synth.core.validation import load_photo
from spatule_synth.formats.label_map import LabelMap
from spatule_synth.generate.identities import content_key
from spatule_synth.generate.rendered_source import rendered_cutouts
from spatule_synth.generate.sources import annotated_images, background_folder_photos

BOX_ONLY = "without a true mask (box-only labels: labelImg, YOLO, COCO bbox)"


@dataclasses.dataclass(frozen=True, eq=False)
class PhotoObject:
    """An object with a true mask in its own photo."""

    name: str  # "<photo path>#<object index>"
    class_name: str
    identity: str
    photo: np.ndarray  # (height, width, 3) uint8 RGB, shared by the objects of one photo
    box: Box  # pixel edges in the photo
    mask: np.ndarray  # uint8 over box.voc_ints(), 255 = object (soft edges kept)


@dataclasses.dataclass(frozen=True, eq=False)
class LooseObject:
    """An object with a true mask but no scene around it (alpha cutout, rendered tag)."""

    name: str
    class_name: str
    identity: str
    rgb: np.ndarray  # (h, w, 3) uint8: the object's box
    alpha: np.ndarray  # (h, w) uint8 over the same box


@dataclasses.dataclass(eq=False)
class Tally:
    """What `masked_objects` found besides the objects, complete once it is exhausted."""

    backgrounds: list[str] = dataclasses.field(default_factory=list)  # object-free photos
    left_out: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # reason -> count


def masked_objects(inputs: InputsConfig, label_map: LabelMap, problems: ProblemLog, tally: Tally,
                   seed: int = 0) -> Iterator[PhotoObject | LooseObject]:
    """Every object with a true mask of ``inputs``, in input order, rendered tags last (module
    docstring); the object-free photos and the objects left out go to ``tally``. One photo is
    held at a time."""
    inputs.input_rules.check(label_map)
    for annotated in annotated_images(inputs, problems):
        if not annotated.usable:
            continue
        known = [o for o in annotated.objects if label_map.id_of(o.class_name) is not None]
        if known and all(o.mask is None for o in known):
            tally.left_out[BOX_ONLY] += len(known)  # nothing to learn from: not decoded
            continue
        photo = load_photo(annotated, label_map, inputs.input_rules, problems)
        if photo is None:
            continue
        if not photo.objects:
            tally.backgrounds.append(photo.image_path)
            continue
        identity = f"photo:{content_key(photo.image_path)}"
        for obj in photo.objects:
            name = f"{photo.image_path}#{obj.object_index}"
            if obj.mask is None:
                tally.left_out[BOX_ONLY] += 1
            elif annotated.is_cutout_file:
                x0, y0, x1, y1 = obj.box.voc_ints()
                yield LooseObject(name, obj.class_name, identity,
                                  np.ascontiguousarray(photo.image.pixels[y0:y1, x0:x1]), obj.mask)
            else:
                yield PhotoObject(name, obj.class_name, identity, photo.image.pixels, obj.box, obj.mask)
    tally.backgrounds.extend(b.path for b in background_folder_photos(inputs, problems))  # as generate checks them
    for cutout in rendered_cutouts(inputs, label_map, seed, []):
        (part,) = cutout.parts
        x0, y0, x1, y1 = cutout.object_box.voc_ints()
        yield LooseObject(cutout.cutout_id, part.class_name, cutout.identity,
                          np.ascontiguousarray(cutout.pixels[y0:y1, x0:x1]),
                          np.ascontiguousarray(part.mask[y0:y1, x0:x1]))


def describe_left_out(left_out: dict[str, int]) -> str:
    """``"12 without a true mask (...)"`` for the summary; ``"none"`` if nothing."""
    return "; ".join(f"{count} {reason}" for reason, count in sorted(left_out.items())) or "none"
