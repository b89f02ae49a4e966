"""The read stage of generation: labelImg folders -> validated cutouts and background photos.

* **Cutouts**: every kept object of every labelled photo, cut out by its box with exactly
  `CUTOUT_MARGIN` pixels of context on each side (edge pixels repeated where the photo ends).
  ``cv2.seamlessClone`` ignores the source gradients of the outer 4 pixels of its mask (it zeroes
  a 1-px ring, then erodes 3 px): with less margin the edge of a flat object is not cloned and
  the object can vanish entirely. Each cutout knows its identity (see `identity_of`), class,
  source file and object index.
* **Backgrounds**: photos known to show no labelled object (an XML without ``<object>``, or no
  XML at all) from ``input_dirs``, plus every image of ``background_dirs``. A photo whose objects
  were all dropped is *not* a background: its pixels still show them.

Pixels of backgrounds are not kept here (they are decoded again, with a bounded cache, by the
workers that crop them); only their file, size and identity.
"""

from __future__ import annotations

import dataclasses
import os
import re

import cv2
import numpy as np

from spatule_synth.boxes import Box
from spatule_synth.config import GenerateConfig
from spatule_synth.images import ImageReadError, check_image, is_image_file
from spatule_synth.label_map import LabelMap
from spatule_synth.labelimg import InputDirError, LabelledImage, find_pairs, load_labelled_image
from spatule_synth.problems import Problem, ProblemLog

CUTOUT_MARGIN = 8


class SourceError(ValueError):
    """The inputs cannot make a data set at all (no cutout, no background); says what to add."""


@dataclasses.dataclass(frozen=True, eq=False)
class Cutout:
    """A labelled object cut out of its photo, with some context around its box."""

    cutout_id: str  # "<photo path>#<object index>"
    identity: str  # cutouts sharing an identity always land in the same split
    class_name: str
    class_id: int
    pixels: np.ndarray  # (height, width, 3) uint8 RGB: the box plus CUTOUT_MARGIN px all round
    object_box: Box  # the object's box inside `pixels`: CUTOUT_MARGIN in from every edge
    source_file: str
    object_index: int

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


@dataclasses.dataclass(frozen=True)
class Background:
    """An object-free photo; windows of it become canvases."""

    path: str
    width: int  # displayed size (EXIF orientation applied)
    height: int


@dataclasses.dataclass(frozen=True, eq=False)
class SourceSet:
    cutouts: tuple[Cutout, ...]
    backgrounds: tuple[Background, ...]


def identity_of(config: GenerateConfig, path: str, object_index: int) -> str | None:
    """The identity of an object of ``path``; None if ``--identity_regex`` does not match."""
    if config.identity == "image":
        return path
    if config.identity == "object":
        return f"{path}#{object_index}"
    match = re.search(config.identity_regex, os.path.basename(path))
    if match is None:
        return None
    return match.group(1) if match.re.groups else match.group(0)


def cut_out(labelled: LabelledImage, config: GenerateConfig, problems: ProblemLog) -> list[Cutout]:
    """The cutouts of one labelled photo (objects too large for the canvas are reported)."""
    path = labelled.source.image_path
    pixels = labelled.image.pixels
    height, width = pixels.shape[:2]
    cutouts = []
    for obj in labelled.objects:
        identity = identity_of(config, path, obj.object_index)
        xml = labelled.source.xml_path or path
        if identity is None:
            problems.report(Problem("identity_unmatched", path, f"--identity_regex "
                                    f"{config.identity_regex!r} does not match the file name; "
                                    "object skipped", obj.object_index, obj.name))
            continue
        x0, y0, x1, y1 = obj.box.voc_ints()
        placed_size = max(scaled_size(x1 - x0, config.scale_range[0]),
                          scaled_size(y1 - y0, config.scale_range[0]))
        if placed_size > config.canvas_size:
            problems.report(Problem("cutout_too_large", xml, f"object of {x1 - x0}x{y1 - y0} px "
                                    f"(with its {CUTOUT_MARGIN} px margin, at the smallest "
                                    "--scale_range) does not fit the "
                                    f"{config.canvas_size}x{config.canvas_size} canvas; object skipped",
                                    obj.object_index, obj.name))
            continue
        cutouts.append(Cutout(
            cutout_id=f"{path}#{obj.object_index}", identity=identity, class_name=obj.name,
            class_id=obj.class_id, pixels=_with_margin(pixels, x0, y0, x1, y1),
            object_box=Box(CUTOUT_MARGIN, CUTOUT_MARGIN, CUTOUT_MARGIN + x1 - x0,
                           CUTOUT_MARGIN + y1 - y0),
            source_file=path, object_index=obj.object_index))
    return cutouts


def scaled_size(object_size: int, scale: float) -> int:
    """Side of a pasted cutout: the object scaled (at least 1 px) plus the margin on both sides."""
    return max(1, round(object_size * scale)) + 2 * CUTOUT_MARGIN


def _with_margin(pixels: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """The box plus CUTOUT_MARGIN px all round, edge pixels repeated beyond the photo."""
    height, width = pixels.shape[:2]
    left, top = max(x0 - CUTOUT_MARGIN, 0), max(y0 - CUTOUT_MARGIN, 0)
    right, bottom = min(x1 + CUTOUT_MARGIN, width), min(y1 + CUTOUT_MARGIN, height)
    crop = pixels[top:bottom, left:right]
    pads = (top - (y0 - CUTOUT_MARGIN), (y1 + CUTOUT_MARGIN) - bottom,
            left - (x0 - CUTOUT_MARGIN), (x1 + CUTOUT_MARGIN) - right)
    if any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(crop)


def read_sources(config: GenerateConfig, label_map: LabelMap, problems: ProblemLog) -> SourceSet:
    """Read and validate every input once; `SourceError` if no cutout or no background is left."""
    cutouts: list[Cutout] = []
    backgrounds: list[Background] = []
    for pair in find_pairs(config.input_dirs, config.annotation_dirs, problems):
        labelled = load_labelled_image(pair, label_map, problems)
        if labelled is None:
            continue
        if labelled.objects:
            cutouts.extend(cut_out(labelled, config, problems))
        elif labelled.is_object_free:
            backgrounds.append(_background(pair.image_path, labelled.image.width,
                                           labelled.image.height, config, problems))
    for folder in config.background_dirs:
        backgrounds.extend(_backgrounds_in(folder, config, problems))
    if not cutouts:
        raise SourceError(f"no usable labelled object in {', '.join(config.input_dirs)}: "
                          "label some objects with labelImg (classes of the label map)")
    if not backgrounds:
        raise SourceError("no background photo: add photos without objects to --input_dirs "
                          "(an XML with no <object>, or no XML) or give --background_dirs")
    return SourceSet(tuple(cutouts), tuple(backgrounds))


def _backgrounds_in(folder: str, config: GenerateConfig, problems: ProblemLog) -> list[Background]:
    if not os.path.isdir(folder):
        raise InputDirError(f"background folder {folder} does not exist or is not a folder")
    found = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not (os.path.isfile(path) and is_image_file(path)):
            continue
        try:  # decoded once, so a corrupt photo is caught here and not in a worker
            width, height = check_image(path)
        except ImageReadError as error:
            problems.report(Problem("unreadable_image", path, f"{error}; background skipped"))
            continue
        found.append(_background(path, width, height, config, problems))
    return found


def _background(path: str, width: int, height: int, config: GenerateConfig,
                problems: ProblemLog) -> Background:
    if min(width, height) < config.canvas_size:
        problems.report(Problem("background_small", path, f"{width}x{height} is smaller than the "
                                f"{config.canvas_size}x{config.canvas_size} canvas; it is upscaled "
                                "to cover it"))
    return Background(path, width, height)
