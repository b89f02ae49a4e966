"""Edit protobuf text format (``.pbtxt``, ``.config``) as text, one field at a time, with no schema.

`parse` scans the text into `Field` nodes that know where they stand: the offsets of the field
name, of a scalar value, of a message's closing bracket. An edit names its field by a path of field
names (``"*"`` matches any name: ``("model", "*", "num_classes")``), raises `PbtxtError` unless
exactly one field matches, and changes only that field's value or lines: comments, order and every
other field stay as they were. `spatule_synth.modes.pipeline_config` fills in the OD API's config
templates this way, because their full schema is not installed, and parsing against a partial one
and printing back would drop every field it does not declare.

The scanner reads the text format as label maps and OD API configs write it: ``#`` comments,
``name: value``, ``name { ... }`` or ``name < ... >`` (colon optional), lists ``name: [a, b]``,
strings in either quote (adjacent strings concatenate), a ``,`` or ``;`` after a field; not
extensions (``[ext.name]``). It checks the structure, not the values: parse the result with
protobuf's ``text_format`` (and a schema of `spatule_synth.formats.proto_schema`) for those.
"""

from __future__ import annotations

import dataclasses
import re

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<punct>[{}<>\[\]:,;])
  | (?P<word>[^\s{}<>\[\]:,;"'\#]+)
""", re.VERBOSE)


class PbtxtError(ValueError):
    """The text does not scan, or a path does not name exactly one field fit for the edit."""


@dataclasses.dataclass
class Field:
    """One field of the text: a scalar (``value`` set), a message (``close`` set) or a list."""

    name: str
    path: str  # the names from the top, dotted: "train_config.batch_size"
    start: int  # offset of the name
    end: int = 0  # offset just after the value or the closing bracket
    value: tuple[int, int] | None = None  # span of a scalar value
    close: int | None = None  # offset of a message's closing bracket
    children: list[Field] = dataclasses.field(default_factory=list)


def string_literals(text: str) -> list[str]:
    """The quoted strings of ``text`` as written (quotes and escapes included), comments skipped."""
    return [match.group() for match in _TOKEN.finditer(text) if match.lastgroup == "string"]


def parse(text: str) -> list[Field]:
    """The top-level fields of ``text``, with their spans."""
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise PbtxtError(f"cannot read {text[position:position + 20]!r} "
                             f"at line {text.count(chr(10), 0, position) + 1}")
        if match.lastgroup not in ("space", "comment"):
            tokens.append((match.lastgroup, match.start(), match.end(), match.group()))
        position = match.end()
    tokens.append((None, len(text), len(text), ""))
    index = 0

    def take(expected: str | None = None):
        nonlocal index
        token = tokens[index]
        if token[0] is None or (expected is not None and token[3] != expected):
            raise PbtxtError(f"expected {expected or 'more'} at line "
                             f"{text.count(chr(10), 0, token[1]) + 1}, found {token[3]!r}")
        index += 1
        return token

    def accept(value: str) -> bool:
        nonlocal index
        if tokens[index][3] == value and tokens[index][0] == "punct":
            index += 1
            return True
        return False

    def message_body(closing: str | None, prefix: str) -> list[Field]:
        fields = []
        while tokens[index][0] is not None and not (closing and tokens[index][3] == closing):
            kind, start, end, word = take()
            if kind != "word":
                raise PbtxtError(f"expected a field name at line "
                                 f"{text.count(chr(10), 0, start) + 1}, found {word!r}")
            node = Field(word, prefix + word, start)
            colon = accept(":")
            if tokens[index][3] in ("{", "<"):
                closer = "}" if take()[3] == "{" else ">"
                node.children = message_body(closer, node.path + ".")
                _, node.close, node.end, _ = take(closer)
            elif colon and tokens[index][3] == "[":
                take("[")
                while not accept("]"):
                    if tokens[index][3] in ("{", "<"):
                        closer = "}" if take()[3] == "{" else ">"
                        message_body(closer, node.path + ".")
                        take(closer)
                    else:
                        take()
                    accept(",")
                node.end = tokens[index - 1][2]
            elif colon and tokens[index][0] in ("word", "string"):
                kind, value_start, value_end, _ = take()
                while kind == "string" and tokens[index][0] == "string":  # "a" "b" concatenates
                    value_end = take()[2]
                node.value, node.end = (value_start, value_end), value_end
            else:
                raise PbtxtError(f"field {word} at line "
                                 f"{text.count(chr(10), 0, start) + 1} has no value")
            accept(",") or accept(";")
            fields.append(node)
        return fields

    return message_body(None, "")


def find(fields: list[Field], path: tuple[str, ...]) -> list[Field]:
    """Every field at ``path`` below ``fields`` (``"*"`` matches any name), in text order."""
    head, rest = path[0], path[1:]
    matches = [f for f in fields if head in ("*", f.name)]
    return matches if not rest else [m for f in matches for m in find(f.children, rest)]


def find_one(text: str, path: tuple[str, ...]) -> Field:
    """The one field at ``path``; `PbtxtError` when there are none or several."""
    found = find(parse(text), path)
    if len(found) != 1:
        raise PbtxtError(f"expected one {'.'.join(path)}, found {len(found)}")
    return found[0]


def value_of(text: str, path: tuple[str, ...]) -> str:
    """The value of the one field at ``path`` as written (a string keeps its quotes)."""
    node = find_one(text, path)
    if node.value is None:
        raise PbtxtError(f"{'.'.join(path)} is not a single value")
    return text[node.value[0]:node.value[1]]


def set_value(text: str, path: tuple[str, ...], value: str, comment: str | None = None,
              marker: str | None = None) -> str:
    """Replace the value of the one field at ``path`` with ``value`` (as written: quote strings)
    and end its line with ``# COMMENT``, unless the line already holds ``marker`` (by default
    ``comment`` itself: a field set twice keeps one comment)."""
    node = find_one(text, path)
    if node.value is None:
        raise PbtxtError(f"{'.'.join(path)} is not a single value")
    start, end = node.value
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    line = text[end:line_end].rstrip()
    if comment is not None and (marker or comment) not in line:
        line += f"  # {comment}"
    return text[:start] + value + line + text[line_end:]


def delete(text: str, path: tuple[str, ...], comment_lines: tuple[str, ...] = ()) -> str:
    """Remove the one field at ``path`` (see `delete_field`)."""
    return delete_field(text, find_one(text, path), comment_lines)


def delete_field(text: str, node: Field, comment_lines: tuple[str, ...] = ()) -> str:
    """Remove the lines of the field ``node`` of ``parse(text)`` (a value, or a message up to its
    closing bracket), which must have them to itself, leaving ``comment_lines`` as ``#`` comments
    in their place, at its indentation."""
    line_start, line_end = _line_span(text, node.start, node.end)
    rest = text[node.end:line_end].strip().lstrip(",;").strip()
    if text[line_start:node.start].strip() or (rest and not rest.startswith("#")):
        raise PbtxtError(f"{node.path} shares its line with other fields")
    indent = text[line_start:node.start]
    replacement = "".join(f"{indent}# {line}\n" for line in comment_lines)
    return text[:line_start] + replacement + text[line_end:]


def insert(text: str, path: tuple[str, ...], line: str, comment: str | None = None) -> str:
    """Add ``line`` (e.g. ``"name: 3"``), ending with ``# COMMENT``, as the last field of the one
    message at ``path``, indented two spaces more than its closing bracket."""
    node = find_one(text, path)
    if node.close is None:
        raise PbtxtError(f"{'.'.join(path)} is not a message")
    line_start = text.rfind("\n", 0, node.close) + 1
    if text[line_start:node.close].strip():
        raise PbtxtError(f"the closing bracket of {'.'.join(path)} is not on its own line")
    indent = text[line_start:node.close] + "  "
    ending = "" if comment is None else f"  # {comment}"
    return text[:line_start] + f"{indent}{line}{ending}\n" + text[line_start:]


def _line_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Start of the line holding ``start`` and the end (after the newline) of the line of ``end``."""
    line_end = text.find("\n", end)
    return text.rfind("\n", 0, start) + 1, len(text) if line_end < 0 else line_end + 1
