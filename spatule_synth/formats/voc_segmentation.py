"""Pascal VOC with instance masks: ``JPEGImages/``, ``Annotations/`` and ``SegmentationObject/``.

Layout of a VOC root (VOC2007-2012, and the exports of CVAT and other tools in that format)::

    ROOT/JPEGImages/NAME.jpg            the photo (any image extension is accepted)
    ROOT/Annotations/NAME.xml           VOC XML: the k-th <object> names the class of instance k
    ROOT/SegmentationObject/NAME.png    palette PNG of instance numbers

Instance PNGs: pixel value ``k`` (1-based) belongs to the k-th ``<object>`` of the XML, 0 is
background and 255 is VOC's *void* band, drawn along every object outline and over regions the
annotator could not decide. The values are palette **indices**: the PNG is read as indices (mode
``P`` or ``L``; Pillow gives the indices of a palette PNG without converting them), never as
colours. A PNG re-saved as RGB with the standard VOC colours (`voc_palette`) is mapped back to
indices; other RGB PNGs are refused.

Which photos: one per PNG of ``SegmentationObject/`` (sorted by name), not the lists of
``ImageSets/Segmentation/``: those split the same PNGs into train/val, and spatule_synth makes its
own splits. Photos of ``JPEGImages/`` without an instance PNG (most of VOC: only boxes) are
ignored here without a message; read them with the labelImg/VOC reader if wanted.

Objects: object k gets the mask ``png == k`` plus the void pixels inside its ``<bndbox>`` (via
`tight_masked_object`: 255 inside, box = its tight bounds), the class ``<name>`` of the k-th
``<object>``, and its ``truncated``/``difficult`` flags; ``object_index`` is ``k - 1``, the 0-based
position of the ``<object>`` as elsewhere.

Void: VOC's void band is about 5 px wide and centred on every outline, so ``png == k`` alone stops
2-3 px *inside* the object's real edge (and a label box made from it would be that much too small).
A void pixel inside an object's ``<bndbox>`` is therefore given to that object; one inside the
boxes of several objects goes to each of them (the cut-out stage then gives a pixel claimed by
several objects to the smallest: `spatule_synth.generate.cutouts`). Void pixels outside every box belong to
no object. Only objects with pixels of their own get void pixels, and the ``<bndbox>`` is used for
nothing else (the mask gives the box): an object whose box is unreadable keeps its own pixels,
without void. Which pixels a ``<bndbox>`` holds (`bndbox_pixels`): VOC writes 1-based inclusive
pixel indices, so ``xmin..xmax`` are the 0-based columns ``xmin - 1 .. xmax - 1``; that range also
holds every column of the same numbers read as pixel edges (``xmin .. xmax - 1``, the convention of
labelImg, the OD API and `spatule_synth.core.boxes`, used by some exporters of this format), so a file
of either convention loses no void pixel of its objects (at worst one extra column or row of void on
the left or top). Fractional coordinates give every column either reading holds.

Problems (reported to the `ProblemLog`, see `spatule_synth.core.problems`): an ``<object>`` with no
pixel in the PNG, or without ``<name>``, and pixel values with no ``<object>`` are objects without
a usable label: they are listed in the photo's ``lost`` objects, so validation skips the photo
(they still show in it). A PNG without XML or image, an unreadable PNG or XML, a photo whose header
cannot be read, and a PNG whose size is not the photo's (EXIF orientation applied) skip the photo.
A photo whose XML has no ``<object>`` and whose PNG has no instance pixel and no void pixel has no
objects (void pixels without any object mark a region the annotator could not decide: lost).
Photos skipped for their annotation are returned with ``usable=False`` (never object-free for
another input). The declared size is the PNG's, which must be the displayed photo's.
"""

from __future__ import annotations

import math
import os
import struct
import warnings

import numpy as np
from PIL import Image

from spatule_synth.core.annotations import AnnotatedImage, AnnotatedObject, LostObject, tight_masked_object, \
    unusable
from spatule_synth.core.boxes import Box
from spatule_synth.core.images import ImageReadError, displayed_size
from spatule_synth.formats.labelimg import InputDirError, images_by_key, is_voc_xml, list_dir, stem_key
from spatule_synth.core.problems import Problem, ProblemLog
from spatule_synth.formats.voc import VocAnnotation, VocFormatError, read_voc
from spatule_synth.core import storage

IMAGES_DIR = "JPEGImages"
ANNOTATIONS_DIR = "Annotations"
INSTANCES_DIR = "SegmentationObject"
VOID = 255


class _MaskReadError(ValueError):
    """The instance PNG cannot be read as indices; the message says why."""


def voc_palette() -> np.ndarray:
    """The standard VOC colour map, ``(256, 3) uint8``: colour of index i (255 is (224, 224, 192))."""
    palette = np.zeros((256, 3), np.uint8)
    for index in range(256):
        value, red, green, blue = index, 0, 0, 0
        for shift in range(7, -1, -1):
            red |= (value & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = red, green, blue
    return palette


def read_voc_segmentation(root: str, problems: ProblemLog) -> list[AnnotatedImage]:
    """The photos of a VOC root with instance masks (see the module docstring), sorted by name."""
    instances_dir = storage.join(root, INSTANCES_DIR)
    for folder in (root, instances_dir, storage.join(root, IMAGES_DIR)):
        if not storage.is_dir(folder):
            raise InputDirError(f"{folder} does not exist or is not a folder; a VOC root with instance "
                                f"masks holds {IMAGES_DIR}/, {ANNOTATIONS_DIR}/ and {INSTANCES_DIR}/")
    images, _ = images_by_key(storage.join(root, IMAGES_DIR))
    annotations_dir = storage.join(root, ANNOTATIONS_DIR)
    xmls = {stem_key(path): path for path in (list_dir(annotations_dir)
                                              if storage.is_dir(annotations_dir) else ())
            if is_voc_xml(path)}
    pngs = [path for path in list_dir(instances_dir)
            if path.lower().endswith(".png") and not os.path.basename(path).startswith(".")]
    result = []
    for png in pngs:
        image = _read_one(root, png, images, xmls, problems)
        if image is not None:
            result.append(image)
    return result


def _read_one(root: str, png: str, images: dict[str, list[str]], xmls: dict[str, str],
              problems: ProblemLog) -> AnnotatedImage | None:
    """One photo of the root; None (reported) if the PNG has no photo, ``usable=False``
    (reported) if its annotation cannot be used."""
    stem = os.path.splitext(os.path.basename(png))[0]
    image_path = _image_of(png, stem, images.get(stem_key(png), []), root, problems)
    if image_path is None:
        return None
    xml = xmls.get(stem_key(png))
    if xml is None:
        problems.report(Problem("malformed_annotation", png, f"no {ANNOTATIONS_DIR}/{stem}.xml names the "
                                "classes of its objects; image skipped"))
        return unusable(image_path, png)
    unnamed: dict[int, str | None] = {}
    try:
        annotation = read_voc(xml, on_bad_object=lambda index, name, reason: unnamed.update({index: name}))
    except VocFormatError as error:
        problems.report(Problem("malformed_xml", xml, str(error).removeprefix(f"{xml}: ")
                                + "; image skipped"))
        return unusable(image_path, xml)
    try:
        indices = read_instance_png(png)
    except _MaskReadError as error:
        problems.report(Problem("malformed_annotation", png, f"{error}; image skipped"))
        return unusable(image_path, png)
    if not _same_size(png, indices, image_path, problems):
        return unusable(image_path, png)
    return _annotated(png, xml, image_path, annotation, unnamed, indices, problems)


def _image_of(png: str, stem: str, candidates: list[str], root: str, problems: ProblemLog) -> str | None:
    if not candidates:
        problems.report(Problem("missing_image", png, f"no image named {stem}.* in "
                                f"{os.path.join(root, IMAGES_DIR)}; image skipped"))
        return None
    if len(candidates) > 1:
        problems.report(Problem("duplicate_stem", png, f"stem {stem!r} is shared by "
                                f"{', '.join(candidates)}; cannot tell which image the mask is for, "
                                "image skipped"))
        return None
    return candidates[0]


def read_instance_png(path: str) -> np.ndarray:
    """The instance numbers of a VOC PNG, ``(height, width) uint8`` (module docstring)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(storage.pillow_source(path)) as image:
                image.load()
                mode = image.mode
                values = np.array(image)
    except (OSError, SyntaxError, ValueError, TypeError, struct.error,
            Image.DecompressionBombError) as error:
        raise _MaskReadError(f"cannot read mask PNG: {error}") from error
    if mode in ("P", "L"):
        return values
    if mode == "RGB":
        return _indices_of_voc_colours(values)
    raise _MaskReadError(f"mask PNG is in mode {mode}; expected a palette PNG whose pixel values are "
                         "object numbers")


def _indices_of_voc_colours(rgb: np.ndarray) -> np.ndarray:
    """Indices of an RGB PNG painted with `voc_palette` colours; `_MaskReadError` if it is not."""
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    palette = voc_palette().astype(np.int64)
    palette_codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    order = np.argsort(palette_codes)
    position = np.clip(np.searchsorted(palette_codes[order], codes), 0, 255)
    indices = order[position]
    unknown = palette_codes[indices] != codes
    if unknown.any():
        raise _MaskReadError(f"mask PNG is RGB and {int(unknown.sum())} of its pixels have colours "
                             "that are not VOC palette colours; save it as a palette PNG of object numbers")
    return indices.astype(np.uint8)


def _same_size(png: str, indices: np.ndarray, image_path: str, problems: ProblemLog) -> bool:
    """True if the PNG covers the photo pixel for pixel; reports and False otherwise."""
    try:
        width, height = displayed_size(image_path)
    except ImageReadError as error:
        problems.report(Problem("unreadable_image", image_path,
                                f"cannot read image: {error.__cause__ or error}; image skipped"))
        return False
    mask_height, mask_width = indices.shape
    if (mask_width, mask_height) != (width, height):
        problems.report(Problem("mask_invalid", png, f"mask is {mask_width}x{mask_height} but the image "
                                f"{os.path.basename(image_path)} is {width}x{height}; image skipped"))
        return False
    return True


def _annotated(png: str, xml: str, image_path: str, annotation: VocAnnotation,
               unnamed: dict[int, str | None], indices: np.ndarray,
               problems: ProblemLog) -> AnnotatedImage:
    """The objects of one photo; the ones that cannot be used are reported and listed in ``lost``
    (validation then skips the photo: they would show without a label)."""
    by_position = {obj.position: obj for obj in annotation.objects}
    count = len(by_position) + len(unnamed)
    pixels = np.bincount(indices.ravel(), minlength=256)
    void = indices == VOID if pixels[VOID] else None
    objects: list[AnnotatedObject] = []
    lost: list[LostObject] = []

    def lose(kind: str, file: str, reason: str, index: int, name: str | None) -> None:
        problems.report(Problem(kind, file, f"{reason}; object dropped", index, name,
                                os.path.basename(image_path)))
        lost.append(LostObject(index, name, reason))

    for index in range(count):
        obj = by_position.get(index)
        name = obj.name if obj is not None else unnamed.get(index)
        value = index + 1
        if not name:
            lose("malformed_annotation", xml, f"<object> has no <name> (it is pixel value {value} of "
                 f"{os.path.basename(png)})", index, None)
            continue
        if value >= VOID:
            lose("mask_invalid", png, f"a VOC mask numbers at most {VOID - 1} objects (value {VOID} "
                 "is void)", index, name)
            continue
        flags = dict(truncated=obj.truncated, difficult=obj.difficult, pose=obj.pose) \
            if obj is not None else {}
        kept = None
        if pixels[value]:
            mask = indices == value
            if void is not None and obj is not None:
                rows, cols = bndbox_pixels(obj.box, indices.shape[1], indices.shape[0])
                mask[rows, cols] |= void[rows, cols]
            kept = tight_masked_object(name, mask, index, **flags)
        if kept is None:
            lose("mask_invalid", png, f"no pixel has value {value}, the number of this <object> of "
                 f"{os.path.basename(xml)}", index, name)
            continue
        objects.append(kept)
    for value in (int(v) for v in np.flatnonzero(pixels) if v not in (0, VOID) and v > count):
        lose("mask_invalid", png, f"{pixels[value]} pixels have value {value} but "
             f"{os.path.basename(xml)} has {count} <object>s: no class for them", value - 1, None)
    if not count and pixels[VOID]:
        lose("mask_invalid", png, f"{pixels[VOID]} void ({VOID}) pixels but {os.path.basename(xml)} "
             "has no <object>: a region the annotator could not decide, so the photo is not known "
             "to be object-free", 0, None)
    # The PNG, checked to cover the decoded photo as displayed, is the frame of the masks.
    height, width = indices.shape
    return AnnotatedImage(image_path, xml, tuple(objects), (width, height), tuple(lost))


def bndbox_pixels(box: Box, width: int, height: int) -> tuple[slice, slice]:
    """``(rows, cols)``: the pixels of a ``width x height`` PNG inside a ``<bndbox>`` as `read_voc`
    returns it (its numbers unchanged), in either convention (module docstring): 0-based columns
    ``ceil(xmin) - 1 .. ceil(xmax) - 1``, i.e. ``xmin - 1 .. xmax - 1`` for integers; the same for
    rows; clipped to the PNG."""
    def span(low: float, high: float, size: int) -> slice:
        return slice(min(size, max(0, math.ceil(low) - 1)), max(0, min(size, math.ceil(high))))

    return span(box.ymin, box.ymax, height), span(box.xmin, box.xmax, width)
