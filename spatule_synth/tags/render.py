"""One leg-ring tag as a field camera sees it, with its exact mask.

`render_tag` draws everything about one tag once, from the ranges of a `TagStyle`
(``--tag_style``, ``key=lo:hi`` pairs like ``--object_augment``):

* the ring (`spatule_synth.tags.ring`): diameter ``width`` in pixels (default: the range of the
  real tags' short sides when the run has real tags, else `DEFAULT_WIDTH`), colour (``--tag_colours``),
  code reading along the leg (up or down) or stacked upright (``stacked``: its probability), the
  code's ``turn`` around the axis, light (``direct``), ``dirt``, specular ``highlight`` and
  ``scratches`` (thin light or dark strokes on the ring);
* the leg it sits on: a dark band along the ring's axis, outside the mask (what seamless cloning
  sees around the ring: a white ring on a black spoonbill leg);
* the view: the leg's ``tilt`` from vertical (degrees), a ``perspective`` warp (corner shifts as
  fractions of the size), defocus ``blur`` (Gaussian sigma, px) and ``motion`` blur (kernel
  length, px, any direction);
* the camera: sensor ``noise`` (sigma, grey levels) and JPEG re-compression (``jpeg`` quality).

The ring is drawn at 4x and reduced; its mask is the reduced coverage >= 0.5, so the mask, and
the box of a paste of it, are exactly the pixels the ring covers. The cutout holds the tag and
`CUTOUT_MARGIN` pixels of context all round (leg and a neutral tone). ``upright_turns`` is the
number of quarter turns (``np.rot90``) that make the code read upright, left to right, for the
reading dataset (``--tag_crops``).
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from spatule_synth.core.transform import CUTOUT_MARGIN
from spatule_synth.tags.glyphs import GlyphSource
from spatule_synth.tags.ring import PALE_YELLOW, WHITE, RingLook, ring_patch

SUPERSAMPLE = 4
LEG = 0.07  # the leg's grey (0..1)
CONTEXT = 0.45  # the neutral tone around leg and ring
COLOURS = {"white": WHITE, "pale_yellow": PALE_YELLOW, "yellow": (0.93, 0.80, 0.25),
           "orange": (0.92, 0.55, 0.20), "light_blue": (0.62, 0.78, 0.90), "green": (0.35, 0.65, 0.40)}
DEFAULT_COLOURS = ("white", "white", "white", "pale_yellow")
DEFAULT_ALPHABET = "ACFHJKLMNPTUVXY0123456789"
DEFAULT_WIDTH = (18.0, 34.0)  # ring diameter, px, when there are no real tags to follow  # as the spoonbill rings: no E (looks like F), ...
Range = tuple[float, float]


@dataclasses.dataclass(frozen=True)
class TagStyle:
    """Ranges each rendered tag's look is drawn from (module docstring)."""

    width: Range | None = None  # None: as the real tags (see module docstring)
    stacked: float = 0.25
    turn: Range = (-0.3, 0.3)
    direct: Range = (0.2, 0.9)
    dirt: Range = (0.03, 0.15)
    highlight: Range = (0.05, 0.2)
    scratches: Range = (0.0, 3.0)
    tilt: Range = (-20.0, 20.0)
    perspective: Range = (0.0, 0.06)
    blur: Range = (0.0, 0.8)
    motion: Range = (0.0, 3.0)
    noise: Range = (1.0, 4.0)
    jpeg: Range = (70.0, 95.0)


STYLE_KEYS = tuple(field.name for field in dataclasses.fields(TagStyle))


def parse_tag_style(text: str, base: TagStyle = TagStyle()) -> TagStyle:
    """``--tag_style`` text (``width=20:40,tilt=-90:90,stacked=0.5``) over ``base``; a single
    value is a fixed value (``stacked``: a probability). ValueError names the bad part."""
    values: dict = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or key not in STYLE_KEYS:
            raise ValueError(f"--tag_style: {item!r} is not key=value with a key among {', '.join(STYLE_KEYS)}")
        try:
            numbers = [float(v) for v in value.split(":")]
        except ValueError:
            raise ValueError(f"--tag_style: {key}={value!r} is not a number or lo:hi") from None
        if not all(math.isfinite(v) for v in numbers):
            raise ValueError(f"--tag_style: {key}={value!r} must be finite numbers")
        if key == "stacked":
            if len(numbers) != 1 or not 0 <= numbers[0] <= 1:
                raise ValueError(f"--tag_style: stacked is a probability in [0, 1], got {value!r}")
            values[key] = numbers[0]
            continue
        if len(numbers) == 1:
            numbers *= 2
        if len(numbers) != 2 or numbers[0] > numbers[1]:
            raise ValueError(f"--tag_style: {key}={value!r} must be v or lo:hi with lo <= hi")
        if key == "turn" and max(abs(numbers[0]), abs(numbers[1])) > 1.0:
            raise ValueError(f"--tag_style: turn must lie in [-1, 1] (radians; beyond, most of the code "
                             f"is on the hidden side of the ring), got {value!r}")
        if key not in ("turn", "tilt") and numbers[0] < 0:
            raise ValueError(f"--tag_style: {key} cannot be negative, got {value!r}")
        if key == "width" and numbers[0] < 6:
            raise ValueError(f"--tag_style: width (ring diameter) must be at least 6 px, got {value!r}")
        if key == "jpeg" and not 1 <= numbers[0] <= numbers[1] <= 100:
            raise ValueError(f"--tag_style: jpeg quality must lie in [1, 100], got {value!r}")
        values[key] = (numbers[0], numbers[1])
    return dataclasses.replace(base, **values)


def parse_colours(names: list[str] | tuple[str, ...]) -> tuple[tuple[float, float, float], ...]:
    """Ring colours by name (`COLOURS`) or ``#rrggbb``; ValueError names the bad one."""
    colours = []
    for name in names:
        name = name.strip().lower()
        if name in COLOURS:
            colours.append(COLOURS[name])
        elif len(name) == 7 and name.startswith("#"):
            try:
                colours.append(tuple(int(name[i:i + 2], 16) / 255.0 for i in (1, 3, 5)))
            except ValueError:
                raise ValueError(f"--tag_colours: {name!r} is not #rrggbb") from None
        else:
            raise ValueError(f"--tag_colours: {name!r} is not #rrggbb or one of {', '.join(COLOURS)}")
    if not colours:
        raise ValueError("--tag_colours: give at least one colour")
    return tuple(colours)


@dataclasses.dataclass(frozen=True, eq=False)
class RenderedTag:
    pixels: np.ndarray  # (h, w, 3) uint8 RGB: the tag and CUTOUT_MARGIN px of context all round
    mask: np.ndarray  # (h, w) uint8, 255 on the ring
    upright_turns: int  # np.rot90(crop, upright_turns) reads the code upright, left to right


def _draw(rng: np.random.Generator, span: Range) -> float:
    return float(rng.uniform(*span)) if span[0] != span[1] else float(span[0])


def render_tag(rng: np.random.Generator, code: str, glyphs: GlyphSource, style: TagStyle = TagStyle(),
               colours: tuple[tuple[float, float, float], ...] = tuple(COLOURS[c] for c in DEFAULT_COLOURS)
               ) -> RenderedTag:
    """Draw one tag carrying ``code`` (module docstring); deterministic in ``rng``."""
    stacked = bool(rng.random() < style.stacked)
    reads_up = bool(rng.random() < 0.5)
    look = RingLook(code, "stacked" if stacked else "along", reads_up,
                    colours[int(rng.integers(len(colours)))], _draw(rng, style.width or DEFAULT_WIDTH),
                    _draw(rng, style.direct), bool(rng.random() < 0.5), _draw(rng, style.dirt),
                    style.turn, _draw(rng, style.highlight))
    rgb, alpha = ring_patch(rng, look, glyphs, SUPERSAMPLE)
    _scratch(rng, rgb, alpha, int(round(_draw(rng, style.scratches))))
    tilt = _draw(rng, style.tilt)
    corners = rng.uniform(-1.0, 1.0, 8) * _draw(rng, style.perspective)
    image, coverage = _view(rgb, alpha, look.width_px * SUPERSAMPLE, tilt, corners)
    image = _blur(rng, image, _draw(rng, style.blur), _draw(rng, style.motion))
    noise, quality = _draw(rng, style.noise), int(round(_draw(rng, style.jpeg)))
    pixels = np.clip(image * 255.0 + rng.normal(0.0, 1.0, image.shape) * noise, 0, 255)
    pixels = _jpeg(np.round(pixels).astype(np.uint8), quality)
    mask = np.where(coverage >= 0.5, 255, 0).astype(np.uint8)
    pixels, mask = _crop(pixels, mask)
    text_angle = (90.0 if reads_up else -90.0) * (not stacked) + tilt
    return RenderedTag(pixels, mask, int(round(-text_angle / 90.0)) % 4)


def _scratch(rng: np.random.Generator, rgb: np.ndarray, alpha: np.ndarray, count: int) -> None:
    """Thin light or dark strokes on the ring's surface (premultiplied RGB, in place)."""
    height, width = alpha.shape
    for _ in range(count):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        angle, length = rng.uniform(0, math.pi), rng.uniform(0.2, 0.6) * width
        tone = 0.25 if rng.random() < 0.5 else 1.0
        line = np.zeros_like(alpha)
        cv2.line(line, (int(x0), int(y0)), (int(x0 + length * math.cos(angle)),
                                             int(y0 + length * math.sin(angle))), 1.0,
                 max(1, SUPERSAMPLE // 2), cv2.LINE_AA)
        strength = (line * 0.6 * alpha)[..., None]
        rgb[:] = rgb * (1.0 - strength) + tone * alpha[..., None] * strength


def _view(rgb: np.ndarray, alpha: np.ndarray, diameter: float, tilt: float,
          corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ring on its leg, rotated by ``tilt`` and warped by ``corners``, reduced to its final
    size: (RGB 0..1, ring coverage 0..1)."""
    height, width = alpha.shape
    pad = int(math.hypot(height, width) / 2) + (CUTOUT_MARGIN + 4) * SUPERSAMPLE
    canvas_h, canvas_w = height + 2 * pad, width + 2 * pad
    xs = np.arange(canvas_w, dtype=np.float32) + 0.5 - canvas_w / 2.0
    leg = np.abs(xs) <= 0.42 * diameter
    context = np.where(leg, np.float32(LEG), np.float32(CONTEXT))[None, :, None]
    image = np.broadcast_to(context, (canvas_h, canvas_w, 3)).copy()
    coverage = np.zeros((canvas_h, canvas_w), np.float32)
    image[pad:pad + height, pad:pad + width] = (rgb + image[pad:pad + height, pad:pad + width]
                                                 * (1.0 - alpha[..., None]))
    coverage[pad:pad + height, pad:pad + width] = alpha
    centre = (canvas_w / 2.0, canvas_h / 2.0)
    matrix = np.vstack([cv2.getRotationMatrix2D(centre, tilt, 1.0), [0, 0, 1]])
    if np.any(corners):
        size = max(height, width)
        source = np.float32([[pad, pad], [pad + width, pad], [pad + width, pad + height], [pad, pad + height]])
        target = source + corners.reshape(4, 2).astype(np.float32) * size
        matrix = cv2.getPerspectiveTransform(source, target.astype(np.float32)) @ matrix
    size = (canvas_w, canvas_h)
    image = cv2.warpPerspective(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    coverage = cv2.warpPerspective(coverage, matrix, size, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    final = (max(1, canvas_w // SUPERSAMPLE), max(1, canvas_h // SUPERSAMPLE))
    return (cv2.resize(image, final, interpolation=cv2.INTER_AREA),
            cv2.resize(coverage, final, interpolation=cv2.INTER_AREA))


def _blur(rng: np.random.Generator, image: np.ndarray, sigma: float, motion: float) -> np.ndarray:
    angle = float(rng.uniform(0.0, 180.0))
    if sigma > 0.05:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    length = int(round(motion))
    if length >= 2:
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0
        rotation = cv2.getRotationMatrix2D(((length - 1) / 2.0, (length - 1) / 2.0), angle, 1.0)
        kernel = cv2.warpAffine(kernel, rotation, (length, length))
        image = cv2.filter2D(image, -1, kernel / max(float(kernel.sum()), 1e-6))
    return image


def _jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    """RGB pixels through a JPEG of ``quality`` (OpenCV's codec works in BGR)."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding of a rendered tag failed")
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _crop(pixels: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mask's box plus `CUTOUT_MARGIN` px all round."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        raise ValueError("the rendered tag covers no pixel: raise --tag_style width")
    y0, y1 = max(ys.min() - CUTOUT_MARGIN, 0), min(ys.max() + 1 + CUTOUT_MARGIN, mask.shape[0])
    x0, x1 = max(xs.min() - CUTOUT_MARGIN, 0), min(xs.max() + 1 + CUTOUT_MARGIN, mask.shape[1])
    return np.ascontiguousarray(pixels[y0:y1, x0:x1]), np.ascontiguousarray(mask[y0:y1, x0:x1])
