"""Pascal VOC XML exactly as labelImg writes it and the OD API's ``create_pascal_tf_record.py`` reads it.

Reading is tolerant of what real files contain: children in any order, float coordinates, a BOM or
an ``encoding`` declaration, missing optional fields, and no ``<object>`` at all (a background
photo). The ``verified="yes"`` attribute labelImg sets is kept. A file that cannot be understood
raises `VocFormatError`; a single unusable object is reported through ``on_bad_object`` and left out
(or raises when no callback is given), so one bad box never silently empties a file.

Writing produces labelImg's own layout (tab-indented, no XML declaration, every field the OD API
parser needs: ``folder``, ``filename`` with extension, ``size``, and per object ``name``, ``pose``,
``truncated``, ``difficult`` and an integer ``bndbox``). Text with two spaces in a row is refused:
labelImg rewrites every double space of a file into a tab when it saves it.
Box coordinates follow `spatule_synth.core.boxes` (pixel edges).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

from lxml import etree

from spatule_synth.core.boxes import Box, BoxError
from spatule_synth.core.output_dir import atomic_write_bytes
from spatule_synth.core import storage

# Called with (object index, class name or None, reason) for an object that is left out.
BadObjectCallback = Callable[[int, "str | None", str], None]


class VocFormatError(ValueError):
    """The XML is not a readable labelImg/VOC annotation; the message says why."""


@dataclasses.dataclass(frozen=True)
class VocObject:
    """One labelled object of an annotation."""

    name: str
    box: Box
    pose: str = "Unspecified"
    truncated: bool = False
    difficult: bool = False
    # Position among the <object> elements of the file it was read from (for messages).
    position: int | None = dataclasses.field(default=None, compare=False)


@dataclasses.dataclass(frozen=True)
class VocAnnotation:
    """The content of one VOC XML file. ``width``/``height`` are None when ``<size>`` is unusable."""

    filename: str
    width: int | None
    height: int | None
    depth: int | None = 3
    objects: tuple[VocObject, ...] = ()
    folder: str = "images"
    path: str | None = None
    database: str = "Unknown"
    segmented: bool = False
    verified: bool = False


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)


def read_voc(path: str, on_bad_object: BadObjectCallback | None = None) -> VocAnnotation:
    """Read a VOC XML file; `VocFormatError` (naming the file) if it is not one."""
    try:
        with storage.open_binary(path) as handle:
            data = handle.read()
    except OSError as error:
        raise VocFormatError(f"{path}: cannot read file: {error.strerror or error}") from error
    try:
        return parse_voc(data, on_bad_object)
    except VocFormatError as error:
        raise VocFormatError(f"{path}: {error}") from error


def parse_voc(data: bytes, on_bad_object: BadObjectCallback | None = None) -> VocAnnotation:
    """Parse VOC XML bytes (see the module docstring for what is tolerated)."""
    if not data.strip():
        raise VocFormatError("empty file")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as error:
        raise VocFormatError(f"malformed XML: {error}") from error
    if root.tag != "annotation":
        raise VocFormatError(f"root element is <{root.tag}>, expected <annotation>")
    _check_objects_are_where_labelimg_reads_them(root)
    objects = []
    for index, element in enumerate(root.iterfind("object")):
        try:
            objects.append(dataclasses.replace(_parse_object(element), position=index))
        except VocFormatError as error:
            if on_bad_object is None:
                raise VocFormatError(f"object #{index}: {error}") from error
            on_bad_object(index, _text(element, "name") or None, str(error))
    size = root.find("size")
    return VocAnnotation(
        filename=_text(root, "filename"),
        width=_positive_int(size, "width"),
        height=_positive_int(size, "height"),
        depth=_positive_int(size, "depth"),
        objects=tuple(objects),
        folder=_text(root, "folder"),
        path=_text(root, "path") or None,
        database=_text(root, "source/database") or "Unknown",
        segmented=_flag(root, "segmented"),
        verified=root.get("verified", "").strip().lower() == "yes",
    )


def _check_objects_are_where_labelimg_reads_them(root: etree._Element) -> None:
    """`VocFormatError` for an object labelImg and the OD API would not see (so its photo would
    pass for one without it): ``<Object>`` in another case, or ``<object>``/``<bndbox>`` nested
    elsewhere than ``<annotation><object><bndbox>``."""
    for element in root.iter(etree.Element):
        tag = element.tag.lower()
        if tag not in ("object", "bndbox") or element is root:
            continue
        parent = element.getparent()
        if element.tag != tag:
            raise VocFormatError(f"<{element.tag}> (line {element.sourceline}) is not <{tag}>: tags are "
                                 "case-sensitive, so labelImg would not show this object")
        if (tag == "object" and parent is not root) or (
                tag == "bndbox" and (parent.tag != "object" or parent.getparent() is not root)):
            raise VocFormatError(f"<{tag}> (line {element.sourceline}) inside <{parent.tag}>: labelImg "
                                 f"only reads <{tag}> directly under "
                                 f"<{'annotation' if tag == 'object' else 'object'}>")


def _parse_object(element: etree._Element) -> VocObject:
    name = _text(element, "name")
    if not name:
        raise VocFormatError("no <name>")
    bndbox = element.find("bndbox")
    if bndbox is None:
        raise VocFormatError("no <bndbox>")
    for tag in ("name", "bndbox"):
        if len(element.findall(tag)) > 1:
            raise VocFormatError(f"{len(element.findall(tag))} <{tag}> elements in one <object>")
    coords = []
    for key in ("xmin", "ymin", "xmax", "ymax"):
        text = _text(bndbox, key)
        try:
            coords.append(float(text))
        except ValueError:
            raise VocFormatError(f"<{key}> is {text!r}, not a number") from None
    try:
        box = Box(*coords)
    except BoxError as error:
        raise VocFormatError(str(error)) from None
    return VocObject(name=name, box=box, pose=_text(element, "pose") or "Unspecified",
                     truncated=_flag(element, "truncated"), difficult=_flag(element, "difficult"))


def _text(parent: etree._Element | None, path: str) -> str:
    node = parent.find(path) if parent is not None else None
    return (node.text or "").strip() if node is not None else ""


def _positive_int(parent: etree._Element | None, key: str) -> int | None:
    try:
        value = float(_text(parent, key))
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value >= 1 else None


def _flag(parent: etree._Element, key: str) -> bool:
    text = _text(parent, key).lower()
    if text in ("true", "yes"):
        return True
    try:
        return float(text) != 0
    except ValueError:
        return False


def voc_bytes(annotation: VocAnnotation) -> bytes:
    """The XML labelImg would write for ``annotation`` (UTF-8, tab-indented, no declaration)."""
    _check_writable(annotation)
    root = etree.Element("annotation")
    if annotation.verified:
        root.set("verified", "yes")
    _child(root, "folder", annotation.folder)
    _child(root, "filename", annotation.filename)
    if annotation.path is not None:
        _child(root, "path", annotation.path)
    _child(etree.SubElement(root, "source"), "database", annotation.database)
    size = etree.SubElement(root, "size")
    for key in ("width", "height", "depth"):
        _child(size, key, str(getattr(annotation, key)))
    _child(root, "segmented", str(int(annotation.segmented)))
    for obj in annotation.objects:
        element = etree.SubElement(root, "object")
        _child(element, "name", obj.name)
        _child(element, "pose", obj.pose)
        _child(element, "truncated", str(int(obj.truncated)))
        _child(element, "difficult", str(int(obj.difficult)))
        bndbox = etree.SubElement(element, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), obj.box.voc_ints()):
            _child(bndbox, key, str(value))
    etree.indent(root, space="\t")
    return etree.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n"


def write_voc(annotation: VocAnnotation, path: str) -> None:
    """Write ``annotation`` to ``path`` atomically (temporary file, then rename)."""
    atomic_write_bytes(path, voc_bytes(annotation))


def _child(parent: etree._Element, tag: str, text: str) -> None:
    etree.SubElement(parent, tag).text = text


def _check_writable(annotation: VocAnnotation) -> None:
    if "." not in annotation.filename.strip(".") or annotation.filename != annotation.filename.strip():
        raise ValueError(f"VOC filename {annotation.filename!r} needs an extension and no "
                         "surrounding spaces (the OD API opens <folder>/<filename>)")
    if annotation.width is None or annotation.height is None or annotation.depth is None:
        raise ValueError(f"{annotation.filename}: VOC <size> needs width, height and depth")
    texts = {"folder": annotation.folder, "filename": annotation.filename,
             "path": annotation.path or "", "database": annotation.database}
    texts.update({f"object #{i} name": obj.name for i, obj in enumerate(annotation.objects)})
    texts.update({f"object #{i} pose": obj.pose for i, obj in enumerate(annotation.objects)})
    for field, text in texts.items():
        if "  " in text or "\t" in text or "\n" in text:
            raise ValueError(f"{annotation.filename}: VOC {field} {text!r} contains a double "
                             "space, tab or newline (labelImg would turn it into a tab)")
    for i, obj in enumerate(annotation.objects):
        if not obj.name.strip():
            raise ValueError(f"{annotation.filename}: object #{i} has an empty name")
