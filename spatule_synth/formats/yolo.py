"""YOLO txt folders as labelImg writes them: read into `AnnotatedImage`s, and written back.

labelImg's format (``libs/yolo_io.py``, ``YOLOWriter``): one line per object,
``"%d %.6f %.6f %.6f %.6f\\n" % (class_index, x_center, y_center, width, height)`` with
``x_center = (xmin + xmax) / 2 / image_width`` and ``width = (xmax - xmin) / image_width`` (y
likewise), the box in pixel edges of the image as labelImg displays it: since 1.8.4 it reads
photos with the EXIF orientation applied, so sizes are those of the rotated image. The txt shares
the image's stem; ``classes.txt`` beside the txt files names class ``i`` on line ``i`` (0-based).
labelImg itself only writes whole-pixel boxes (it truncates the corners to ints and moves a 0
edge to 1) but the format holds any box, and `yolo_lines` writes float boxes the same way.

Reading inverts it: ``xmin = (x_center - width / 2) * image_width`` etc. (edges within the 6-decimal
rounding error of a whole pixel are snapped to it, see `_snap`). Boxes are not clipped
here: boxes beyond the image are reported and clipped later, with every other format, by
`spatule_synth.generate.sources`. Pairing follows `spatule_synth.formats.labelimg`: by stem, case-insensitively.
"""

from __future__ import annotations

import math
import os
import re
from typing import Iterable

from spatule_synth.core.annotations import AnnotatedImage, AnnotatedObject, LostObject, unusable
from spatule_synth.core.boxes import Box, BoxError
from spatule_synth.core.images import ImageReadError, displayed_size, unsupported_format
from spatule_synth.formats.labelimg import is_voc_xml, is_yolo_txt, pair_by_stem
from spatule_synth.core.output_dir import atomic_write_bytes
from spatule_synth.core.problems import Problem, ProblemLog
from spatule_synth.core import storage

CLASSES_FILE = "classes.txt"
SNAP = 0.8e-6  # edges this close to a whole pixel (fraction of the image size) are snapped to it
_CLASS_INDEX = re.compile(r"-?[0-9]+")


class _BadLine(ValueError):
    def __init__(self, kind: str, reason: str, name: str | None = None) -> None:
        super().__init__(reason)
        self.kind, self.reason, self.name = kind, reason, name


def read_yolo_folder(image_dir: str, problems: ProblemLog,
                     label_dir: str | None = None) -> list[AnnotatedImage]:
    """Every image of ``image_dir`` with the objects of its txt (looked for in ``image_dir`` and
    ``label_dir``); an image without txt is not labelled (``labelled=False``: validation skips
    it, or takes it as object-free with ``--unlabelled=negative``). A bad line is listed in the
    image's ``lost`` objects (validation then skips the photo: its object would show unlabelled).

    ``classes.txt`` is read from ``label_dir``, else from ``image_dir``; without it no index can
    be named, and the folder is reported and skipped. `InputDirError` if a folder does not exist.
    """
    folders = [label_dir, image_dir] if label_dir else [image_dir]
    classes_path = next((p for p in (storage.join(f, CLASSES_FILE) for f in folders)
                         if storage.is_file(p)), None)
    if classes_path is None:
        problems.report(Problem("malformed_annotation", folders[0], f"no {CLASSES_FILE} in "
                                f"{' or '.join(folders)}: YOLO class indices cannot be named; "
                                "folder skipped"))
        return []
    try:
        class_names = read_classes(classes_path)
    except ValueError as error:
        problems.report(Problem("malformed_annotation", classes_path, f"{error}; folder skipped"))
        return []
    result = []
    for image_path, txt_path in pair_by_stem(image_dir, folders, is_yolo_txt, ("a txt", "txt"), problems,
                                             (is_voc_xml, "a labelImg XML? give this folder as --input_dirs")):
        if txt_path is None:  # not labelled: validation skips it or, on request, takes it as object-free
            result.append(AnnotatedImage(image_path, image_path, (), labelled=False))
            continue
        if unsupported_format(image_path):
            problems.report(Problem("unsupported_image", image_path,
                                    f"{unsupported_format(image_path)}; image skipped"))
            continue
        try:
            width, height = displayed_size(image_path)
        except ImageReadError as error:
            problems.report(Problem("unreadable_image", image_path, f"{error}; image skipped"))
            continue
        lost: list[LostObject] = []
        objects = read_yolo_txt(txt_path, width, height, class_names, problems, lost,
                                os.path.basename(image_path))
        result.append(unusable(image_path, txt_path) if objects is None else
                      AnnotatedImage(image_path, txt_path, objects, lost=tuple(lost)))
    return result


def read_classes(path: str) -> list[str]:
    """Class names of a ``classes.txt``, index = line number - 1; `ValueError` if unusable.

    Names are kept exactly (labelImg writes them as typed); trailing blank lines are ignored.
    """
    try:
        text = storage.read_bytes(path).decode("utf-8-sig")
    except OSError as error:
        raise ValueError(f"cannot read file: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8") \
            from error
    names = text.replace("\r\n", "\n").split("\n")
    while names and not names[-1].strip():
        names.pop()
    if not names:
        raise ValueError("names no class")
    blank = next((number for number, name in enumerate(names, 1) if not name.strip()), None)
    if blank is not None:
        raise ValueError(f"line {blank} is blank, but every line up to the last names a class")
    return names


def read_yolo_txt(txt_path: str, width: int, height: int, class_names: list[str],
                  problems: ProblemLog, lost: list[LostObject] | None = None,
                  image: str | None = None) -> tuple[AnnotatedObject, ...] | None:
    """The objects of one txt for an image of ``width`` x ``height`` displayed pixels.

    Bad lines are reported (naming the txt and the line number), dropped and added to ``lost``;
    ``object_index`` is the position of the line among the non-blank lines. None (reported) if
    the file is unreadable.
    """
    try:
        text = storage.read_bytes(txt_path).decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        problems.report(Problem("malformed_annotation", txt_path, f"cannot read file: {reason}; "
                                "image skipped", image=image))
        return None
    objects, index = [], 0
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            name, box = _parse_line(fields, width, height, class_names)
            objects.append(AnnotatedObject(name, box, index, reference=f"line {number}"))
        except _BadLine as bad:
            problems.report(Problem(bad.kind, txt_path, f"{bad.reason}; object dropped", index,
                                    bad.name, image, f"line {number}"))
            if lost is not None:
                lost.append(LostObject(index, bad.name, f"line {number}: {bad.reason}"))
        index += 1
    return tuple(objects)


def _parse_line(fields: list[str], width: int, height: int, class_names: list[str]) -> tuple[str, Box]:
    if len(fields) != 5:
        known = _CLASS_INDEX.fullmatch(fields[0]) and 0 <= int(fields[0]) < len(class_names)
        raise _BadLine("box_invalid", f"{len(fields)} fields instead of 5 (class_index x_center "
                                      "y_center width height)",
                       class_names[int(fields[0])] if known else None)
    if not _CLASS_INDEX.fullmatch(fields[0]):
        raise _BadLine("unknown_class", f"class index {fields[0]!r} is not an integer")
    class_index = int(fields[0])
    if not 0 <= class_index < len(class_names):
        raise _BadLine("unknown_class", f"class index {class_index} is not in {CLASSES_FILE} "
                                        f"(indices 0 to {len(class_names) - 1})")
    name = class_names[class_index]
    values = []
    for field in fields[1:]:
        try:
            values.append(float(field))
        except ValueError:
            raise _BadLine("box_invalid", f"{field!r} is not a number", name) from None
        if not math.isfinite(values[-1]):
            raise _BadLine("box_invalid", f"{field!r} is not a finite number", name)
    x_center, y_center, box_width, box_height = values
    if box_width <= 0 or box_height <= 0:
        raise _BadLine("box_invalid", f"width {fields[3]} and height {fields[4]} must both be "
                                      "positive", name)
    try:
        return name, Box(_snap((x_center - box_width / 2) * width, width),
                         _snap((y_center - box_height / 2) * height, height),
                         _snap((x_center + box_width / 2) * width, width),
                         _snap((y_center + box_height / 2) * height, height))
    except BoxError as error:
        raise _BadLine("box_invalid", f"not a box in the {width}x{height} image: {error}", name) from None


def _snap(value: float, size: int) -> float:
    """``value`` rounded to the nearest whole pixel when it is within the error of 6 decimals.

    An edge is ``center -/+ extent / 2``, both written with 6 decimals, so it reads back off by up
    to 0.75e-6 of the image size: labelImg's whole-pixel boxes thus read back whole (not 49.99992,
    which `Box.voc_ints` would widen to 49). A float edge moves by at most `SNAP` of the size more.
    """
    nearest = round(value)
    return float(nearest) if abs(value - nearest) <= SNAP * size else value


def yolo_lines(objects: Iterable[tuple[str, Box]], width: int, height: int,
               class_names: list[str]) -> str:
    """The txt of ``objects`` (class name, box in pixel edges), formatted exactly as labelImg."""
    indices = {name: index for index, name in reversed(list(enumerate(class_names)))}
    lines = []
    for name, box in objects:
        if name not in indices:
            raise ValueError(f"class {name!r} is not in the class list {class_names}")
        x_center, y_center = (box.xmin + box.xmax) / 2 / width, (box.ymin + box.ymax) / 2 / height
        lines.append("%d %.6f %.6f %.6f %.6f\n" % (indices[name], x_center, y_center,
                                                   box.width / width, box.height / height))
    return "".join(lines)


def write_classes(path: str, class_names: list[str]) -> None:
    """Write a ``classes.txt``: one name per line, atomically. Names must be unique, one-line,
    not blank (each would otherwise read back as a different list)."""
    for name in class_names:
        if not name.strip() or "\n" in name or "\r" in name:
            raise ValueError(f"class name {name!r} cannot be a line of {CLASSES_FILE}")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class names must be unique, got {class_names}")
    atomic_write_bytes(path, "".join(name + "\n" for name in class_names).encode("utf-8"))
