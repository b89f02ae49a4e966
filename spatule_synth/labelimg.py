"""labelImg folders: pair each image with its XML, then load both validated against each other.

Pairing is by stem (file name without extension, compared case-insensitively as on the Windows
and macOS machines labelImg mostly runs on), as labelImg does: the XML may sit beside its image or
in a separate annotations folder (labelImg's "Change Save Dir"). The ``<path>`` and
``<folder>`` of the XML are ignored: they describe the annotator's machine. Every problem found is
reported to a `ProblemLog` (see `spatule_synth.problems` for the kinds) and the input is skipped or
the object dropped; nothing is silently changed.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Callable, Sequence

from spatule_synth.boxes import Box
from spatule_synth.images import DecodedImage, ImageReadError, box_in_display_frame, decode_image, \
    is_image_file, TRANSPOSING_ORIENTATIONS
from spatule_synth.label_map import LabelMap
from spatule_synth.problems import Problem, ProblemLog
from spatule_synth.voc import VocAnnotation, VocFormatError, read_voc


class InputDirError(ValueError):
    """An input folder cannot be used at all (missing, not a folder)."""


@dataclasses.dataclass(frozen=True)
class SourcePair:
    """An image file and the XML that labels it (None: the image has no XML)."""

    image_path: str
    xml_path: str | None


@dataclasses.dataclass(frozen=True)
class LabelledObject:
    """A validated object: a class of the label map and a box inside its image."""

    name: str
    class_id: int
    box: Box
    object_index: int  # position of the <object> in its XML, for messages and provenance
    difficult: bool = False
    truncated: bool = False
    pose: str = "Unspecified"


@dataclasses.dataclass(frozen=True, eq=False)
class LabelledImage:
    """A decoded photo with its validated objects (empty for a background/negative photo)."""

    source: SourcePair
    file_bytes: bytes
    image: DecodedImage
    objects: tuple[LabelledObject, ...]
    annotation: VocAnnotation | None
    dropped_objects: int = 0  # objects of the XML that were not kept (bad box, unknown class)

    @property
    def is_object_free(self) -> bool:
        """True for a photo known to show no labelled object: no XML, or an XML with no <object>.

        A photo whose objects were all dropped is not object-free: its pixels still show them.
        """
        return not self.objects and not self.dropped_objects


def find_pairs(input_dirs: Sequence[str], annotation_dirs: Sequence[str],
               problems: ProblemLog) -> list[SourcePair]:
    """Pair images and XML files of each input folder (sorted, so runs are reproducible).

    ``annotation_dirs`` is empty (XML beside the images) or gives one annotations folder per input
    folder. XML without an image, and stems shared by several images or several XML files of one
    folder, are reported and skipped.
    """
    if annotation_dirs and len(annotation_dirs) != len(input_dirs):
        raise InputDirError(f"--annotation_dirs names {len(annotation_dirs)} folders for "
                            f"{len(input_dirs)} --input_dirs; give one per input folder or none")
    seen: dict[str, str] = {}
    for folder in input_dirs:
        real = os.path.realpath(folder)
        if real in seen:
            raise InputDirError(f"input folder {folder} is given twice (also as {seen[real]}); "
                                "its images would be counted twice")
        seen[real] = folder
    pairs = []
    for index, image_dir in enumerate(input_dirs):
        xml_dirs = [image_dir] + ([annotation_dirs[index]] if annotation_dirs else [])
        pairs.extend(_pairs_in_folder(image_dir, xml_dirs, problems))
    return pairs


def _list_dir(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        raise InputDirError(f"input folder {folder} does not exist or is not a folder")
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if os.path.isfile(os.path.join(folder, name)))


def _pairs_in_folder(image_dir: str, xml_dirs: list[str], problems: ProblemLog) -> list[SourcePair]:
    pairs = []
    for image, xml in pair_by_stem(image_dir, xml_dirs, _is_xml, ("an XML", "XML"), problems):
        if xml is None:
            problems.report(Problem("no_xml", image, "no XML file labels this image; "
                                    "it is taken as a photo without objects"))
        pairs.append(SourcePair(image, xml))
    return pairs


def _is_xml(path: str) -> bool:
    name = os.path.basename(path)
    return name.lower().endswith(".xml") and not name.startswith(".")


def pair_by_stem(image_dir: str, label_dirs: list[str], is_label: Callable[[str], bool],
                 label: tuple[str, str], problems: ProblemLog) -> list[tuple[str, str | None]]:
    """``(image, label file or None)`` of ``image_dir`` by case-insensitive stem, sorted; label
    files are looked for in ``label_dirs`` (each folder once). Stems shared by several images or
    several label files, and label files without an image, are reported (``label`` names the kind,
    e.g. ``("an XML", "XML")``) and skipped. `InputDirError` if a folder does not exist."""
    images: dict[str, list[str]] = collections.defaultdict(list)
    labels: dict[str, list[str]] = collections.defaultdict(list)
    for path in _list_dir(image_dir):
        if is_image_file(path):
            images[_stem(path)].append(path)
    for label_dir in {os.path.realpath(d): d for d in label_dirs}.values():
        for path in _list_dir(label_dir):
            if is_label(path):
                labels[_stem(path)].append(path)
    pairs = []
    a_label, label_name = label
    for stem in sorted(set(images) | set(labels)):
        clash = next((files for files in (images[stem], labels[stem]) if len(files) > 1), None)
        if clash:
            names = ", ".join(clash)
            problems.report(Problem("duplicate_stem", clash[0], f"stem {_name(clash[0])!r} is shared "
                                    f"by {names}; cannot tell which image {a_label} labels, "
                                    "all skipped"))
        elif not images[stem]:
            problems.report(Problem("missing_image", labels[stem][0], f"no image named "
                                    f"{_name(labels[stem][0])}.* in {image_dir}; {label_name} skipped"))
        else:
            pairs.append((images[stem][0], labels[stem][0] if labels[stem] else None))
    return pairs


def _name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _stem(path: str) -> str:
    """The matching key of a file: its name without extension, case-folded."""
    return _name(path).casefold()


def load_labelled_image(pair: SourcePair, label_map: LabelMap,
                        problems: ProblemLog) -> LabelledImage | None:
    """Read, decode and validate one pair; None (reported) if the image must be skipped."""
    annotation = None
    xml_problems: list[Problem] = []
    if pair.xml_path is not None:
        def bad_object(index: int, name: str | None, reason: str) -> None:
            xml_problems.append(Problem("box_invalid", pair.xml_path, reason + "; object dropped",
                                        index, name))
        try:
            annotation = read_voc(pair.xml_path, on_bad_object=bad_object)
        except VocFormatError as error:
            problems.report(Problem("malformed_xml", pair.xml_path,
                                    str(error).removeprefix(f"{pair.xml_path}: ") + "; image skipped"))
            return None
    try:
        with open(pair.image_path, "rb") as handle:
            file_bytes = handle.read()
        image = decode_image(file_bytes)
    except (OSError, ImageReadError) as error:
        problems.report(Problem("unreadable_image", pair.image_path, f"{error}; image skipped"))
        return None
    for problem in xml_problems:
        problems.report(problem)
    objects = _validated_objects(pair, annotation, image, label_map, problems) if annotation else ()
    dropped = len(xml_problems) + (len(annotation.objects) - len(objects) if annotation else 0)
    return LabelledImage(pair, file_bytes, image, objects, annotation, dropped)


def _validated_objects(pair: SourcePair, annotation: VocAnnotation, image: DecodedImage,
                       label_map: LabelMap, problems: ProblemLog) -> tuple[LabelledObject, ...]:
    xml = pair.xml_path or pair.image_path
    in_raw_frame = _boxes_in_raw_frame(xml, annotation, image, problems)
    objects = []
    for position, obj in enumerate(annotation.objects):
        index = position if obj.position is None else obj.position
        box = box_in_display_frame(obj.box, image.orientation, image.raw_size) if in_raw_frame else obj.box
        clipped = _box_inside(box, image, xml, index, obj.name, problems)
        if clipped is None:
            continue
        class_id = label_map.id_of(obj.name)
        if class_id is None:
            problems.report(Problem("unknown_class", xml, label_map.unknown_class_reason(obj.name)
                                    + "; object dropped", index, obj.name))
            continue
        if clipped != box:
            problems.report(Problem("box_clipped", xml, f"box ({box}) goes beyond the "
                                    f"{image.width}x{image.height} image; clipped to ({clipped})",
                                    index, obj.name))
        objects.append(LabelledObject(obj.name, class_id, clipped, index, obj.difficult,
                                      obj.truncated, obj.pose))
    return tuple(objects)


def _box_inside(box: Box, image: DecodedImage, xml: str, index: int, name: str,
                problems: ProblemLog) -> Box | None:
    """The box clipped to the image, or None (reported) if not a pixel of it is left."""
    size = f"{image.width}x{image.height}"
    if box.width < 1 or box.height < 1:
        problems.report(Problem("box_invalid", xml, f"box ({box}) is less than one pixel wide or "
                                "high; object dropped", index, name))
        return None
    clipped = box.clipped_to(image.width, image.height)
    if clipped is None:
        problems.report(Problem("box_outside", xml, f"box ({box}) lies entirely outside the {size} "
                                "image; object dropped", index, name))
    elif clipped.width < 1 or clipped.height < 1:
        problems.report(Problem("box_outside", xml, f"box ({box}) leaves less than one pixel inside "
                                f"the {size} image; object dropped", index, name))
        clipped = None
    return clipped


def _boxes_in_raw_frame(xml: str, annotation: VocAnnotation, image: DecodedImage,
                        problems: ProblemLog) -> bool:
    """Compare the XML <size> with the decoded image; True if boxes were drawn un-rotated.

    labelImg >= 1.8.4 shows photos EXIF-rotated and writes the rotated size; older versions wrote
    the stored size and drew on the un-rotated pixels. A rotated photo whose XML holds the stored
    size is therefore labelled in the stored frame, and its boxes are moved into the rotated one.
    """
    declared = (annotation.width, annotation.height)
    if None in declared or declared == (image.width, image.height):
        return False
    if image.orientation in TRANSPOSING_ORIENTATIONS and declared == image.raw_size:
        problems.report(Problem("exif_frame", xml, f"XML <size> {declared[0]}x{declared[1]} is the "
                                f"un-rotated size of an image with EXIF orientation {image.orientation}: "
                                "boxes were drawn on the un-rotated image (labelImg < 1.8.4) and are "
                                f"moved to the displayed {image.width}x{image.height} frame"))
        return True
    problems.report(Problem("size_mismatch", xml, f"XML <size> says {declared[0]}x{declared[1]} but "
                            f"the image decodes to {image.width}x{image.height}; using the decoded size"))
    return False
