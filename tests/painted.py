"""Photos whose objects are painted in one colour nothing else has, so a test can check written
images against written boxes by their pixels: every painted pixel inside a box, every box on paint.

The scene is dark noise (every channel below 130); objects are magenta (255, 0, 255), a colour the
scene never reaches, even after JPEG compression at quality 95.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
from PIL import Image

MAGENTA = (255, 0, 255)
SIZE = (160, 120)  # width, height of the painted photos


def scene(size=SIZE, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(30, 130, size=(size[1], size[0], 3), dtype=np.uint8)


def painted(boxes, size=SIZE, seed=0) -> np.ndarray:
    """Noise with each ``(x0, y0, x1, y1)`` box (pixel edges) painted magenta."""
    pixels = scene(size, seed)
    for x0, y0, x1, y1 in boxes:
        pixels[y0:y1, x0:x1] = MAGENTA
    return pixels


def save_photo(folder, name, boxes=(), size=SIZE, seed=0) -> str:
    """A painted photo (JPEG or PNG by the name's extension); its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(str(folder), name)
    image = Image.fromarray(painted(boxes, size, seed))
    if name.lower().endswith((".jpg", ".jpeg")):
        image.save(path, format="JPEG", quality=95)
    else:
        image.save(path)
    return path


def voc_xml(filename, size, objects) -> str:
    """labelImg's XML. ``objects``: ``(name, (x0, y0, x1, y1))`` or
    ``(name, box, truncated, difficult)``."""
    width, height = size
    parts = ['<annotation verified="yes">', "\t<folder>photos</folder>",
             f"\t<filename>{filename}</filename>", f"\t<path>C:\\photos\\{filename}</path>",
             "\t<source>\n\t\t<database>Unknown</database>\n\t</source>",
             f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n"
             "\t\t<depth>3</depth>\n\t</size>", "\t<segmented>0</segmented>"]
    for obj in objects:
        name, (x0, y0, x1, y1) = obj[0], obj[1]
        truncated, difficult = (obj[2], obj[3]) if len(obj) > 2 else (0, 0)
        parts.append(f"\t<object>\n\t\t<name>{name}</name>\n\t\t<pose>Unspecified</pose>\n"
                     f"\t\t<truncated>{truncated}</truncated>\n\t\t<difficult>{difficult}</difficult>\n"
                     f"\t\t<bndbox>\n\t\t\t<xmin>{x0}</xmin>\n\t\t\t<ymin>{y0}</ymin>\n"
                     f"\t\t\t<xmax>{x1}</xmax>\n\t\t\t<ymax>{y1}</ymax>\n\t\t</bndbox>\n\t</object>")
    parts.append("</annotation>\n")
    return "\n".join(parts)


def labelled_photo(folder, name, objects=(), painted_boxes=None, size=SIZE, declared_size=None,
                   filename=None, seed=0) -> str:
    """A painted photo and its labelImg XML. Painted: the boxes of ``objects`` unless
    ``painted_boxes`` says otherwise (objects whose label will be lost are painted too)."""
    boxes = [obj[1] for obj in objects] if painted_boxes is None else painted_boxes
    path = save_photo(folder, name, boxes, size, seed)
    stem = os.path.splitext(name)[0]
    with open(os.path.join(str(folder), stem + ".xml"), "w", encoding="utf-8") as handle:
        handle.write(voc_xml(filename or name, declared_size or size, objects))
    return path


def coco_json(path, images) -> None:
    """A COCO file: ``images`` is a list of ``(file_name, (width, height), annotations)``, each
    annotation a dict with at least ``category_id`` and ``segmentation`` or ``bbox``; categories
    1 = tag, 2 = dog."""
    document = {"images": [], "annotations": [],
                "categories": [{"id": 1, "name": "tag"}, {"id": 2, "name": "dog"}]}
    for image_id, (file_name, (width, height), entries) in enumerate(images, 1):
        document["images"].append({"id": image_id, "file_name": file_name, "width": width,
                                   "height": height})
        for annotation in entries:
            document["annotations"].append({"id": len(document["annotations"]) + 1,
                                            "image_id": image_id, "iscrowd": 0, **annotation})
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle)


def paint_mask(pixels: np.ndarray) -> np.ndarray:
    """Where the paint is: red and blue high, green low (JPEG keeps it well inside these)."""
    pixels = pixels.astype(np.int16)
    return (pixels[..., 0] > 180) & (pixels[..., 1] < 100) & (pixels[..., 2] > 180)


def assert_boxes_match_paint(pixels: np.ndarray, boxes, where: str = "") -> None:
    """No painted pixel outside every box (an object without a box), and every box on paint
    (no box where no object is): at least half of each box is painted."""
    paint = paint_mask(pixels)
    covered = np.zeros(paint.shape, bool)
    for box in boxes:
        x0, y0, x1, y1 = (math.floor(box[0]), math.floor(box[1]), math.ceil(box[2]), math.ceil(box[3]))
        covered[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1] = True  # JPEG may bleed by a pixel
        share = paint[y0:y1, x0:x1].mean() if y1 > y0 and x1 > x0 else 0.0
        assert share > 0.5, f"{where}: box {box} is on no object (painted share {share:.2f})"
    stray = np.argwhere(paint & ~covered)
    assert stray.size == 0, (f"{where}: {len(stray)} painted pixels outside every box, e.g. at "
                             f"(x, y) = {tuple(stray[0][::-1])}: an object without a box")
