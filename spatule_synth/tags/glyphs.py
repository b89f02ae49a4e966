"""The characters of a tag code as ink masks (float32, 1 = ink), from one of three sources:

* Pillow's bundled font (the default: no file needed);
* a TrueType/OpenType file (``--tag_font``);
* a **glyph sheet** (``--tag_glyph_sheet``): one image of the alphabet's characters in a row,
  dark on light, in ``--tag_alphabet`` order. It is cut into glyphs by its columns: ink columns
  (Otsu threshold) separated by ink-free columns make one glyph each; every glyph keeps the full
  height of the sheet's ink band, so the characters keep their relative heights and baseline.

`GlyphSource.line` draws a code as one line of text; `GlyphSource.cell` draws one character
centred in a cell (for codes stacked character under character).
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from spatule_synth.core.images import ImageReadError, read_image

PAD = 2  # ink-free pixels around a drawn line or cell
CAP_HEIGHT = 0.72  # cap height of a glyph sheet character, in font sizes (as Pillow's fonts)
SHEET_SPACING = 0.12  # gap between two glyph sheet characters, in cap heights


class GlyphSourceError(ValueError):
    """A font or glyph sheet that cannot draw the codes; the message says why."""


class GlyphSource:
    """Draws characters at a font size in pixels (see the module docstring)."""

    def line(self, text: str, size: float) -> np.ndarray:
        raise NotImplementedError

    def cell(self, char: str, size: float, width: int) -> np.ndarray:
        raise NotImplementedError


class FontGlyphs(GlyphSource):
    """Pillow's bundled font (``path`` None) or a TrueType/OpenType file."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        if path is not None:
            try:
                ImageFont.truetype(path, size=12)
            except OSError as error:
                raise GlyphSourceError(f"{path}: not a font Pillow can read ({error})") from None

    def _font(self, size: float) -> ImageFont.FreeTypeFont:
        if self.path is None:
            return ImageFont.load_default(size=size)
        return ImageFont.truetype(self.path, size=size)

    def line(self, text: str, size: float) -> np.ndarray:
        font = self._font(size)
        left, top, right, bottom = font.getbbox(text)
        image = Image.new("L", (right - left + 2 * PAD, bottom - top + 2 * PAD), 0)
        ImageDraw.Draw(image).text((PAD - left, PAD - top), text, fill=255, font=font)
        return np.asarray(image, np.float32) / 255.0

    def cell(self, char: str, size: float, width: int) -> np.ndarray:
        font = self._font(size)
        left, top, right, bottom = font.getbbox(char)
        image = Image.new("L", (width, bottom - top + 2 * PAD), 0)
        x = (image.width - (right - left)) // 2 - left
        ImageDraw.Draw(image).text((x, PAD - top), char, fill=255, font=font)
        return np.asarray(image, np.float32) / 255.0


class SheetGlyphs(GlyphSource):
    """Characters cut from a glyph sheet (`cut_glyph_sheet`)."""

    def __init__(self, glyphs: dict[str, np.ndarray]) -> None:
        self.glyphs = glyphs
        self.height = max(g.shape[0] for g in glyphs.values())

    @classmethod
    def from_file(cls, path: str, alphabet: str) -> "SheetGlyphs":
        try:
            pixels = read_image(path).pixels
        except ImageReadError as error:
            raise GlyphSourceError(f"{path}: {error}") from None
        return cls(dict(zip(alphabet, cut_glyph_sheet(pixels, alphabet, os.path.basename(path)))))

    def _glyph(self, char: str, size: float) -> np.ndarray:
        if char not in self.glyphs:
            raise GlyphSourceError(f"the glyph sheet has no character {char!r}")
        glyph = self.glyphs[char]
        scale = CAP_HEIGHT * size / self.height
        width = max(1, round(glyph.shape[1] * scale))
        height = max(1, round(glyph.shape[0] * scale))
        return cv2.resize(glyph, (width, height), interpolation=cv2.INTER_AREA)

    def line(self, text: str, size: float) -> np.ndarray:
        glyphs = [self._glyph(char, size) for char in text]
        gap = np.zeros((glyphs[0].shape[0], max(1, round(SHEET_SPACING * CAP_HEIGHT * size))), np.float32)
        row = np.concatenate([part for glyph in glyphs for part in (glyph, gap)][:-1], axis=1)
        return np.pad(row, PAD)

    def cell(self, char: str, size: float, width: int) -> np.ndarray:
        glyph = self._glyph(char, size)[:, :width]
        out = np.zeros((glyph.shape[0] + 2 * PAD, width), np.float32)
        x = (width - glyph.shape[1]) // 2
        out[PAD:PAD + glyph.shape[0], x:x + glyph.shape[1]] = glyph
        return out


def cut_glyph_sheet(pixels: np.ndarray, alphabet: str, name: str = "glyph sheet") -> list[np.ndarray]:
    """The glyphs of a sheet (RGB uint8: characters in a row, dark on light) in reading order,
    as float32 ink masks sharing the ink band's height; `GlyphSourceError` unless there are
    exactly ``len(alphabet)`` of them."""
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    _, ink = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    ink = ink > 0
    rows = np.flatnonzero(ink.any(axis=1))
    if not rows.size or ink.mean() > 0.5:
        raise GlyphSourceError(f"{name}: no dark characters on a light background")
    columns = ink.any(axis=0).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], columns, [0]])))
    runs = list(zip(edges[::2], edges[1::2]))
    weights = [int(ink[:, a:b].sum()) for a, b in runs]
    largest = max(weights)
    runs = [run for run, weight in zip(runs, weights) if weight >= 0.01 * largest]  # specks
    if len(runs) != len(alphabet):
        raise GlyphSourceError(
            f"{name}: found {len(runs)} characters (runs of ink columns separated by blank columns), "
            f"but the alphabet {alphabet!r} has {len(alphabet)}; draw the characters in one row, "
            "in alphabet order, with a blank column between any two")
    paper, dark = float(np.median(gray[~ink])), float(np.median(gray[ink]))
    ink_level = np.clip((paper - gray.astype(np.float32)) / max(paper - dark, 1.0), 0.0, 1.0)
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    return [np.ascontiguousarray(ink_level[top:bottom, a:b]) for a, b in runs]


def glyph_source(font: str = "", sheet: str = "", alphabet: str = "") -> GlyphSource:
    """The glyph source of the flags: a sheet, a font file, or Pillow's bundled font."""
    if sheet:
        return SheetGlyphs.from_file(sheet, alphabet)
    return FontGlyphs(font or None)
