"""The read stage of generation: every input format -> validated cutouts, backgrounds, distractors.

* **Cutouts** (`spatule_synth.cutouts`): every kept object of every labelled photo, grouped with
  the objects it overlaps, with its mask. Sources: labelImg folders (``input_dirs``), COCO JSON,
  YOLO folders, VOC ``SegmentationObject`` roots and alpha-PNG cutout folders. Box-only objects
  get masks by ``--mask`` (``box``, ``grabcut`` or ``model``), computed once per object here.
  Each cutout knows its identity (see `identity_of`).
* **Backgrounds**: photos known to show no labelled object (an annotation without objects, or no
  annotation at all) from the labelled inputs, plus every image of ``background_dirs``. A photo
  whose objects were all dropped is *not* a background: its pixels still show them.
* **Distractors**: alpha-PNG cutouts from ``distractor_dirs``, pasted but never labelled.

Every format goes through the same validation (`_validated`): class in the label map, box inside
the decoded photo (clipped, or dropped, and reported), mask not empty. Pixels of backgrounds are
not kept here (workers decode them again, with a bounded cache); only their file and size.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Iterator

import numpy as np
from PIL import Image

from spatule_synth.annotations import AnnotatedImage, AnnotatedObject, mask_bounds
from spatule_synth.boxes import Box
from spatule_synth.config import GenerateConfig
from spatule_synth.cutouts import Cutout, PhotoObject, cut_group, distractor_cutout, overlapping_groups
from spatule_synth.images import DecodedImage, ImageReadError, \
    box_in_display_frame, check_image, is_image_file, read_image
from spatule_synth.label_map import LabelMap
from spatule_synth.labelimg import InputDirError, find_pairs, load_labelled_image
from spatule_synth.problems import Problem, ProblemLog
from spatule_synth.transform import CUTOUT_MARGIN, placement_geometry

__all__ = ["CUTOUT_MARGIN", "Background", "Cutout", "SourceError", "SourceSet", "read_sources"]


class SourceError(ValueError):
    """The inputs cannot make a data set at all (no cutout, no background); says what to add."""


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
    distractors: tuple[Cutout, ...] = ()


def identity_of(config: GenerateConfig, path: str, object_index: int) -> str | None:
    """The identity of an object of ``path``; None if ``--identity_regex`` does not match.
    (``auto``: each object for now; `_merge_near_duplicates` then joins re-photographed ones.)"""
    if config.identity == "image":
        return path
    if config.identity in ("object", "auto"):
        return f"{path}#{object_index}"
    match = re.search(config.identity_regex, os.path.basename(path))
    if match is None:
        return None
    return match.group(1) if match.re.groups else match.group(0)


class _MaskMaker:
    """Masks for box-only objects by ``--mask``; the model is loaded once, on first use."""

    def __init__(self, config: GenerateConfig, problems: ProblemLog) -> None:
        self.config, self.problems, self._model = config, problems, None

    def __call__(self, pixels: np.ndarray, box: tuple[int, int, int, int], file: str, index: int,
                 name: str) -> np.ndarray:
        x0, y0, x1, y1 = box
        if self.config.mask == "box":
            return np.full((y1 - y0, x1 - x0), 255, np.uint8)
        from spatule_synth.masks import load_mask_model, refine_mask
        if self.config.mask == "model" and self._model is None:
            self._model = load_mask_model(self.config.mask_model)
        mask, fell_back = refine_mask(pixels, Box(x0, y0, x1, y1), self.config.mask, self._model)
        if fell_back:
            self.problems.report(Problem("mask_fallback", file, f"--mask={self.config.mask} found no "
                                         "object in the box; the whole box is used", index, name))
        return mask


def read_sources(config: GenerateConfig, label_map: LabelMap, problems: ProblemLog) -> SourceSet:
    """Read and validate every input once; `SourceError` if no cutout or no background is left."""
    make_mask = _MaskMaker(config, problems)
    cutouts: list[Cutout] = []
    backgrounds: list[Background] = []
    for pair in find_pairs(config.input_dirs, config.annotation_dirs, problems) if config.input_dirs else ():
        labelled = load_labelled_image(pair, label_map, problems)
        if labelled is None:
            continue
        xml = pair.xml_path or pair.image_path
        if labelled.objects:
            objects = []
            for obj in labelled.objects:
                box = obj.box.voc_ints()
                mask = make_mask(labelled.image.pixels, box, xml, obj.object_index, obj.name)
                objects.append(PhotoObject(obj.name, obj.class_id, box, mask, obj.object_index))
            cutouts.extend(cut_out(pair.image_path, labelled.image.pixels, objects, xml, config, problems))
        elif labelled.is_object_free:
            backgrounds.append(_background(pair.image_path, labelled.image.width,
                                           labelled.image.height, config, problems))
    for annotated in _annotated_images(config, problems):
        try:
            image = read_image(annotated.image_path)
        except ImageReadError as error:
            problems.report(Problem("unreadable_image", annotated.image_path, f"{error}; image skipped"))
            continue
        objects = _validated(annotated, image, label_map, problems, make_mask)
        if objects:
            cutouts.extend(cut_out(annotated.image_path, image.pixels, objects,
                                   annotated.annotation_path, config, problems))
        elif not annotated.objects:
            backgrounds.append(_background(annotated.image_path, image.width, image.height, config,
                                           problems))
    for folder in config.background_dirs:
        backgrounds.extend(_backgrounds_in(folder, config, problems))
    if not cutouts:
        raise SourceError("no usable labelled object in the inputs: label some objects (classes of "
                          "the label map) or check the messages above")
    if not backgrounds:
        raise SourceError("no background photo: add photos without objects to the inputs "
                          "(an annotation with no object, or none) or give --background_dirs")
    if config.identity == "auto":
        cutouts = _merge_near_duplicates(cutouts)
    return SourceSet(tuple(cutouts), tuple(backgrounds), tuple(_distractors(config, problems)))


def _merge_near_duplicates(cutouts: list[Cutout]) -> list[Cutout]:
    """``--identity=auto``: cutouts that show the same object (re-photographed: shifted, rescaled,
    re-lit, re-compressed; see `spatule_synth.near_duplicates`) share one identity, named after
    the first of them, so the split can never put one physical tag on both sides."""
    from spatule_synth.near_duplicates import group_near_duplicates
    groups = group_near_duplicates([c.object_pixels for c in cutouts])
    first: dict[int, str] = {}
    for cutout, group in zip(cutouts, groups):
        first.setdefault(group, cutout.cutout_id)
    return [dataclasses.replace(c, identity=f"auto:{first[g]}") for c, g in zip(cutouts, groups)]


def _annotated_images(config: GenerateConfig, problems: ProblemLog) -> Iterator[AnnotatedImage]:
    """Labelled photos of every format other than labelImg folders, in flag order."""
    if config.coco_json:
        from spatule_synth.coco import read_coco
        for json_path, image_dir in zip(config.coco_json, config.coco_image_dirs):
            yield from read_coco(json_path, image_dir, problems)
    if config.yolo_dirs:
        from spatule_synth.yolo import read_yolo_folder
        for folder in config.yolo_dirs:
            yield from read_yolo_folder(folder, problems)
    if config.voc_seg_dirs:
        from spatule_synth.voc_segmentation import read_voc_segmentation
        for root in config.voc_seg_dirs:
            yield from read_voc_segmentation(root, problems)
    if config.cutout_dirs:
        from spatule_synth.alpha_cutouts import read_alpha_cutouts
        for root in config.cutout_dirs:
            yield from read_alpha_cutouts(root, problems)


_EXIF_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                   4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                   6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                   8: Image.Transpose.ROTATE_90}  # as Pillow's ImageOps.exif_transpose


def _validated(annotated: AnnotatedImage, image: DecodedImage, label_map: LabelMap,
               problems: ProblemLog, make_mask: _MaskMaker) -> list[PhotoObject]:
    """The objects of ``annotated`` that fit ``image`` and the label map, with masks."""
    file = annotated.annotation_path
    in_raw_frame = False
    if annotated.declared_size not in (None, (image.width, image.height)):
        in_raw_frame = image.orientation != 1 and annotated.declared_size == image.raw_size
        kind, note = (("exif_frame", "annotations are in the stored frame of an EXIF-rotated image; "
                       "moved to the displayed frame") if in_raw_frame else
                      ("size_mismatch", "using the decoded size"))
        problems.report(Problem(kind, file, f"{annotated.image_path}: the annotation says "
                                f"{annotated.declared_size[0]}x{annotated.declared_size[1]}, the image "
                                f"decodes to {image.width}x{image.height}; {note}"))
    objects = []
    for obj in annotated.objects:
        class_id = label_map.id_of(obj.class_name)
        if class_id is None:
            problems.report(Problem("unknown_class", file, label_map.unknown_class_reason(obj.class_name)
                                    + "; object dropped", obj.object_index, obj.class_name))
            continue
        box, mask = obj.box, obj.mask
        if in_raw_frame:
            box = box_in_display_frame(box, image.orientation, image.raw_size)
            if mask is not None:
                mask = np.asarray(Image.fromarray(mask).transpose(_EXIF_TRANSPOSE[image.orientation]))
        placed = _inside(box, mask, image, file, obj, problems)
        if placed is None:
            continue
        box_ints, mask = placed
        if mask is None:
            mask = make_mask(image.pixels, box_ints, file, obj.object_index, obj.class_name)
        objects.append(PhotoObject(obj.class_name, class_id, box_ints, mask, obj.object_index))
    return objects


def _inside(box: Box, mask: np.ndarray | None, image: DecodedImage, file: str, obj: AnnotatedObject,
            problems: ProblemLog) -> tuple[tuple[int, int, int, int], np.ndarray | None] | None:
    """Integer box (and mask) clipped to the image; None, reported, if nothing usable is left."""
    size = f"{image.width}x{image.height}"
    clipped = box.clipped_to(image.width, image.height) if box.width >= 1 and box.height >= 1 else None
    if clipped is None or clipped.width < 1 or clipped.height < 1:
        problems.report(Problem("box_outside" if box.width >= 1 and box.height >= 1 else "box_invalid",
                                file, f"box ({box}) leaves less than one pixel inside the {size} image;"
                                " object dropped", obj.object_index, obj.class_name))
        return None
    if clipped != box:
        problems.report(Problem("box_clipped", file, f"box ({box}) goes beyond the {size} image; "
                                f"clipped to ({clipped})", obj.object_index, obj.class_name))
    x0, y0, x1, y1 = clipped.voc_ints()
    if mask is not None:
        bx0, by0 = int(box.xmin), int(box.ymin)
        mask = mask[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]
        if mask.shape != (y1 - y0, x1 - x0) or mask_bounds(mask) is None:
            problems.report(Problem("mask_invalid", file, "the mask is empty inside the image; "
                                    "object dropped", obj.object_index, obj.class_name))
            return None
    return (x0, y0, x1, y1), mask


def cut_out(path: str, pixels: np.ndarray, objects: list[PhotoObject], file: str,
            config: GenerateConfig, problems: ProblemLog) -> list[Cutout]:
    """The cutouts of one photo: overlapping objects grouped; too-large groups reported."""
    cutouts = []
    for group in overlapping_groups([obj.box for obj in objects]):
        members = [objects[i] for i in group]
        first = members[0]
        identity = identity_of(config, path, first.object_index)
        if identity is None:
            for obj in members:
                problems.report(Problem("identity_unmatched", file, f"--identity_regex "
                                        f"{config.identity_regex!r} does not match the file name; "
                                        "object skipped", obj.object_index, obj.class_name))
            continue
        cutout = cut_group(pixels, members, path, identity)
        smallest = placement_geometry(cutout.size, cutout.object_box, config.scale_range[0])
        if max(smallest.width, smallest.height) > config.canvas_size:
            for obj in members:
                problems.report(Problem("cutout_too_large", file, f"object{' group' if len(members) > 1 else ''} "
                                        f"of {int(cutout.object_box.width)}x{int(cutout.object_box.height)} px "
                                        f"(with its {CUTOUT_MARGIN} px margin, at the smallest "
                                        "--scale_range) does not fit the "
                                        f"{config.canvas_size}x{config.canvas_size} canvas; object skipped",
                                        obj.object_index, obj.class_name))
            continue
        kept = {part.object_index for part in cutout.parts}
        for obj in members:
            if obj.object_index not in kept:
                problems.report(Problem("mask_invalid", file, "every pixel of its mask belongs to a "
                                        "smaller overlapping object; object dropped",
                                        obj.object_index, obj.class_name))
        cutouts.append(cutout)
    return cutouts


def _distractors(config: GenerateConfig, problems: ProblemLog) -> list[Cutout]:
    if not config.distractor_dirs:
        return []
    from spatule_synth.alpha_cutouts import read_alpha_cutouts
    found = []
    for root in config.distractor_dirs:
        for annotated in read_alpha_cutouts(root, problems, allow_flat=True):
            try:
                pixels = read_image(annotated.image_path).pixels
            except ImageReadError as error:
                problems.report(Problem("unreadable_image", annotated.image_path, f"{error}; skipped"))
                continue
            for obj in annotated.objects:
                found.append(distractor_cutout(pixels, obj.mask, obj.box.voc_ints(), annotated.image_path))
    return found


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
