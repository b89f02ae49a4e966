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


@pytest.fixture(autouse=True)
def private_mask_cache(tmp_path, monkeypatch):
    """GrabCut and model masks are cached in the test's own folder (subprocesses inherit it),
    never in the user's ~/.cache."""
    monkeypatch.setenv("SPATULE_SYNTH_MASK_CACHE", str(tmp_path / "mask_cache"))


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


def tag_photos(folder, count, size=(200, 150), tags_per_photo=2, seed=0):
    """Photos of noise with bright 'tags' (white rectangles with dark bars), labelled in XML."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for index in range(count):
        width, height = size
        pixels = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
        objects = []
        for k in range(tags_per_photo):
            x0, y0 = 10 + 90 * k, int(rng.integers(10, height - 40))
            pixels[y0:y0 + 20, x0:x0 + 30] = 245
            pixels[y0 + 5:y0 + 15, x0 + 4:x0 + 26:5] = 20
            objects.append(("tag", x0, y0, x0 + 30, y0 + 20))
        name = f"TAG{index:02d} (1).JPG"
        Image.fromarray(pixels).save(os.path.join(folder, name), quality=95)
        with open(os.path.join(folder, f"TAG{index:02d} (1).xml"), "w") as handle:
            handle.write(labelimg_xml(name, width, height, objects))


def background_photos(folder, count, size=(200, 150), seed=1):
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for index in range(count):
        pixels = rng.integers(0, 60, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"BG{index:02d}.jpg"), quality=95)


@pytest.fixture
def inputs(tmp_path):
    """6 labelled tag photos (``labelled/``) and 6 backgrounds (``backgrounds/``) under tmp_path."""
    tag_photos(tmp_path / "labelled", 6)
    background_photos(tmp_path / "backgrounds", 6)
    return tmp_path
