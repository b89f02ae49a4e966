"""Contact sheets of an output directory: what the user would see opening it in labelImg, at a
glance. Each thumbnail shows an image with its boxes and class names (from its XML) and, when
instance masks were written, the outline of every visible mask.

``OUT/report/gallery_{train,eval}.png``; drawn with OpenCV. When a run pasted rendered tags or generated instances,
``OUT/report/instances_{photographed,rendered,generated}.png`` show the pasted objects of each origin side by
side (crops of the written images, box plus a few pixels), so the sources can be compared. With
``--scene_outputs``, ``OUT/report/scenes_{train,eval}.png`` show the first images of each split
with one row per kind (image, then background, mask, layers, depth as written), column by column
the same image.
"""

from __future__ import annotations

import heapq
import os
from typing import Iterable

import cv2
import numpy as np

from spatule_synth.core import storage
from spatule_synth.core.images import read_image, read_plane
from spatule_synth.core.output_dir import atomic_write_bytes
from spatule_synth.formats.voc import read_voc
from spatule_synth.generate.gan_source import GAN_PREFIX
from spatule_synth.generate.rendered_source import RENDERED_PREFIX

_COLOURS = [(255, 64, 64), (64, 200, 255), (255, 200, 0), (160, 90, 255), (0, 230, 120), (255, 120, 200)]


def annotated_thumbnail(image_path: str, xml_path: str, mask_path: str | None, size: int) -> np.ndarray:
    """The image with boxes, names and mask outlines drawn, scaled to ``size`` x ``size``."""
    pixels = read_image(image_path).pixels.copy()
    annotation = read_voc(xml_path)
    plane = None
    if mask_path:
        plane = read_plane(mask_path, cv2.IMREAD_UNCHANGED)
    for index, obj in enumerate(annotation.objects, start=1):
        colour = _COLOURS[(index - 1) % len(_COLOURS)]
        if plane is not None:
            contours, _ = cv2.findContours((plane == index).astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(pixels, contours, -1, colour, 1)
        x0, y0, x1, y1 = obj.box.voc_ints()
        cv2.rectangle(pixels, (x0, y0), (x1 - 1, y1 - 1), colour, 2)
        label = obj.name + (" (truncated)" if obj.truncated else "")
        cv2.putText(pixels, label, (x0 + 2, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1,
                    cv2.LINE_AA)
    scale = size / max(pixels.shape[:2])
    thumb = cv2.resize(pixels, (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale)),
                       interpolation=cv2.INTER_AREA)
    tile = np.full((size, size, 3), 32, np.uint8)
    tile[:thumb.shape[0], :thumb.shape[1]] = thumb
    cv2.putText(tile, os.path.basename(image_path), (4, size - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def first_images(folder: str, count: int) -> list[str]:
    """The first ``count`` names (without ``.jpg``) of the JPEG files in ``folder``, in order
    (none if there is no such folder), without holding a huge local folder's listing in memory."""
    if not storage.is_dir(folder):
        return []
    return heapq.nsmallest(count, (name[:-4] for name in storage.names_in(folder) if name.endswith(".jpg")))


def contact_sheet(output_dir: str, split: str, count: int = 24, columns: int = 6,
                  size: int = 320) -> np.ndarray | None:
    """The first ``count`` images of ``split``, annotated, in a grid; None if there are none."""
    folder = storage.join(output_dir, "images", split)
    names = first_images(folder, count)
    if not names:
        return None
    tiles = [annotated_thumbnail(storage.join(folder, f"{name}.jpg"), storage.join(folder, f"{name}.xml"),
                                 storage.join(output_dir, "masks", split, f"{name}.png"), size)
             for name in names]
    while len(tiles) % columns:
        tiles.append(np.full((size, size, 3), 32, np.uint8))
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    return np.vstack(rows)


INSTANCE_ORIGINS = {"photographed": lambda cutout: not cutout.startswith((RENDERED_PREFIX, GAN_PREFIX)),
                    "rendered": lambda cutout: cutout.startswith(RENDERED_PREFIX),
                    "generated": lambda cutout: cutout.startswith(GAN_PREFIX)}


def instance_sheets(output_dir: str, entries: Iterable[dict], split: str, count: int = 48,
                    columns: int = 12, size: int = 96) -> dict[str, np.ndarray]:
    """Per origin ("photographed", "rendered", "generated"): the first ``count`` pasted objects
    of ``split`` (its manifest entries, in order), cropped from the written images; only when
    more than one origin is present."""
    crops: dict[str, list[np.ndarray]] = {origin: [] for origin in INSTANCE_ORIGINS}
    folder = os.path.join(output_dir, "images", split)
    for entry in entries:
        wanted = [(origin, obj) for obj in entry["objects"] for origin, test in INSTANCE_ORIGINS.items()
                  if test(obj["cutout"]) and len(crops[origin]) < count]
        if not wanted:
            if all(len(found) >= count for found in crops.values()):
                break
            continue
        pixels = read_image(os.path.join(folder, entry["name"] + ".jpg")).pixels
        for origin, obj in wanted:
            x0, y0, x1, y1 = (int(round(v)) for v in obj["box"])
            crop = pixels[max(y0 - 4, 0):y1 + 4, max(x0 - 4, 0):x1 + 4]
            scale = min(1.0, (size - 4) / max(crop.shape[:2]))
            crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                              interpolation=cv2.INTER_AREA)
            tile = np.full((size, size, 3), 32, np.uint8)
            tile[:crop.shape[0], :crop.shape[1]] = crop
            crops[origin].append(tile)
    if sum(bool(found) for found in crops.values()) < 2:
        return {}
    sheets = {}
    for origin, tiles in ((origin, tiles) for origin, tiles in crops.items() if tiles):
        tiles = tiles + [np.full((size, size, 3), 32, np.uint8)] * (-len(tiles) % columns)
        sheets[origin] = np.vstack([np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)])
    return sheets


def _write_png(path: str, sheet: np.ndarray) -> None:
    storage.makedirs(os.path.dirname(path))
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_PNG_COMPRESSION, 1])  # 5x faster than the default
    if not ok:
        raise RuntimeError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, encoded.tobytes())


def write_instance_galleries(output_dir: str, entries: Iterable[dict], split: str = "train") -> list[str]:
    """Write ``OUT/report/instances_ORIGIN.png`` (see `instance_sheets`); their paths."""
    written = []
    for origin, sheet in instance_sheets(output_dir, entries, split).items():
        path = os.path.join(output_dir, "report", f"instances_{origin}.png")
        _write_png(path, sheet)
        written.append(path)
    return written


def _write_split_sheets(output_dir: str, prefix: str, sheet_of, splits: tuple[str, ...]) -> list[str]:
    """Write ``OUT/report/PREFIX_SPLIT.png`` = ``sheet_of(split)`` for every split that has one."""
    written = []
    for split in splits:
        sheet = sheet_of(split)
        if sheet is None:
            continue
        path = os.path.join(output_dir, "report", f"{prefix}_{split}.png")
        _write_png(path, sheet)
        written.append(path)
    return written


def write_galleries(output_dir: str, splits: tuple[str, ...] = ("train", "eval")) -> list[str]:
    """Write ``OUT/report/gallery_SPLIT.png`` for every split that has images; their paths."""
    return _write_split_sheets(output_dir, "gallery", lambda split: contact_sheet(output_dir, split), splits)


SCENE_KINDS = ("background", "mask", "layers", "depth")


def _scene_tile(path: str, kind: str, size: int) -> np.ndarray:
    """One written scene file as an RGB thumbnail: layers coloured by paste, depth scaled to 8 bits."""
    plane = read_plane(path, cv2.IMREAD_UNCHANGED)
    if plane is None:
        return np.full((size, size, 3), 32, np.uint8)
    if kind == "layers":
        plane = np.array([(0, 0, 0)] + _COLOURS, np.uint8)[np.where(plane > 0, (plane - 1) % len(_COLOURS) + 1, 0)]
    elif kind == "depth":
        plane = cv2.cvtColor((plane // 257).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    elif plane.ndim == 2:
        plane = cv2.cvtColor(plane, cv2.COLOR_GRAY2RGB)
    else:
        plane = cv2.cvtColor(plane, cv2.COLOR_BGR2RGB)
    return cv2.resize(plane, (size, size), interpolation=cv2.INTER_NEAREST if kind == "layers" else cv2.INTER_AREA)


def scene_sheet(output_dir: str, split: str, kinds: Iterable[str], count: int = 8,
                size: int = 160) -> np.ndarray | None:
    """The first ``count`` images of ``split``, one row per kind: the image, then each scene
    output of ``kinds`` (labelled at the left); None if the split has no images."""
    folder = storage.join(output_dir, "images", split)
    names = first_images(folder, count)
    if not names:
        return None
    rows = []
    for kind in ("image", *[k for k in SCENE_KINDS if k in kinds]):
        label = np.full((size, 110, 3), 32, np.uint8)
        cv2.putText(label, kind, (6, size // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        if kind == "image":
            tiles = [cv2.resize(read_image(storage.join(folder, f"{name}.jpg")).pixels, (size, size),
                                interpolation=cv2.INTER_AREA) for name in names]
        else:
            tiles = [_scene_tile(storage.join(output_dir, kind, split, f"{name}.png"), kind, size)
                     for name in names]
        tiles += [np.full((size, size, 3), 32, np.uint8)] * (count - len(tiles))
        rows.append(np.hstack([label, *tiles]))
    return np.vstack(rows)


def write_scene_galleries(output_dir: str, kinds: Iterable[str],
                          splits: tuple[str, ...] = ("train", "eval")) -> list[str]:
    """Write ``OUT/report/scenes_SPLIT.png`` (see `scene_sheet`) for every split with images."""
    kinds = tuple(kinds)
    return _write_split_sheets(output_dir, "scenes", lambda split: scene_sheet(output_dir, split, kinds), splits)
