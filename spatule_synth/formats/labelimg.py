"""labelImg folders: pair each image with its XML, and read the XML as an `AnnotatedImage`.

Pairing is by stem (file name without extension), compared case-insensitively as on the Windows
and macOS machines labelImg mostly runs on, and Unicode-normalisation-insensitively (macOS writes
``Étang été.JPG`` decomposed, NFD; a copy made on Linux or Windows is composed, NFC: both pair).
The XML may sit beside its image or in a separate annotations folder (labelImg's "Change Save
Dir"). The ``<path>`` and ``<folder>`` of the XML are ignored: they describe the annotator's
machine. Its ``<filename>`` is checked: an XML whose ``<filename>`` names *another* photo of the
folder was copied from that photo and describes its objects, so it is skipped
(``filename_mismatch``); a ``<filename>`` that differs only by case, extension or Unicode
normalisation, or names no photo of the folder (a renamed file), is fine.

A photo kept in a format that cannot be read (HEIC, RAW, ...) still pairs with its XML, so the
message says "HEIC is not supported; convert it to JPEG" instead of "no image"; when a readable
image shares its stem (an iPhone's JPEG + HEIC pair), the readable one is used.

Validation against the decoded photo and the label map is `spatule_synth.core.validation`, the same
for every format. Every problem is reported to a `ProblemLog` (see `spatule_synth.core.problems`).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import unicodedata
from typing import Callable, Mapping, Sequence

from spatule_synth.core.annotations import AnnotatedImage, AnnotatedObject, LostObject, unusable
from spatule_synth.core.images import is_image_file, unsupported_format
from spatule_synth.core.problems import Problem, ProblemLog
from spatule_synth.formats.voc import VocFormatError, read_voc
from spatule_synth.core import storage


class InputDirError(ValueError):
    """An input folder cannot be used at all (missing, not a folder)."""


@dataclasses.dataclass(frozen=True)
class SourcePair:
    """An image file and the XML that labels it (None: the image has no XML)."""

    image_path: str
    xml_path: str | None
    # stem key -> path of every image of the image's folder (for the <filename> check)
    siblings: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False, repr=False)


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
        real = storage.canonical(folder)
        if real in seen:
            raise InputDirError(f"input folder {folder} is given twice (also as {seen[real]}); "
                                "its images would be counted twice")
        seen[real] = folder
    pairs = []
    for index, image_dir in enumerate(input_dirs):
        xml_dirs = [image_dir] + ([annotation_dirs[index]] if annotation_dirs else [])
        pairs.extend(_pairs_in_folder(image_dir, xml_dirs, problems))
    return pairs


def list_dir(folder: str) -> list[str]:
    """The files directly in ``folder`` (a local path or a URL: `spatule_synth.core.storage`), sorted."""
    if not storage.is_dir(folder):
        raise InputDirError(f"input folder {folder} does not exist or is not a folder")
    return storage.list_folder(folder)[0]


def _pairs_in_folder(image_dir: str, xml_dirs: list[str], problems: ProblemLog) -> list[SourcePair]:
    listing = images_by_key(image_dir)
    siblings = {key: paths[0] for key, paths in listing[0].items()}
    return [SourcePair(image, xml, siblings)
            for image, xml in pair_by_stem(image_dir, xml_dirs, is_voc_xml, ("an XML", "XML"), problems,
                                           (is_yolo_txt, "a YOLO txt? give this folder as --yolo_dirs"),
                                           listing)]


def is_voc_xml(path: str) -> bool:
    """A labelImg/VOC XML by its name (hidden files are not)."""
    name = os.path.basename(path)
    return name.lower().endswith(".xml") and not name.startswith(".")


def is_yolo_txt(path: str) -> bool:
    """A YOLO label file by its name (``classes.txt`` and hidden files are not)."""
    name = os.path.basename(path)
    return name.lower().endswith(".txt") and not name.startswith(".") and name.lower() != "classes.txt"


def images_by_key(image_dir: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Images of ``image_dir`` by `stem_key`: those that can be read, and those in a format
    that cannot (`spatule_synth.core.images.UNSUPPORTED_FORMATS`)."""
    supported: dict[str, list[str]] = collections.defaultdict(list)
    unsupported: dict[str, list[str]] = collections.defaultdict(list)
    for path in list_dir(image_dir):
        if is_image_file(path):
            supported[stem_key(path)].append(path)
        elif unsupported_format(path):
            unsupported[stem_key(path)].append(path)
    return supported, unsupported


def pair_by_stem(image_dir: str, label_dirs: list[str], is_label: Callable[[str], bool],
                 label: tuple[str, str], problems: ProblemLog,
                 foreign: tuple[Callable[[str], bool], str] | None = None,
                 listing: tuple[dict[str, list[str]], dict[str, list[str]]] | None = None
                 ) -> list[tuple[str, str | None]]:
    """``(image, label file or None)`` of ``image_dir`` by `stem_key`, sorted; label files are
    looked for in ``label_dirs`` (each folder once). Stems shared by several images or several
    label files, and label files without an image, are reported (``label`` names the kind, e.g.
    ``("an XML", "XML")``) and skipped. A label file whose only image is in a format that cannot
    be read pairs with it (reading it then says so); such an image without a label file, or beside
    a readable image of its stem, is left out. An image whose only label file is of another
    format (``foreign``: how to tell such a file, and a hint) is reported and left out: it is no
    unlabelled photo. ``listing``: `images_by_key` of ``image_dir`` if the caller has it.
    `InputDirError` if a folder does not exist."""
    images, unsupported = listing or images_by_key(image_dir)
    labels: dict[str, list[str]] = collections.defaultdict(list)
    others: dict[str, str] = {}
    for label_dir in {storage.canonical(d): d for d in label_dirs}.values():
        for path in list_dir(label_dir):
            if is_label(path):
                labels[label_key(path, images, unsupported)].append(path)
            elif foreign is not None and foreign[0](path):
                others.setdefault(label_key(path, images, unsupported), path)
    pairs = []
    a_label, label_name = label
    for key in sorted(set(images) | set(labels)):
        candidates = images.get(key) or (unsupported.get(key, []) if labels.get(key) else [])
        clash = next((files for files in (candidates, labels.get(key, [])) if len(files) > 1), None)
        if clash:
            names = ", ".join(clash)
            problems.report(Problem("duplicate_stem", clash[0], f"stem {_name(clash[0])!r} is shared "
                                    f"by {names}; cannot tell which image {a_label} labels, "
                                    "all skipped"))
        elif not candidates:
            problems.report(Problem("missing_image", labels[key][0], f"no image named "
                                    f"{_name(labels[key][0])}.* in {image_dir}; {label_name} skipped"))
        elif not labels.get(key) and key in others:
            problems.report(Problem("foreign_annotation", candidates[0], f"no {label_name} labels it, "
                                    f"but {others[key]} does ({foreign[1]}); image skipped"))
        else:
            pairs.append((candidates[0], labels[key][0] if labels.get(key) else None))
    return pairs


def label_key(path: str, *images: Mapping[str, list[str]]) -> str:
    """The `stem_key` of a label file; for ``IMG_1.jpg.xml`` (saved with the photo's whole name,
    as some tools do) the key of ``IMG_1`` when no image has the longer stem and one has this."""
    key = stem_key(path)
    inner = os.path.splitext(key)
    if inner[1] and (is_image_file(key) or unsupported_format(key)) and \
            not any(key in found for found in images) and any(inner[0] in found for found in images):
        return inner[0]
    return key


def _name(path: str) -> str:
    return os.path.splitext(os.path.basename(path.replace("\\", "/")))[0]


def stem_key(path: str) -> str:
    """The matching key of a file: its name without extension, Unicode-normalised (NFC) and
    case-folded, so ``IMG_1.JPG``/``img_1.xml`` and NFC/NFD spellings of ``Étang été`` pair."""
    return unicodedata.normalize("NFC", _name(path)).casefold()


def read_labelimg(pair: SourcePair, problems: ProblemLog) -> AnnotatedImage:
    """The photo of ``pair`` with the objects of its XML (``labelled=False`` without XML);
    ``usable=False``, reported, if the XML cannot be read or was copied from another photo.
    Objects the XML holds but that cannot be read (no name, a non-numeric or inverted box) are
    reported and listed in ``lost``."""
    if pair.xml_path is None:
        return AnnotatedImage(pair.image_path, pair.image_path, (), labelled=False)
    xml, lost, image = pair.xml_path, [], os.path.basename(pair.image_path)

    def bad_object(index: int, name: str | None, reason: str) -> None:
        problems.report(Problem("box_invalid", xml, f"{reason}; object dropped", index, name, image))
        lost.append(LostObject(index, name, reason))

    try:
        annotation = read_voc(xml, on_bad_object=bad_object)
    except VocFormatError as error:
        problems.report(Problem("malformed_xml", xml, str(error).removeprefix(f"{xml}: ")
                                + "; image skipped", image=image))
        return unusable(pair.image_path, xml)
    if _copied_from_another_photo(pair, annotation.filename, problems):
        return unusable(pair.image_path, xml)
    objects = tuple(AnnotatedObject(obj.name, obj.box, obj.position, truncated=obj.truncated,
                                    difficult=obj.difficult, pose=obj.pose)
                    for obj in annotation.objects)
    declared = (annotation.width, annotation.height) if annotation.width and annotation.height else None
    return AnnotatedImage(pair.image_path, xml, objects, declared, tuple(lost))


def _copied_from_another_photo(pair: SourcePair, filename: str, problems: ProblemLog) -> bool:
    """True (reported) if the XML's ``<filename>`` names another photo of the image's folder."""
    if not filename.strip():
        return False
    key = stem_key(filename)
    other = pair.siblings.get(key)
    if key == stem_key(pair.image_path) or other is None:
        return False
    problems.report(Problem("filename_mismatch", pair.xml_path, f"its <filename> is {filename!r}, "
                            f"another photo of the folder ({other}): the annotation was copied from "
                            "that photo and its boxes are where that photo's objects are; image "
                            "skipped", image=os.path.basename(pair.image_path)))
    return True
