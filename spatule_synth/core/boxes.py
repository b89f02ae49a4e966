"""The one box convention of spatule_synth, and its conversions at the format edges.

Convention (used everywhere inside the package):

* A `Box` holds ``xmin, ymin, xmax, ymax`` as floats in **pixel-edge coordinates** of the image it
  belongs to: the origin is the top-left corner of the top-left pixel, x grows to the right, y grows
  down. An object covering pixel columns ``c0..c1`` (inclusive) and rows ``r0..r1`` has the box
  ``(c0, r0, c1 + 1, r1 + 1)``; a box covering the whole image is ``(0, 0, width, height)``.
* This is the frame the TF Object Detection API assumes: its ``create_pascal_tf_record.py`` divides
  the VOC coordinates by the image size with no offset, and labelImg draws the rectangle on those
  edges. So the VOC integers we write are the same numbers (``voc_ints``), and the TFRecord floats are
  these numbers divided by the image size (``normalized``).
* Boxes are validated on construction: finite coordinates, ``xmin < xmax`` and ``ymin < ymax``.
  Whether a box fits an image is a separate question (``clipped_to``), because the image size is
  only known once the image has been decoded.
"""

from __future__ import annotations

import dataclasses
import math
import numbers


class BoxError(ValueError):
    """A box whose coordinates cannot describe a region (not finite, inverted or zero-area)."""


@dataclasses.dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel-edge coordinates (see the module docstring)."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float

    def __post_init__(self) -> None:
        values = (self.xmin, self.ymin, self.xmax, self.ymax)
        if not all(isinstance(v, numbers.Real) and math.isfinite(v) for v in values):
            raise BoxError(f"coordinates must be finite numbers, got {self._describe()}")
        for name, value in zip(("xmin", "ymin", "xmax", "ymax"), values):
            object.__setattr__(self, name, float(value))  # numpy scalars included
        if self.xmax <= self.xmin or self.ymax <= self.ymin:
            kind = "zero-area" if self.xmax == self.xmin or self.ymax == self.ymin else "inverted"
            raise BoxError(f"{kind} box ({self._describe()})")

    def _describe(self) -> str:
        return (f"xmin={_fmt(self.xmin)} ymin={_fmt(self.ymin)} "
                f"xmax={_fmt(self.xmax)} ymax={_fmt(self.ymax)}")

    def __str__(self) -> str:
        return self._describe()

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin

    @property
    def area(self) -> float:
        return self.width * self.height

    def is_inside(self, width: int, height: int) -> bool:
        """True when the box lies within an image of ``width`` x ``height`` pixels."""
        return self.xmin >= 0 and self.ymin >= 0 and self.xmax <= width and self.ymax <= height

    def clipped_to(self, width: int, height: int) -> Box | None:
        """The part of the box inside a ``width`` x ``height`` image, or None if nothing is left."""
        xmin, ymin = max(self.xmin, 0.0), max(self.ymin, 0.0)
        xmax, ymax = min(self.xmax, float(width)), min(self.ymax, float(height))
        if xmax <= xmin or ymax <= ymin:
            return None
        return Box(xmin, ymin, xmax, ymax)

    def voc_ints(self) -> tuple[int, int, int, int]:
        """Integer VOC coordinates, rounded outwards so the box never loses a pasted pixel."""
        return (math.floor(self.xmin), math.floor(self.ymin),
                math.ceil(self.xmax), math.ceil(self.ymax))

    def normalized(self, width: int, height: int) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` divided by the image size: the TFRecord convention."""
        return (self.xmin / width, self.ymin / height, self.xmax / width, self.ymax / height)

    @classmethod
    def from_normalized(cls, xmin: float, ymin: float, xmax: float, ymax: float,
                        width: int, height: int) -> Box:
        """Inverse of `normalized`."""
        return cls(xmin * width, ymin * height, xmax * width, ymax * height)


def _fmt(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
