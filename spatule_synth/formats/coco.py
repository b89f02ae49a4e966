"""COCO instance JSON: read any COCO export into `AnnotatedImage`s, and write instance masks back.

Conventions (checked against pycocotools, which every COCO consumer uses):

* Polygon vertices and ``bbox`` ``[x, y, width, height]`` are pixel edges, the frame of `Box`:
  pycocotools fills the polygon (2,3) (6,3) (6,8) (2,8) as columns 2..5 and rows 3..7.
* A segmentation is decoded exactly as ``COCO.annToMask`` does: a list of polygons (several lists
  are one object in several pieces, merged), an uncompressed RLE (``counts`` a list of run
  lengths, column-major, starting with a run of 0s) or a compressed RLE (``counts`` a string).
  The object's box is then the tight box of its mask; the annotation's own ``bbox`` is only used
  for annotations without segmentation (box-only objects).
* ``iscrowd=1`` regions cover several objects under one label: they cannot be one object's label,
  so they are dropped (``crowd_region``) and, like every dropped annotation, make the photo
  incomplete (`spatule_synth.core.validation` skips it: its objects would show without boxes).
* A file whose structure is broken (not JSON, a required key missing, duplicate image or category
  ids) is reported once as ``malformed_annotation`` and yields nothing; a bad annotation is
  reported and listed in the image's ``lost`` objects (the photo is then skipped by validation).
  Messages name the JSON file, the image file name and the annotation id.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import unicodedata
import warnings
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from spatule_synth.core.annotations import AnnotatedImage, AnnotatedObject, LostObject, mask_bounds, \
    tight_masked_object, unusable
from spatule_synth.core.boxes import Box, BoxError
from spatule_synth.core.output_dir import atomic_open, atomic_write_bytes
from spatule_synth.core.problems import Problem, ProblemLog
from spatule_synth.core import storage


# The most pixels an image entry may claim: Pillow refuses to decode more (its decompression-bomb
# limit); pycocotools would try to allocate the mask and crash the process.
MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS


class MaskError(ValueError):
    """A segmentation that does not describe a mask of its image; the message says why."""


class _Malformed(ValueError):
    """The JSON file as a whole cannot be used."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_id(value: Any) -> bool:  # COCO ids are ints; some exports use strings, pycocotools takes both
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _is_size(value: Any) -> bool:
    return _is_id(value) and isinstance(value, int) and value > 0


_REQUIRED: dict[str, dict[str, Callable[[Any], bool]]] = {  # the fields every entry must hold
    "images": {"id": _is_id, "file_name": lambda v: isinstance(v, str) and v != "",
               "width": _is_size, "height": _is_size},
    "categories": {"id": _is_id, "name": lambda v: isinstance(v, str)},
    "annotations": {"id": _is_id, "image_id": _is_id, "category_id": _is_id},
}


def read_coco(json_path: str, image_dir: str, problems: ProblemLog) -> list[AnnotatedImage]:
    """One `AnnotatedImage` per image entry whose file exists under ``image_dir``, in JSON order.

    ``file_name`` may hold sub-folders (joined to ``image_dir``). ``object_index`` is the position
    of the annotation among its image's annotations, in JSON order (dropped ones included).
    """
    try:
        document = _load_json(json_path)
        images = _unique(_checked(document, "images"), "image")
        categories = {c["id"]: c["name"] for c in _unique(_checked(document, "categories"), "category")
                      .values()}
        annotations = _checked(document, "annotations")
    except _Malformed as error:
        problems.report(Problem("malformed_annotation", json_path, f"{error}; file skipped"))
        return []
    per_image: dict[Any, list[dict]] = {image_id: [] for image_id in images}
    for annotation in annotations:
        if annotation["image_id"] not in per_image:
            problems.report(Problem("malformed_annotation", json_path, f"annotation id {annotation['id']!r} "
                                    f"refers to image_id {annotation['image_id']!r}, which no image entry "
                                    "has; annotation skipped"))
        else:
            per_image[annotation["image_id"]].append(annotation)
    result = []
    for ids in _entries_by_file(images, image_dir).values():
        entry = images[ids[0]]
        path = storage.join(image_dir, entry["file_name"])
        annotations = [a for image_id in ids for a in per_image[image_id]]
        usable = _usable_entries(json_path, image_dir, path, [images[i] for i in ids], len(annotations),
                                 problems)
        if usable is not True:
            if usable is None:  # the photo exists, its entries do not describe it: never object-free
                result.append(unusable(path, json_path))
            continue
        objects, lost = [], []
        for index, annotation in enumerate(annotations):
            obj = _object(json_path, entry, index, annotation, categories, problems, lost)
            if obj is not None:
                objects.append(obj)
        result.append(AnnotatedImage(path, json_path, tuple(objects), (entry["width"], entry["height"]),
                                     tuple(lost)))
    return result


def _entries_by_file(images: dict[Any, dict], image_dir: str) -> dict[str, list]:
    """Image ids by the file they name (one file may be listed by several entries), JSON order."""
    by_file: dict[str, list] = {}
    for image_id, entry in images.items():
        key = os.path.normcase(os.path.normpath(storage.join(image_dir, entry["file_name"])))
        by_file.setdefault(unicodedata.normalize("NFC", key), []).append(image_id)
    return by_file


def _usable_entries(json_path: str, image_dir: str, path: str, entries: list[dict],
                    annotations: int, problems: ProblemLog) -> bool | None:
    """True if the image entries of one file can be read together: the file exists, they agree
    on its size (several entries: their annotations are merged, with a note) and the size is one a
    photo can have; else reported, and False (no file) or None (entries unusable)."""
    entry, ids = entries[0], ", ".join(repr(e["id"]) for e in entries)
    name = entry["file_name"]
    if not storage.is_file(path):
        problems.report(Problem("missing_image", json_path, f"image {name!r} (id {ids}) is not in "
                                f"{image_dir}; its {annotations} annotation(s) skipped"))
        return False
    if len({(e["width"], e["height"]) for e in entries}) > 1:
        sizes = ", ".join(f"{e['width']}x{e['height']}" for e in entries)
        problems.report(Problem("malformed_annotation", json_path, f"image {name!r} is listed by "
                                f"several entries (ids {ids}) of other sizes ({sizes}); all skipped"))
        return None
    if entry["width"] * entry["height"] > MAX_PIXELS:
        problems.report(Problem("malformed_annotation", json_path, f"image {name!r} (id {ids}) says "
                                f"it is {entry['width']}x{entry['height']} pixels, more than any photo "
                                f"can be decoded at ({MAX_PIXELS} pixels); image skipped"))
        return None
    if len(entries) > 1:
        problems.report(Problem("duplicate_entry", json_path, f"image {name!r} is listed by several "
                                f"entries (ids {ids}); their annotations are taken together"))
    return True


def _load_json(path: str) -> dict:
    try:
        document = json.loads(storage.read_bytes(path))
    except OSError as error:
        raise _Malformed(f"cannot read file: {error.strerror or error}") from error
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise _Malformed(f"not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise _Malformed("the top level is not a JSON object")
    return document


def _checked(document: dict, key: str) -> list[dict]:
    """``document[key]``, every entry an object holding the required fields with valid values."""
    entries = document.get(key)
    if not isinstance(entries, list):
        raise _Malformed(f"no {key!r} list")
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _Malformed(f"{key}[{position}] is not a JSON object")
        for field, valid in _REQUIRED[key].items():
            if field not in entry:
                raise _Malformed(f"{key}[{position}] has no {field!r}")
            if not valid(entry[field]):
                raise _Malformed(f"{key}[{position}] has an invalid {field!r}: {entry[field]!r}")
    return entries


def _unique(entries: list[dict], what: str) -> dict[Any, dict]:
    table: dict[Any, dict] = {}
    for entry in entries:
        if entry["id"] in table:
            raise _Malformed(f"{what} id {entry['id']!r} is used by several entries")
        table[entry["id"]] = entry
    return table


def _object(json_path: str, entry: dict, index: int, annotation: dict, categories: dict[Any, str],
            problems: ProblemLog, lost: list[LostObject]) -> AnnotatedObject | None:
    """The annotation as an object, or None (reported, and added to ``lost``) if it cannot be one."""
    name = categories.get(annotation["category_id"])

    reference = f"annotation id {annotation['id']!r}"

    def report(kind: str, reason: str) -> None:
        problems.report(Problem(kind, json_path, reason, index, name, entry["file_name"], reference))
        lost.append(LostObject(index, name, f"{reference}: "
                               + reason.removesuffix("; object dropped").removesuffix("; dropped")))

    if name is None:
        report("unknown_class", f"category_id {annotation['category_id']!r} is not among the "
                                "file's categories; object dropped")
        return None
    if annotation.get("iscrowd") in (1, True):
        report("crowd_region", "iscrowd=1 marks a region of several objects under one label; dropped")
        return None
    segmentation = annotation.get("segmentation")
    if segmentation is None or segmentation == [] or segmentation == {}:
        return _box_only(name, index, annotation.get("bbox"), report, reference)
    width, height = entry["width"], entry["height"]
    try:
        full_mask = segmentation_mask(segmentation, height, width)
    except MaskError as error:
        report("mask_invalid", f"{error}; object dropped")
        return None
    obj = tight_masked_object(name, full_mask, index, reference=reference)
    if obj is None:
        report("mask_invalid", f"the segmentation covers no pixel of the {width}x{height} image; "
                               "object dropped")
    return obj


def _box_only(name: str, index: int, bbox: Any, report: Callable[[str, str], None],
              reference: str) -> AnnotatedObject | None:
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        report("box_invalid", f"no segmentation and no bbox [x, y, width, height] (bbox is {bbox!r}); "
                              "object dropped")
        return None
    x, y, width, height = bbox
    try:
        return AnnotatedObject(name, Box(x, y, x + width, y + height), index,
                               reference=reference)
    except BoxError as error:
        report("box_invalid", f"bbox {bbox} is not a box: {error}; object dropped")
        return None


def segmentation_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """The full-image ``bool`` mask (height, width) of a COCO segmentation; `MaskError` if bad."""
    if isinstance(segmentation, list):
        polygons = _polygons(segmentation, width, height)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        rle = _rle(segmentation, height, width)
    else:
        raise MaskError("the segmentation is neither a list of polygons nor an RLE with 'counts' and "
                        "'size'")
    with warnings.catch_warnings():  # pycocotools' Cython trips numpy 2's __array__ copy check
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def _polygons(pieces: list, width: int, height: int) -> list[list[float]]:
    """Check every polygon: at least 3 points, finite numbers, a non-zero area (shoelace), every
    vertex within a pixel of the ``width`` x ``height`` image (a polygon beyond it was drawn on
    another image, and pycocotools would cut it off at the edge without a word)."""
    for number, piece in enumerate(pieces):
        if not isinstance(piece, list) or not all(_is_number(v) for v in piece):
            raise MaskError(f"polygon {number} is not a list of finite numbers")
        if len(piece) % 2:
            raise MaskError(f"polygon {number} has an odd number of coordinates ({len(piece)})")
        if len(piece) < 6:
            raise MaskError(f"polygon {number} has {len(piece) // 2} point(s), fewer than 3")
        xs, ys = np.asarray(piece[0::2], float), np.asarray(piece[1::2], float)
        outside = np.flatnonzero((xs < -1) | (xs > width + 1) | (ys < -1) | (ys > height + 1))
        if outside.size:
            x, y = piece[2 * outside[0]], piece[2 * outside[0] + 1]
            raise MaskError(f"polygon {number} reaches ({x:g}, {y:g}), beyond the {width}x{height} "
                            "image of its entry")
        if np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1)) == 0:
            raise MaskError(f"polygon {number} is degenerate (zero area)")
    return [[float(v) for v in piece] for piece in pieces]


def _rle(segmentation: dict, height: int, width: int) -> dict:
    """A pycocotools RLE from an uncompressed or compressed COCO RLE of an image of this size."""
    size, counts = segmentation["size"], segmentation["counts"]
    if size != [height, width]:
        raise MaskError(f"the RLE size {size!r} is not the image's [height, width] [{height}, {width}]")
    runs = _compressed_runs(counts) if isinstance(counts, str) else counts
    if not isinstance(runs, list) or not all(isinstance(c, int) and c >= 0 for c in runs):
        raise MaskError("the RLE counts are neither a compressed string nor a list of run lengths")
    if sum(runs) != height * width:  # pycocotools pads short RLEs with 0s without a word
        raise MaskError(f"the RLE run lengths add up to {sum(runs)} pixels, not the "
                        f"{width}x{height} = {width * height} of the image")
    if isinstance(counts, str):
        return {"size": [height, width], "counts": counts.encode("ascii")}
    return mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)


def _compressed_runs(counts: str) -> list[int] | None:
    """The run lengths of a compressed RLE string (pycocotools' ``rleFrString``), None if it is
    not one: 6-bit groups offset by 48, 5 value bits each, bit 0x20 = more, runs after the second
    stored as differences to the run two before."""
    runs: list[int] = []
    value = shift = 0
    for char in counts:
        code = ord(char) - 48
        if not 0 <= code < 64:
            return None
        value |= (code & 0x1F) << shift
        shift += 5
        if code & 0x20:
            continue
        if code & 0x10:
            value -= 1 << shift
        runs.append(value + (runs[-2] if len(runs) > 2 else 0))
        value = shift = 0
    return runs if shift == 0 else None


@dataclasses.dataclass(frozen=True, eq=False)
class CocoInstance:
    """One object to write: its category and its visible pixels in the whole image."""

    category_id: int
    mask: np.ndarray  # bool (height, width) of the image; must not be empty


@dataclasses.dataclass(frozen=True, eq=False)
class CocoImage:
    """One image entry to write, with its objects."""

    id: int
    file_name: str
    width: int
    height: int
    instances: Sequence[CocoInstance] = ()


def coco_document(images: list[CocoImage], categories: list[tuple[int, str]]) -> dict:
    """A COCO instance document: compressed-RLE masks, tight ``bbox`` (pixel edges), ``area`` =
    mask pixel count, ``iscrowd`` 0, annotation ids 1..N. `ValueError` for duplicate ids, unknown
    categories, masks of the wrong shape or type, and empty masks (invisible objects have no label).
    """
    category_ids = [category_id for category_id, _ in categories]
    entries, annotations = [], []
    for image in images:
        entries.append({"id": image.id, "file_name": image.file_name, "width": image.width,
                        "height": image.height})
        for position, instance in enumerate(image.instances):
            where = f"image {image.file_name!r} instance {position}"
            if instance.category_id not in category_ids:
                raise ValueError(f"{where}: category_id {instance.category_id} is not among the "
                                 f"categories {category_ids}")
            if instance.mask.shape != (image.height, image.width):
                raise ValueError(f"{where}: the mask must be a bool array of the image's shape "
                                 f"{(image.height, image.width)}, got {instance.mask.dtype} "
                                 f"{instance.mask.shape}")
            annotations.append({"image_id": image.id,
                                **instance_fields(instance.category_id, instance.mask, where)})
    return assemble_document(entries, annotations, categories)


def instance_fields(category_id: int, mask: np.ndarray, where: str = "instance") -> dict:
    """The COCO fields of one object from its full-image bool ``mask``: ``category_id``,
    compressed-RLE ``segmentation``, ``area`` (pixel count), tight ``bbox`` and ``iscrowd`` 0."""
    if mask.dtype != bool:
        raise ValueError(f"{where}: the mask must be a bool array, got {mask.dtype}")
    bounds = mask_bounds(mask)
    if bounds is None:
        raise ValueError(f"{where}: the mask is empty; an invisible object cannot be labelled")
    x0, y0, x1, y1 = bounds
    counts = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode("ascii")
    return {"category_id": category_id,
            "segmentation": {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts},
            "area": int(np.count_nonzero(mask)),
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], "iscrowd": 0}


def assemble_document(images: list[dict], annotations: list[dict],
                      categories: list[tuple[int, str]]) -> dict:
    """The whole document from image entries and annotations (``image_id`` set, ``id`` given
    here as 1..N in order); image and category ids must be unique."""
    for what, ids in (("category", [c for c, _ in categories]), ("image", [i["id"] for i in images])):
        if len(set(ids)) != len(ids):
            raise ValueError(f"{what} ids must be unique, got {ids}")
    return {
        "info": {"description": "written by spatule_synth"},
        "licenses": [],
        "images": images,
        "annotations": [{"id": number, **annotation} for number, annotation in enumerate(annotations, 1)],
        "categories": [{"id": c, "name": name, "supercategory": "object"} for c, name in categories],
    }


def write_coco(path: str, document: dict) -> None:
    """Write ``document`` (see `coco_document`) as compact JSON, atomically."""
    atomic_write_bytes(path, json.dumps(document, separators=(",", ":")).encode("utf-8"))


class CocoStreamWriter:
    """A COCO instances JSON written image by image with flat memory: the image entries and the
    annotations go to two scratch files, joined into ``path`` by `close`. The bytes are those of
    ``write_coco(path, assemble_document(images, annotations, categories))``; image ids must
    increase (they are the records' source ids)."""

    def __init__(self, path: str, categories: list[tuple[int, str]], scratch_dir: str) -> None:
        self.path, self.categories = path, categories
        self._images = tempfile.TemporaryFile(dir=scratch_dir)
        self._annotations = tempfile.TemporaryFile(dir=scratch_dir)
        self._last_image_id: int | None = None
        self._annotation_count = 0

    def add(self, image: dict, annotations: Iterable[dict]) -> None:
        """``image``: ``id``, ``file_name``, ``width``, ``height``; ``annotations``: its
        `instance_fields` (``image_id`` and ``id`` are set here)."""
        if self._last_image_id is not None and image["id"] <= self._last_image_id:
            raise ValueError(f"image ids must increase, got {image['id']} after {self._last_image_id}")
        separator = b"," if self._last_image_id is not None else b""
        self._images.write(separator + _compact(image))
        self._last_image_id = image["id"]
        for fields in annotations:
            self._annotation_count += 1
            self._annotations.write((b"," if self._annotation_count > 1 else b"") + _compact(
                {"id": self._annotation_count, "image_id": image["id"], **fields}))

    def close(self) -> str:
        head = assemble_document([], [], self.categories)
        with atomic_open(self.path) as handle:
            handle.write(_compact({key: head[key] for key in ("info", "licenses")})[:-1])
            for key, scratch in (("images", self._images), ("annotations", self._annotations)):
                handle.write(b',"' + key.encode() + b'":[')
                scratch.seek(0)
                shutil.copyfileobj(scratch, handle)
                handle.write(b"]")
                scratch.close()
            handle.write(b',"categories":' + _compact(head["categories"]) + b"}")
        return self.path


def _compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")