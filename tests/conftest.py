"""Shared test helpers: the checked-in quirk fixtures and tiny labelImg folders built on the fly."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
QUIRKS = os.path.join(FIXTURES, "labelimg_quirks")
QUIRK_TAG = (100, 60, 160, 90)  # the tag box of every quirk photo, displayed frame

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def quirks_dir(tmp_path):
    """A private copy of tests/fixtures/labelimg_quirks (tests may add or break files in it)."""
    target = tmp_path / "labelimg_quirks"
    shutil.copytree(QUIRKS, target)
    return target


def noise_photo(width=64, height=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def labelimg_xml(filename, width, height, objects=(), verified=True):
    """A labelImg-style XML text; objects are (name, xmin, ymin, xmax, ymax)."""
    attribute = ' verified="yes"' if verified else ""
    parts = [f"<annotation{attribute}>",
             "\t<folder>photos</folder>", f"\t<filename>{filename}</filename>",
             f"\t<path>/home/someone/photos/{filename}</path>",
             "\t<source>\n\t\t<database>Unknown</database>\n\t</source>",
             f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n"
             "\t\t<depth>3</depth>\n\t</size>", "\t<segmented>0</segmented>"]
    for name, xmin, ymin, xmax, ymax in objects:
        parts.append(f"\t<object>\n\t\t<name>{name}</name>\n\t\t<pose>Unspecified</pose>\n"
                     "\t\t<truncated>0</truncated>\n\t\t<difficult>0</difficult>\n\t\t<bndbox>\n"
                     f"\t\t\t<xmin>{xmin}</xmin>\n\t\t\t<ymin>{ymin}</ymin>\n"
                     f"\t\t\t<xmax>{xmax}</xmax>\n\t\t\t<ymax>{ymax}</ymax>\n\t\t</bndbox>\n\t</object>")
    parts.append("</annotation>\n")
    return "\n".join(parts)


def add_photo(folder, name, objects=(), size=(64, 48), seed=0, xml=True):
    """Write a noise JPEG ``name`` (+ labelImg XML beside it unless ``xml`` is False)."""
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    width, height = size
    Image.fromarray(noise_photo(width, height, seed)).save(os.path.join(folder, name), quality=95)
    if xml:
        stem = os.path.splitext(name)[0]
        with open(os.path.join(folder, stem + ".xml"), "w", encoding="utf-8") as handle:
            handle.write(labelimg_xml(name, width, height, objects))
    return os.path.join(folder, name)
