"""``OUT/manifest.json``: what a finished run made, from what, with which software.

The manifest is written last and atomically: an output directory without one is unfinished.
Its layout is meant for both eyes and ``grep``: nested objects are indented, and each item of a
list of objects (one image, one problem) sits on one line. `ManifestStream` reads any manifest
(this layout or another) in memory bounded by its largest item, streaming the per-image lists.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
from typing import IO, Generator, Iterator

from spatule_synth.core import storage
from spatule_synth.core.output_dir import atomic_open

MANIFEST_NAME = "manifest.json"
_PACKAGES = ("tensorflow", "tf-models-official", "numpy", "opencv-python-headless", "pillow", "lxml",
             "protobuf", "absl-py")


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape the outputs."""
    versions = {"python": platform.python_version()}
    for package in _PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    from spatule_synth import __version__
    versions["spatule_synth"] = __version__
    return versions


class JsonLines:
    """A list of JSON objects stored one per line in an open binary file (written by the run as it
    goes): `write_manifest` copies it in without loading it, so memory stays flat."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle

    def append(self, item: dict) -> None:
        self.handle.write(json.dumps(item).encode("utf-8") + b"\n")

    def lines(self) -> Iterator[str]:
        self.handle.flush()
        self.handle.seek(0)
        for line in self.handle:
            yield line.decode("utf-8").rstrip("\n")
        self.handle.seek(0, os.SEEK_END)

    def __iter__(self) -> Iterator[dict]:
        return (json.loads(line) for line in self.lines())


def write_manifest(output_dir: str, content: dict) -> str:
    """Write ``content`` (plus package versions) as the run's manifest; returns its path. Values
    may be `JsonLines` (streamed into place as a list of objects)."""
    path = storage.join(output_dir, MANIFEST_NAME)
    document = {"versions": package_versions(), **content}
    with atomic_open(path) as handle:
        for piece in manifest_pieces(document):
            handle.write(piece.encode("utf-8"))
        handle.write(b"\n")
    return path


def manifest_json(value, depth: int = 0) -> str:
    """JSON text of ``value``: objects indented by two spaces per level, lists of objects one item
    per line, everything else on one line (Python's fast C encoder does the lines)."""
    return "".join(manifest_pieces(value, depth))


def manifest_pieces(value, depth: int = 0) -> Iterator[str]:
    """`manifest_json` as a stream of pieces (a `JsonLines` value is one piece per line)."""
    inner = "  " * (depth + 1)
    if isinstance(value, dict) and value:
        for position, (key, item) in enumerate(value.items()):
            yield ("{\n" if position == 0 else ",\n") + f"{inner}{json.dumps(key)}: "
            yield from manifest_pieces(item, depth + 1)
        yield "\n" + "  " * depth + "}"
    elif isinstance(value, JsonLines):
        empty = True
        for line in value.lines():
            yield ("[\n" if empty else ",\n") + inner + line
            empty = False
        yield "[]" if empty else "\n" + "  " * depth + "]"
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        yield "[\n" + ",\n".join(inner + json.dumps(item) for item in value) + "\n" + "  " * depth + "]"
    else:
        yield json.dumps(value)


def read_manifest_head(output_dir: str) -> dict:
    """The manifest without its per-image lists (generate's ``images``, convert's ``examples``,
    written last): what a check of the settings needs, read in memory independent of the number
    of images."""
    markers = ('\n  "images": ', '\n  "examples": ')
    longest = max(len(marker) for marker in markers)
    text = ""
    with storage.open_text(storage.join(output_dir, MANIFEST_NAME)) as handle:
        while True:
            piece = handle.read(1 << 16)
            start = max(0, len(text) - longest)
            text += piece
            found = [p for p in (text.find(marker, start) for marker in markers) if p >= 0]
            if found:
                return json.loads(text[:min(found)].rstrip(",") + "\n}")
            if not piece:
                return json.loads(text)


def read_manifest(output_dir: str) -> dict:
    with storage.open_text(storage.join(output_dir, MANIFEST_NAME)) as handle:
        return json.load(handle)


_CHUNK = 1 << 16  # characters read at a time (at least; a longer value doubles the buffer)
_SLACK = 64  # a value decoded this close to the end of the buffer may go on (a number): read more
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class ManifestStream:
    """One pass over a manifest (any JSON layout: the run's, or a one-line re-write) in memory
    bounded by its largest value other than ``images`` and by its largest single image: every
    top-level member but ``images`` is decoded whole, ``images`` (an object of lists) one item at
    a time. Raises ValueError where the text is not JSON or its top level is not an object."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.text = ""
        self.at = 0  # next character of self.text to parse
        self.eof = False

    def head(self) -> dict:
        """Every top-level member but ``images``, after parsing the whole file."""
        members = self.members()
        while True:
            try:
                next(members)
            except StopIteration as done:
                return done.value

    def members(self) -> Generator[tuple[str, object], None, dict]:
        """Yields (split, image) for each item of each list in ``images``; returns `head`."""
        head = {}
        self._expect("{")
        if self._peek() == "}":
            self.at += 1
        else:
            while True:
                key = self._key()
                if key == "images" and self._peek() == "{":
                    head.pop("images", None)
                    yield from self._images()
                else:
                    head[key] = self._value()
                if self._expect(",}") == "}":
                    break
        if self._peek():
            raise ValueError("Extra data")
        return head

    def _images(self) -> Iterator[tuple[str, object]]:
        self._expect("{")
        if self._peek() == "}":
            self.at += 1
            return
        while True:
            split = self._key()
            if self._peek() == "[":
                self.at += 1
                if self._peek() == "]":
                    self.at += 1
                else:
                    while True:
                        yield split, self._value()
                        if self._expect(",]") == "]":
                            break
            else:  # not a list: whatever it holds (the checks iterate it as they would the list)
                for item in self._value():
                    yield split, item
            if self._expect(",}") == "}":
                return

    def _more(self) -> bool:
        """Read the next piece (at least as long as what is left unparsed); False at the end."""
        if self.eof:
            return False
        piece = self.handle.read(max(_CHUNK, len(self.text) - self.at))
        if not piece:
            self.eof = True
            return False
        self.text = self.text[self.at:] + piece
        self.at = 0
        return True

    def _peek(self) -> str:
        """The next character after whitespace, not consumed ("" at the end of the file)."""
        while True:
            self.at = _WHITESPACE.match(self.text, self.at).end()
            if self.at < len(self.text):
                return self.text[self.at]
            if not self._more():
                return ""

    def _expect(self, allowed: str) -> str:
        char = self._peek()
        if not char or char not in allowed:
            raise ValueError(f"expected one of {allowed!r} at {char!r}")
        self.at += 1
        return char

    def _key(self) -> str:
        if self._peek() != '"':
            raise ValueError("Expecting property name enclosed in double quotes")
        key = self._value()
        self._expect(":")
        return key

    def _value(self):
        self._peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.at)
            except json.JSONDecodeError:
                if self._more():
                    continue
                raise
            if end + _SLACK > len(self.text) and self._more():
                continue
            self.at = end
            return value
