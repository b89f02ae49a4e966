"""One validation path for labelled photos of every format: the annotation against the decoded
photo and the label map, before anything is written.

Every reader (`spatule_synth.formats.labelimg`, ``coco``, ``yolo``, ``voc_segmentation``,
``alpha_cutouts``) gives `AnnotatedImage`s; `load_photo` decodes the photo and returns a
`ValidPhoto` whose objects can be trusted, or None after reporting why the photo is skipped.
The rules (each problem is reported to the `ProblemLog` naming the file, the object and the reason):

* **No annotation file** (``labelled=False``): not known to be object-free (in a labelImg folder a
  missing XML usually means "not labelled yet"): skipped with a ``no_annotation`` note, unless
  ``InputRules.unlabelled == "negative"``.
* **A photo that lost a label is skipped whole** (``image_incomplete``): an object its reader could
  not read, of a class neither in the label map nor ignored, with no pixel inside the photo, or
  with an empty mask would be visible in the photo without a box; such a photo is neither a
  negative, nor a background, nor written with its remaining boxes.
* **Ignored classes** (``InputRules.ignore_classes``): objects of classes the user says are not
  labels (e.g. ``bird`` in a tag data set) are left out with a note and do not make the photo
  incomplete; ``"*"`` ignores every class that is not in the label map, except names close to a
  label map class (a typo such as ``tga`` still skips the photo).
* **The frame the annotator saw.** When the annotation states a size that is not the decoded one:
  the stored (un-rotated) size of an EXIF-rotated photo moves the boxes to the displayed frame
  (``exif_frame``, older labelImg); the same size scaled by one factor on both axes (the photo was
  resized after labelling) scales the boxes and masks (``size_scaled``); width and height swapped
  (the photo was turned after labelling) skips it (``size_conflict``); any other size keeps the
  boxes only if every one of them lies inside the decoded image (``size_mismatch``), else the
  photo is skipped (``size_conflict``: the boxes were drawn on another image). An EXIF-rotated
  photo whose annotation states no size (YOLO), or a size that cannot tell the frame (orientation
  2-4, or a square photo), gets a note (``exif_unknown_frame``). Notes about the frame are reported only for photos that are kept.
* **Boxes** partly outside the photo are clipped (``box_clipped``); an object of less than one
  pixel inside it is lost. An exact duplicate (same class, box and mask) is kept once
  (``duplicate_object``).

Box coordinates follow `spatule_synth.core.boxes`; masks follow `spatule_synth.core.annotations`.
"""

from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np

from spatule_synth.core.annotations import AnnotatedImage, AnnotatedObject, LostObject, mask_bounds
from spatule_synth.core.boxes import Box
from spatule_synth.core.images import DecodedImage, ImageReadError, TRANSPOSING_ORIENTATIONS, \
    box_in_display_frame, decode_image, mask_in_display_frame, unsupported_format
from spatule_synth.formats.label_map import LabelMap, LabelMapError
from spatule_synth.core.problems import Problem, ProblemLog
from spatule_synth.core import storage

UNLABELLED_CHOICES = ("skip", "negative")
IGNORE_ALL_OTHERS = "*"
BOX_TOLERANCE = 1.0  # px: how far beyond the decoded image a box may reach and still "fit" it


@dataclasses.dataclass(frozen=True)
class InputRules:
    """How labelled inputs are read (the same for convert and generate)."""

    unlabelled: str = "skip"  # a photo with no annotation file: "skip" or "negative"
    ignore_classes: tuple[str, ...] = ()  # classes that are not labels ("*": all others)

    def __post_init__(self) -> None:
        if self.unlabelled not in UNLABELLED_CHOICES:
            raise ValueError(f"unlabelled must be one of {', '.join(UNLABELLED_CHOICES)}, "
                             f"got {self.unlabelled!r}")

    def check(self, label_map: LabelMap) -> None:
        """`LabelMapError` if ``ignore_classes`` names a class of the label map (it cannot be
        both a label and not one)."""
        both = [name for name in self.ignore_classes if label_map.id_of(name) is not None]
        if both:
            raise LabelMapError(f"--ignore_classes names {', '.join(map(repr, both))}, a class of the "
                                "label map: a class is either a label or ignored")

    def ignores(self, name: str, label_map: LabelMap) -> bool:
        """True if ``name`` (not in the label map) is deliberately not a label."""
        if name in self.ignore_classes:
            return True
        return IGNORE_ALL_OTHERS in self.ignore_classes and label_map.closest(name) is None


@dataclasses.dataclass(frozen=True, eq=False)
class ValidObject:
    """An object that can be trusted: a label map class, a box inside the decoded photo (pixel
    edges, displayed frame) and, when the format gives one, its mask over ``box.voc_ints()``."""

    class_name: str
    class_id: int
    box: Box
    object_index: int
    mask: np.ndarray | None = None
    truncated: bool = False
    difficult: bool = False
    pose: str = "Unspecified"
    reference: str | None = None  # where it is in its file (`AnnotatedObject.reference`)


@dataclasses.dataclass(frozen=True, eq=False)
class ValidPhoto:
    """A decoded photo with its trusted objects (none: a photo known to show no labelled object)."""

    image_path: str
    annotation_path: str | None  # None: no annotation file (taken as object-free on request)
    file_bytes: bytes
    image: DecodedImage
    objects: tuple[ValidObject, ...]

    @property
    def source_file(self) -> str:
        """The file messages about the photo's labels name."""
        return self.annotation_path or self.image_path

    def problem(self, kind: str, reason: str, obj: ValidObject | None = None) -> Problem:
        """A `Problem` about this photo (or one of its objects), naming the annotation file, the
        image and the object."""
        image = None if self.source_file == self.image_path else os.path.basename(self.image_path)
        if obj is None:
            return Problem(kind, self.source_file, reason, image=image)
        return Problem(kind, self.source_file, reason, obj.object_index, obj.class_name, image,
                       obj.reference)


def load_photo(annotated: AnnotatedImage, label_map: LabelMap, rules: InputRules,
               problems: ProblemLog) -> ValidPhoto | None:
    """Decode and validate one photo (module docstring); None, reported, if it is skipped."""
    if not annotated.usable:
        return None  # its reader said why
    if not annotated.labelled:
        if rules.unlabelled == "skip":
            problems.report(Problem("no_annotation", annotated.image_path, "no annotation file "
                                    "labels this image (not labelled yet?); skipped. If such photos "
                                    "show no object, pass --unlabelled=negative or give their "
                                    "folder as --background_dirs"))
            return None
    unsupported = unsupported_format(annotated.image_path)
    if unsupported:  # never decoded: Pillow may read a RAW's small preview as if it were the photo
        problems.report(Problem("unsupported_image", annotated.image_path,
                                f"{unsupported}; image skipped"))
        return None
    try:
        file_bytes = storage.read_bytes(annotated.image_path)
        image = decode_image(file_bytes)
    except (OSError, ImageReadError) as error:
        reason = str(error) if isinstance(error, ImageReadError) else \
            f"cannot read file: {error.strerror or error}"
        problems.report(Problem("unreadable_image", annotated.image_path, f"{reason}; image skipped"))
        return None
    if not annotated.labelled:
        problems.report(Problem("unlabelled_negative", annotated.image_path, "no annotation file; "
                                "taken as a photo without objects (--unlabelled=negative)"))
    objects = validate_objects(annotated, image, label_map, rules, problems)
    if objects is None:
        return None
    return ValidPhoto(annotated.image_path, annotated.annotation_path if annotated.labelled else None,
                      file_bytes, image, objects)


def validate_objects(annotated: AnnotatedImage, image: DecodedImage, label_map: LabelMap,
                     rules: InputRules, problems: ProblemLog) -> tuple[ValidObject, ...] | None:
    """The trusted objects of ``annotated`` in the decoded ``image``; None (reported) if the
    photo must be skipped."""
    notes: list[Problem] = []
    frame = _frame(annotated, image, problems, notes)
    if frame is None:
        return None
    lost = list(annotated.lost)
    kept: list[ValidObject] = []
    seen: dict[tuple, int] = {}
    for obj in annotated.objects:
        valid = _valid_object(annotated, obj, image, frame, label_map, rules, problems, lost)
        if valid is None:
            continue
        key = (valid.class_name, valid.box, None if valid.mask is None else valid.mask.tobytes())
        if key in seen:
            problems.report(Problem("duplicate_object", annotated.annotation_path,
                                    f"same class and box ({valid.box}) as object #{seen[key]}: "
                                    "labelled twice; kept once", obj.object_index, obj.class_name,
                                    _image_name(annotated), obj.reference))
            continue
        seen[key] = obj.object_index
        kept.append(valid)
    if lost:
        problems.report(Problem("image_incomplete", annotated.annotation_path,
                                f"image skipped whole: {_describe_lost(lost)}, so the photo would "
                                "show an object without a box. Fix the annotation (or list a class "
                                "that is not a label in --ignore_classes)",
                                image=_image_name(annotated)))
        return None
    for note in notes:
        problems.report(note)
    return tuple(kept)


def _image_name(annotated: AnnotatedImage) -> str | None:
    """The photo's file name when the annotation file is not the photo itself (`Problem.image`)."""
    if annotated.annotation_path == annotated.image_path:
        return None
    return os.path.basename(annotated.image_path)


def _describe_lost(lost: list[LostObject]) -> str:
    """``"object #1 ('tga') lost its label (class 'tga' is not ...)"``; at most 3 reasons."""
    named = [f"#{o.object_index}" + (f" ({o.class_name!r})" if o.class_name else "") for o in lost]
    if len(lost) == 1:
        return f"object {named[0]} lost its label ({lost[0].reason})"
    more = f"; and {len(lost) - 3} more (all listed in manifest.json)" if len(lost) > 3 else ""
    return (f"{len(lost)} objects lost their labels ("
            + "; ".join(f"{name}: {o.reason}" for name, o in zip(named, lost[:3])) + more + ")")


def _valid_object(annotated: AnnotatedImage, obj: AnnotatedObject, image: DecodedImage,
                  frame: _Frame, label_map: LabelMap, rules: InputRules, problems: ProblemLog,
                  lost: list[LostObject]) -> ValidObject | None:
    """``obj`` checked and moved into the decoded frame; None if it is left out (an ignored
    class) or lost (reported, and added to ``lost``)."""
    file, image_name = annotated.annotation_path, _image_name(annotated)

    def lose(kind: str, reason: str) -> None:
        problems.report(Problem(kind, file, f"{reason}; object dropped", obj.object_index,
                                obj.class_name, image_name, obj.reference))
        lost.append(LostObject(obj.object_index, obj.class_name, reason))

    class_id = label_map.id_of(obj.class_name)
    if class_id is None:
        if rules.ignores(obj.class_name, label_map):
            problems.report(Problem("ignored_class", file, f"class {obj.class_name!r} is in "
                                    "--ignore_classes: not a label, left out", obj.object_index,
                                    obj.class_name, image_name, obj.reference))
        else:
            lose("unknown_class", label_map.unknown_class_reason(obj.class_name))
        return None
    box, mask = frame.move(obj.box, obj.mask)
    size = f"{image.width}x{image.height}"
    if box.width < 1 or box.height < 1:
        lose("box_invalid", f"box ({box}) is less than one pixel wide or high")
        return None
    clipped = box.clipped_to(image.width, image.height)
    if clipped is None:
        lose("box_outside", f"box ({box}) lies entirely outside the {size} image")
        return None
    if clipped.width < 1 or clipped.height < 1:
        lose("box_outside", f"box ({box}) leaves less than one pixel inside the {size} image")
        return None
    beyond = clipped != box
    if mask is not None:
        inside = _mask_inside(mask, box, clipped)
        if inside is None:
            lose("mask_invalid", "the mask is empty inside the image")
            return None
        clipped, mask = inside
    if beyond:
        problems.report(Problem("box_clipped", file, f"box ({box}) goes beyond the {size} image; "
                                f"clipped to ({clipped})", obj.object_index, obj.class_name,
                                image_name, obj.reference))
    return ValidObject(label_map.name_of(class_id), class_id, clipped, obj.object_index, mask,
                       obj.truncated, obj.difficult, obj.pose, obj.reference)


def _mask_inside(mask: np.ndarray, box: Box, clipped: Box) -> tuple[Box, np.ndarray] | None:
    """The part of ``mask`` (over ``box.voc_ints()``) inside ``clipped``, cut to the tight box of
    its set pixels, and that box; None if no pixel of it is set."""
    bx0, by0, _, _ = box.voc_ints()
    x0, y0, x1, y1 = clipped.voc_ints()
    mask = mask[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]
    bounds = mask_bounds(mask) if mask.shape == (y1 - y0, x1 - x0) else None
    if bounds is None:
        return None
    mx0, my0, mx1, my1 = bounds
    return (Box(x0 + mx0, y0 + my0, x0 + mx1, y0 + my1),
            np.ascontiguousarray(mask[my0:my1, mx0:mx1]))


@dataclasses.dataclass(frozen=True)
class _Frame:
    """How to move annotation coordinates into the decoded photo: scale (from the declared size
    to the stored or displayed one), then the EXIF turn when boxes were drawn un-rotated."""

    scale: tuple[float, float] = (1.0, 1.0)
    orientation: int = 1  # EXIF orientation to apply; 1 when boxes are in the displayed frame
    raw_size: tuple[int, int] = (0, 0)

    def move(self, box: Box, mask: np.ndarray | None) -> tuple[Box, np.ndarray | None]:
        sx, sy = self.scale
        if (sx, sy) != (1.0, 1.0):
            scaled = Box(box.xmin * sx, box.ymin * sy, box.xmax * sx, box.ymax * sy)
            mask = None if mask is None else _scaled_mask(mask, scaled)
            box = scaled if mask is None else Box(*scaled.voc_ints())
        if self.orientation != 1:
            box = box_in_display_frame(box, self.orientation, self.raw_size)
            mask = None if mask is None else mask_in_display_frame(mask, self.orientation)
        return box, mask


def _scaled_mask(mask: np.ndarray, scaled: Box) -> np.ndarray:
    """``mask`` resized onto the integer rectangle ``scaled.voc_ints()`` (soft values kept)."""
    x0, y0, x1, y1 = scaled.voc_ints()
    interpolation = cv2.INTER_AREA if (x1 - x0) < mask.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(mask, (x1 - x0, y1 - y0), interpolation=interpolation)


def _frame(annotated: AnnotatedImage, image: DecodedImage, problems: ProblemLog,
           notes: list[Problem]) -> _Frame | None:
    """The frame of the annotation's coordinates (module docstring); None (reported) if the
    boxes were drawn on another image. What was done to the boxes goes to ``notes``, reported
    only if the photo is kept."""
    declared, decoded = annotated.declared_size, (image.width, image.height)
    file, image_name = annotated.annotation_path, _image_name(annotated)
    turned = image.orientation in TRANSPOSING_ORIENTATIONS
    if declared is None or declared == decoded:
        if image.orientation != 1 and annotated.objects and not annotated.is_cutout_file and (
                declared is None or not turned or decoded[0] == decoded[1]):
            notes.append(_undecidable_frame(file, image_name, image.orientation))
        return _Frame()
    said = f"the annotation says the image is {declared[0]}x{declared[1]}"
    decodes = f"it decodes to {decoded[0]}x{decoded[1]}"
    if turned and declared == image.raw_size:
        notes.append(Problem("exif_frame", file, f"{said}, the un-rotated size of a photo with EXIF "
                             f"orientation {image.orientation}: boxes were drawn on the un-rotated "
                             "image (labelImg < 1.8.4) and are moved to the displayed "
                             f"{decoded[0]}x{decoded[1]} frame", image=image_name))
        return _Frame(orientation=image.orientation, raw_size=image.raw_size)
    targets = [(decoded, 1)] + ([(image.raw_size, image.orientation)] if turned else [])
    for target, orientation in targets:
        if _same_shape(declared, target):
            scale = (target[0] / declared[0], target[1] / declared[1])
            turn = f" (EXIF orientation {orientation}: boxes drawn un-rotated)" if orientation != 1 else ""
            notes.append(Problem("size_scaled", file, f"{said} but {decodes}{turn}: the same photo "
                                 f"scaled by {scale[0]:.4g}, resized after labelling; its boxes are "
                                 f"scaled by {scale[0]:.4g} too", image=image_name))
            return _Frame(scale, orientation, image.raw_size)
    if declared == decoded[::-1]:
        problems.report(Problem("size_conflict", file, f"{said} but {decodes}: the photo was turned "
                                "by 90 degrees after labelling (or lost its EXIF orientation), so "
                                "its boxes are in another frame; image skipped", image=image_name))
        return None
    outside = next((obj for obj in annotated.objects if not _fits(obj.box, decoded)), None)
    if outside is None:
        notes.append(Problem("size_mismatch", file, f"{said} but {decodes}; every box lies inside "
                             "the decoded image, so the boxes are kept as drawn", image=image_name))
        return _Frame()
    problems.report(Problem("size_conflict", file, f"{said} but {decodes} (not the same photo "
                            f"resized), and the box of object #{outside.object_index} "
                            f"({outside.class_name!r}: {outside.box}) lies beyond the decoded image: "
                            "the boxes were drawn on another image; image skipped", image=image_name))
    return None


def _undecidable_frame(file: str, image_name: str | None, orientation: int) -> Problem:
    return Problem("exif_unknown_frame", file, f"the photo has EXIF orientation {orientation}: "
                   "labelImg >= 1.8.4 labels it as displayed, older versions as stored, and the "
                   "annotation's size cannot tell which; the boxes are taken as drawn on the "
                   "displayed photo (check it in labelImg)", image=image_name)


def _same_shape(declared: tuple[int, int], target: tuple[int, int]) -> bool:
    """True if ``target`` is ``declared`` scaled by one factor, each side rounded to whole
    pixels (the factor intervals of both axes meet)."""
    (dw, dh), (tw, th) = declared, target
    low = max((tw - 0.5) / dw, (th - 0.5) / dh)
    high = min((tw + 0.5) / dw, (th + 0.5) / dh)
    return low <= high


def _fits(box: Box, size: tuple[int, int]) -> bool:
    return (box.xmin >= -BOX_TOLERANCE and box.ymin >= -BOX_TOLERANCE
            and box.xmax <= size[0] + BOX_TOLERANCE and box.ymax <= size[1] + BOX_TOLERANCE)
