"""Augmentation: what may vary (ranges, from the flags), draws (plain numbers in the plan) and
their deterministic application to pixels.

Object augmentation (``--object_augment``) is drawn once per pasted object into its `Placement`;
geometry (scale, rotation, flips, perspective) is applied by `spatule_synth.core.transform` to the
pixels and every mask at once, so labels follow; colour and blur are applied here to the object's
pixels only. Image augmentation (``--image_augment``) is drawn once per image into its `SampleSpec`
and applied to the finished canvas; it changes no pixel's position, so boxes stay tight (motion
blur smears edges by at most half its length, as a real moving subject does).

Flag syntax: comma-separated ``key=value``; a range is ``lo:hi`` and a single number ``v`` means
``-v:v`` for signed amounts (rotate, brightness, contrast, hue, saturation) and ``0:v`` otherwise.

* object: ``rotate`` (degrees), ``flip`` (``h``, ``v`` or ``hv``: each drawn with probability 1/2),
  ``perspective`` (corner shift, fraction of the object size), ``brightness`` (fraction of 255),
  ``contrast`` and ``saturation`` (relative change), ``hue`` (degrees), ``blur`` (Gaussian sigma, px).
* image: ``brightness``, ``contrast``, ``saturation``, ``hue`` (as above, whole image), ``noise``
  (Gaussian sigma in grey levels), ``motion_blur`` (kernel length, px), ``jpeg_quality`` (range).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from spatule_synth.generate.random_streams import stream

Range = tuple[float, float]
_SIGNED = {"rotate", "brightness", "contrast", "hue", "saturation"}
OBJECT_KEYS = ("rotate", "flip", "perspective", "brightness", "contrast", "saturation", "hue", "blur")
IMAGE_KEYS = ("brightness", "contrast", "saturation", "hue", "noise", "motion_blur", "jpeg_quality")


@dataclasses.dataclass(frozen=True)
class ObjectAugmentRanges:
    rotate: Range = (0.0, 0.0)
    flip: str = ""  # subset of "hv"
    perspective: Range = (0.0, 0.0)
    brightness: Range = (0.0, 0.0)
    contrast: Range = (0.0, 0.0)
    saturation: Range = (0.0, 0.0)
    hue: Range = (0.0, 0.0)
    blur: Range = (0.0, 0.0)


@dataclasses.dataclass(frozen=True)
class ImageAugmentRanges:
    brightness: Range = (0.0, 0.0)
    contrast: Range = (0.0, 0.0)
    saturation: Range = (0.0, 0.0)
    hue: Range = (0.0, 0.0)
    noise: Range = (0.0, 0.0)
    motion_blur: Range = (0.0, 0.0)
    jpeg_quality: Range | None = None  # None: --jpeg_quality


@dataclasses.dataclass(frozen=True)
class ObjectAugment:
    """One object's draw. Identity values mean "not augmented"."""

    angle: float = 0.0
    flip_h: bool = False
    flip_v: bool = False
    perspective: tuple[float, ...] = ()  # 8 corner shifts (fractions of the object size), or ()
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    blur: float = 0.0

    @property
    def is_geometric(self) -> bool:
        return bool(self.angle or self.flip_h or self.flip_v or self.perspective)


@dataclasses.dataclass(frozen=True)
class ImageAugment:
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    noise: float = 0.0
    motion_blur: int = 0
    motion_angle: float = 0.0
    noise_seed: int = 0
    jpeg_quality: int | None = None


def parse_ranges(text: str, kind: str):
    """``--object_augment`` / ``--image_augment`` text to ranges; ValueError names the bad part."""
    keys = OBJECT_KEYS if kind == "object" else IMAGE_KEYS
    values: dict = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in keys:
            raise ValueError(f"--{kind}_augment: {item!r} is not key=value with a key among "
                             f"{', '.join(keys)}")
        if key == "flip":
            if not value or set(value) - set("hv"):
                raise ValueError(f"--{kind}_augment: flip takes h, v or hv, got {value!r}")
            values[key] = "".join(sorted(set(value)))
            continue
        values[key] = _range(kind, key, value)
    if kind == "image" and "jpeg_quality" in values:
        lo, hi = values["jpeg_quality"]
        if not 1 <= lo <= hi <= 100:
            raise ValueError(f"--image_augment: jpeg_quality must lie in [1, 100], got {lo}:{hi}")
    return (ObjectAugmentRanges if kind == "object" else ImageAugmentRanges)(**values)


def _range(kind: str, key: str, value: str) -> Range:
    try:
        parts = [float(v) for v in value.split(":")]
    except ValueError:
        raise ValueError(f"--{kind}_augment: {key}={value!r} is not a number or lo:hi") from None
    if len(parts) == 1:
        parts = [-abs(parts[0]), abs(parts[0])] if key in _SIGNED else [0.0, parts[0]]
    if len(parts) != 2 or parts[0] > parts[1]:
        raise ValueError(f"--{kind}_augment: {key}={value!r} must be v or lo:hi with lo <= hi")
    if key not in _SIGNED and parts[0] < 0:
        raise ValueError(f"--{kind}_augment: {key} cannot be negative, got {value!r}")
    if key in ("contrast", "saturation") and parts[0] <= -1:
        raise ValueError(f"--{kind}_augment: {key} must stay above -1, got {value!r}")
    return parts[0], parts[1]


def _draw(rng: np.random.Generator, span: Range) -> float:
    return float(rng.uniform(*span)) if span[0] != span[1] else float(span[0])


def draw_object(rng: np.random.Generator, ranges: ObjectAugmentRanges, may_flip: bool) -> ObjectAugment:
    """One object's augmentation (always the same number of draws, so streams stay aligned)."""
    flips = rng.random(2) < 0.5
    corners = rng.uniform(-1.0, 1.0, 8)
    extent = _draw(rng, ranges.perspective)
    return ObjectAugment(
        angle=_draw(rng, ranges.rotate),
        flip_h=bool(may_flip and "h" in ranges.flip and flips[0]),
        flip_v=bool(may_flip and "v" in ranges.flip and flips[1]),
        perspective=tuple(float(c) * extent for c in corners) if extent else (),
        brightness=_draw(rng, ranges.brightness), contrast=_draw(rng, ranges.contrast),
        saturation=_draw(rng, ranges.saturation), hue=_draw(rng, ranges.hue),
        blur=_draw(rng, ranges.blur))


def draw_image(rng: np.random.Generator, ranges: ImageAugmentRanges) -> ImageAugment:
    """One image's augmentation; its ``jpeg_quality`` is None (``--jpeg_quality``) unless
    ``ranges`` has a ``jpeg_quality`` range."""
    quality = None if ranges.jpeg_quality is None else int(round(_draw(rng, ranges.jpeg_quality)))
    return ImageAugment(
        brightness=_draw(rng, ranges.brightness), contrast=_draw(rng, ranges.contrast),
        saturation=_draw(rng, ranges.saturation), hue=_draw(rng, ranges.hue),
        noise=_draw(rng, ranges.noise), motion_blur=int(round(_draw(rng, ranges.motion_blur))),
        motion_angle=float(rng.uniform(0.0, 180.0)), noise_seed=int(rng.integers(2**31)),
        jpeg_quality=quality)


def adjust_colours(pixels: np.ndarray, brightness: float, contrast: float, saturation: float,
                   hue: float) -> np.ndarray:
    """RGB uint8 -> RGB uint8 with brightness (fraction of 255 added), contrast (relative, around
    the mean), saturation (relative) and hue (degrees) changed; the input is returned untouched
    when every amount is zero."""
    if not (brightness or contrast or saturation or hue):
        return pixels
    out = pixels.astype(np.float32)
    if saturation or hue:
        hsv = cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + hue * 256.0 / 360.0) % 256.0
        hsv[..., 1] = np.clip(hsv[..., 1] * (1.0 + saturation), 0, 255)
        out = cv2.cvtColor(np.round(hsv).astype(np.uint8), cv2.COLOR_HSV2RGB_FULL).astype(np.float32)
    if contrast:
        out = (out - out.mean()) * (1.0 + contrast) + out.mean()
    if brightness:
        out = out + brightness * 255.0
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def augment_object_pixels(pixels: np.ndarray, draw: ObjectAugment) -> np.ndarray:
    """Colour and blur of one object's pixels (geometry is `spatule_synth.core.transform`'s job)."""
    out = adjust_colours(pixels, draw.brightness, draw.contrast, draw.saturation, draw.hue)
    if draw.blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), draw.blur)
    return out


def augment_image(canvas: np.ndarray, draw: ImageAugment) -> np.ndarray:
    """The finished canvas with the image-level augmentation applied (positions unchanged)."""
    out = adjust_colours(canvas, draw.brightness, draw.contrast, draw.saturation, draw.hue)
    if draw.motion_blur >= 2:
        length = draw.motion_blur
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0
        rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), draw.motion_angle, 1.0)
        kernel = cv2.warpAffine(kernel, rotation, (length, length))
        out = cv2.filter2D(out, -1, kernel / max(float(kernel.sum()), 1e-6),
                           borderType=cv2.BORDER_REFLECT)
    if draw.noise > 0:
        noise = stream(draw.noise_seed, "noise").normal(0.0, draw.noise, out.shape)
        out = np.clip(np.round(out + noise), 0, 255).astype(np.uint8)
    return out
