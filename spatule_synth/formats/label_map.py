"""``label_map.pbtxt``: the class list of the TF Object Detection API.

Parsed and written with protobuf's own text format against the OD API's ``StringIntLabelMap``
schema (fields ``name`` = 1, ``id`` = 2, ``display_name`` = 3; other OD API fields such as
``keypoints`` are accepted and ignored), so quoting, comments and field order behave exactly as in
the OD API. Rules: ids start at 1; id 0 is allowed only for ``background`` (and is not a class);
duplicate names or ids, and names the writers would refuse (`class_name_problem`: empty, spaces
around, two spaces in a row, control characters), are rejected with a message that names them.
The class ``name`` is what VOC ``<name>`` must equal.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import unicodedata

from google.protobuf import text_format

from spatule_synth.core.output_dir import atomic_write_bytes
from spatule_synth.formats.proto_schema import message_classes
from spatule_synth.core import storage


class LabelMapError(ValueError):
    """The label map is unreadable or breaks a rule; the message names the culprits."""


@dataclasses.dataclass(frozen=True)
class LabelMapItem:
    id: int
    name: str
    display_name: str | None = None


@dataclasses.dataclass(frozen=True)
class LabelMap:
    """Classes by id; build with `LabelMap.from_names` or `read_label_map`."""

    items: tuple[LabelMapItem, ...]

    def __post_init__(self) -> None:
        _validate(self.items)

    @classmethod
    def from_names(cls, names: list[str]) -> LabelMap:
        """Ids 1, 2, ... in the given order."""
        return cls(tuple(LabelMapItem(i, name) for i, name in enumerate(names, start=1)))

    @property
    def names(self) -> list[str]:
        return [item.name for item in self.items]

    @property
    def num_classes(self) -> int:
        """What ``num_classes`` in a pipeline.config must be (the largest id)."""
        return max(item.id for item in self.items)

    def id_of(self, name: str) -> int | None:
        """The id of class ``name`` (compared in Unicode NFC: a macOS-typed ``é`` is the same
        letter as a Windows one), or None."""
        return self._ids.get(unicodedata.normalize("NFC", name))

    def name_of(self, class_id: int) -> str | None:
        return next((item.name for item in self.items if item.id == class_id), None)

    def closest(self, name: str) -> str | None:
        """The class ``name`` was probably meant to be (same letters up to case and spaces, or a
        near spelling), or None."""
        folded = {known.casefold().strip(): known for known in self.names}
        return folded.get(name.casefold().strip()) or next(
            iter(difflib.get_close_matches(name, self.names, n=1)), None)

    def unknown_class_reason(self, name: str) -> str:
        """Why ``name`` is not a class, with a suggestion when one is close."""
        reason = f"class {name!r} is not in the label map (classes: {', '.join(self.names)})"
        close = self.closest(name)
        return reason + (f"; did you mean {close!r}?" if close else "")

    @functools.cached_property
    def _ids(self) -> dict[str, int]:
        return {unicodedata.normalize("NFC", item.name): item.id for item in self.items}


def class_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a class name, or None. A class name is written into VOC XML (which
    labelImg reads with its whitespace collapsed into tabs), ``classes.txt`` lines and TFRecords,
    and VOC ``<name>`` values are read stripped: so no empty name, no leading or trailing space,
    no two spaces in a row, no tab, newline or other control character."""
    if not name.strip():
        return f"class name {name!r} is empty"
    if name != name.strip():
        return (f"class name {name!r} starts or ends with a space (VOC <name> values are read "
                "without them, so no object could ever match it)")
    if "  " in name:
        return f"class name {name!r} contains two spaces in a row (labelImg turns them into a tab)"
    control = next((c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")), None)
    if control is not None:
        return (f"class name {name!r} contains the control character U+{ord(control):04X} "
                "(tab, newline, ...); it cannot be written to VOC XML or classes.txt")
    return None


def _validate(items: tuple[LabelMapItem, ...]) -> None:
    if not items:
        raise LabelMapError("the label map has no classes")
    problems = []
    for item in items:
        name_problem = class_name_problem(item.name)
        if name_problem:
            problems.append(f"id {item.id}: {name_problem}")
        if item.id < 1:
            problems.append(f"class {item.name!r} has id {item.id}; class ids start at 1 "
                            "(0 is reserved for 'background')")
    for label, key in (("name", lambda item: unicodedata.normalize("NFC", item.name)),
                       ("id", lambda item: item.id)):
        seen: dict = {}
        for item in items:
            seen.setdefault(key(item), []).append(item)
        for value, holders in seen.items():
            if len(holders) > 1:
                problems.append(f"duplicate {label} {value!r} (" + ", ".join(
                    f"id {h.id} {h.name!r}" for h in holders) + ")")
    if problems:
        raise LabelMapError("; ".join(problems))


# object_detection/protos/string_int_label_map.proto, the fields read here.
_SCHEMA = {
    "StringIntLabelMapItem": [("name", 1, "string", "optional"), ("id", 2, "int32", "optional"),
                              ("display_name", 3, "string", "optional")],
    "StringIntLabelMap": [("item", 1, "message", "repeated", "StringIntLabelMapItem")],
}


@functools.cache
def _message_class():
    """The OD API's ``StringIntLabelMap`` message (`spatule_synth.formats.proto_schema`)."""
    return message_classes("object_detection.protos", _SCHEMA)["StringIntLabelMap"]


def parse_label_map(text: str) -> LabelMap:
    """Parse pbtxt text; `LabelMapError` on syntax errors or rule violations."""
    message = _message_class()()
    try:
        text_format.Parse(text, message, allow_unknown_field=True)
    except text_format.ParseError as error:
        raise LabelMapError(f"not a label map: {error}") from error
    items = []
    for index, item in enumerate(message.item):
        if not item.HasField("id") or not item.HasField("name"):
            missing = "id" if not item.HasField("id") else "name"
            raise LabelMapError(f"item #{index} ({item.name or item.id!r}) has no {missing}")
        if item.id == 0 and item.name == "background":
            continue
        items.append(LabelMapItem(item.id, item.name,
                                  item.display_name if item.HasField("display_name") else None))
    return LabelMap(tuple(items))


def read_label_map(path: str) -> LabelMap:
    """Read a ``label_map.pbtxt``; errors name the file."""
    try:
        return parse_label_map(storage.read_bytes(path).decode("utf-8-sig"))
    except OSError as error:
        raise LabelMapError(f"{path}: cannot read label map: {error.strerror or error}") from error
    except (LabelMapError, UnicodeDecodeError) as error:
        raise LabelMapError(f"{path}: {error}") from error


def label_map_text(label_map: LabelMap) -> str:
    """The pbtxt text of ``label_map`` (one ``item { ... }`` block per class)."""
    message = _message_class()()
    for item in label_map.items:
        entry = message.item.add(id=item.id, name=item.name)
        if item.display_name is not None:
            entry.display_name = item.display_name
    return text_format.MessageToString(message)


def write_label_map(label_map: LabelMap, path: str) -> None:
    """Write ``label_map`` to ``path`` atomically."""
    atomic_write_bytes(path, label_map_text(label_map).encode("utf-8"))
