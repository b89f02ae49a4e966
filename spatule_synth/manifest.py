"""``OUT/manifest.json``: what a finished run made, from what, with which software.

The manifest is written last and atomically: an output directory without one is unfinished.
Its layout is meant for both eyes and ``grep``: nested objects are indented, and each item of a
list of objects (one image, one problem) sits on one line.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform

from spatule_synth.output_dir import atomic_write_bytes

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


def write_manifest(output_dir: str, content: dict) -> str:
    """Write ``content`` (plus package versions) as the run's manifest; returns its path."""
    path = os.path.join(output_dir, MANIFEST_NAME)
    document = {"versions": package_versions(), **content}
    atomic_write_bytes(path, (manifest_json(document) + "\n").encode("utf-8"))
    return path


def manifest_json(value, depth: int = 0) -> str:
    """JSON text of ``value``: objects indented by two spaces per level, lists of objects one item
    per line, everything else on one line (Python's fast C encoder does the lines)."""
    inner = "  " * (depth + 1)
    if isinstance(value, dict) and value:
        members = (f"{inner}{json.dumps(key)}: {manifest_json(item, depth + 1)}"
                   for key, item in value.items())
        return "{\n" + ",\n".join(members) + "\n" + "  " * depth + "}"
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return "[\n" + ",\n".join(inner + json.dumps(item) for item in value) + "\n" + "  " * depth + "]"
    return json.dumps(value)


def read_manifest(output_dir: str) -> dict:
    with open(os.path.join(output_dir, MANIFEST_NAME), encoding="utf-8") as handle:
        return json.load(handle)
