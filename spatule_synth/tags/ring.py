"""A Darvic leg ring seen from the side: a short cylinder, axis vertical, seen slightly from
above, with its code wrapped around it.

The code's characters (`spatule_synth.tags.glyphs`) are drawn flat, then wrapped around the
cylinder: a point of the side surface at ``n`` (-1..1 across the ring as seen) shows the flat
drawing at arc length ``radius * asin(n)``, so characters foreshorten toward the edges and those
past the edge are hidden; ``turn`` rotates the code around the axis (it is rarely centred on the
side facing the camera). Shading: diffuse light from the left or the right, darker toward the
bottom, a soft specular highlight, smooth dirt. The top rim and the dark opening show at the top.

Everything is drawn at ``supersample`` times the final size; `ring_patch` returns premultiplied
RGB (0..1) and alpha. The demo data builder (``tools/build_demo_data.py``) draws its rings with
this very function.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from spatule_synth.tags.glyphs import GlyphSource

INK = 0.05  # the characters' black
WHITE = (0.95, 0.95, 0.93)
PALE_YELLOW = (0.96, 0.90, 0.62)
STYLES = ("along", "stacked")


@dataclasses.dataclass(frozen=True)
class RingLook:
    """What one ring looks like."""

    code: str
    style: str = "along"  # "along": characters rotated, reading along the leg; "stacked": upright
    reads_up: bool = True  # "along": the code reads from the bottom up (else top down)
    colour: tuple[float, float, float] = WHITE
    width_px: float = 40.0  # ring diameter, in final pixels
    direct: float = 0.7  # share of direct light (0: overcast, 1: full sun)
    light_left: bool = True  # the light comes from the left
    dirt: float = 0.07  # depth of the smooth dirt (fraction of the brightness)
    turn: tuple[float, float] = (-0.3, 0.3)  # range of the code's rotation around the axis (rad)
    highlight: float = 0.10  # strength of the specular highlight (times ``direct``)


def value_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Smooth noise with features about ``cell`` pixels wide (unit std before smoothing)."""
    grid = rng.normal(size=(int(height / cell) + 3, int(width / cell) + 3)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def code_ink(look: RingLook, radius: float, glyphs: GlyphSource) -> np.ndarray:
    """The code as a flat ink mask: rows along the ring's axis, columns around it (unrolled)."""
    if look.style == "along":
        line = glyphs.line(look.code, max(8.0, 1.25 * radius / 0.70))
        return np.rot90(line, 1 if look.reads_up else 3)
    size = max(8.0, 1.05 * radius / 0.62)
    width = int(1.2 * radius) + 4
    cells = []
    for char in look.code:
        cells.append(glyphs.cell(char, size, width))
        cells.append(np.zeros((int(0.28 * radius), width), np.float32))
    return np.concatenate(cells[:-1], axis=0)


def ring_patch(rng: np.random.Generator, look: RingLook, glyphs: GlyphSource,
               supersample: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The ring at ``supersample`` times its final size: (premultiplied RGB, alpha), float32.
    Draws the code's turn, then the dirt, from ``rng``."""
    radius = look.width_px * supersample / 2.0
    ink_flat = code_ink(look, radius, glyphs)
    margin = 0.6 * radius
    length = ink_flat.shape[0] + 2.0 * margin
    rim = 0.22 * radius
    pad = 4
    height, width = int(length + 2 * rim + 2 * pad), int(2 * radius + 2 * pad)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    n = np.clip((xs - width / 2.0) / radius, -1.0, 1.0)
    depth = np.sqrt(1.0 - n ** 2)
    top_centre = pad + rim
    in_top = ((xs - width / 2.0) / radius) ** 2 + ((ys - top_centre) / rim) ** 2 <= 1.0
    opening = ((xs - width / 2.0) / (0.84 * radius)) ** 2 + ((ys - top_centre) / (0.84 * rim)) ** 2
    along = ys - top_centre - rim * depth  # distance down the side surface
    side = (np.abs(xs - width / 2.0) <= radius) & (along >= -rim * depth) & (along <= length)
    ink = _wrap(ink_flat, n, along, radius, margin, float(rng.uniform(*look.turn)))
    shade = _shading(n, depth, along, length, look)
    base = np.array(look.colour, np.float32)
    dirt = 1.0 - look.dirt * np.abs(value_noise(rng, height, width, radius * 0.6))
    colour = base * (shade * dirt)[..., None] * (1.0 - 0.95 * ink[..., None]) + INK * ink[..., None]
    colour = np.where(in_top[..., None], base * 1.02, colour)
    colour = np.where((opening <= 1.0)[..., None], np.float32(0.1), colour)
    alpha = (in_top | side).astype(np.float32)
    return (colour * alpha[..., None]).astype(np.float32), alpha


def _wrap(ink: np.ndarray, n: np.ndarray, along: np.ndarray, radius: float, margin: float,
          turn: float) -> np.ndarray:
    """Wrap the flat ink around the cylinder: arc length around the ring, distance along it."""
    arc = radius * (np.arcsin(n) - turn)
    map_x = (arc + ink.shape[1] / 2.0).astype(np.float32)
    map_y = (along - margin).astype(np.float32)
    wrapped = cv2.remap(ink.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return wrapped * (np.abs(n) < 0.995)


def _shading(n: np.ndarray, depth: np.ndarray, along: np.ndarray, length: float,
             look: RingLook) -> np.ndarray:
    lx = -0.55 if look.light_left else 0.55
    lz = math.sqrt(1.0 - lx * lx)
    diffuse = np.clip(n * lx + depth * lz, 0.0, 1.0)
    shade = 0.58 + 0.42 * (1.0 - look.direct * (1.0 - diffuse))
    shade = shade * (0.97 - 0.07 * np.clip(along / length, 0.0, 1.0))
    shade = shade * (1.0 - 0.14 * smoothstep(length * 0.9, length, along))
    highlight = look.highlight * look.direct * np.exp(-((n - 0.5 * lx) / 0.14) ** 2)
    return (shade + highlight).astype(np.float32)
