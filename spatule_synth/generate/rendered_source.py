"""Rendered tags as cutouts (``--rendered_tags=N``): N distinct codes, each drawn once.

Codes are ``tag_length`` characters of ``tag_alphabet``, drawn from the ``tag_codes`` stream of
the seed (`spatule_synth.generate.random_streams`); tag ``i`` is drawn from the ``rendered_tag``
stream of ``i`` (`spatule_synth.tags.render.render_tag`), so the pool is the same for any number
of workers. Each tag's identity is its code: the split (`spatule_synth.generate.split`) sends
each code to one side, so **no code is in both train and eval**, and a rendered code equal to a
real tag's ``--identity=regex`` name is that tag's identity, on its side.

Without ``width`` in ``--tag_style`` the rendered tags take the size of the real cutouts of
``tag_class``, the tags the detector will face: 16 trial tags (diameter 30 px, the run's style)
give the ratio of a rendered box's size (the square root of its area) to the ring's diameter,
and the diameters span the real boxes' sizes divided by that ratio. Without real tags,
`DEFAULT_WIDTH`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from spatule_synth.core.boxes import Box
from spatule_synth.core.config import InputsConfig
from spatule_synth.core.transform import CUTOUT_MARGIN
from spatule_synth.formats.label_map import LabelMap
from spatule_synth.generate.cutouts import Cutout, CutoutPart
from spatule_synth.generate.random_streams import stream
from spatule_synth.tags.glyphs import GlyphSource, glyph_source
from spatule_synth.tags.render import DEFAULT_WIDTH, TagStyle, parse_colours, render_tag

RENDERED_PREFIX = "rendered:"  # cutout ids and source files of rendered tags


class RenderedTagsError(ValueError):
    """The rendered tags cannot be made as asked; the message names the setting."""


def draw_codes(count: int, alphabet: str, length: int, seed: int) -> list[str]:
    """``count`` distinct codes, in drawing order."""
    rng = stream(seed, "tag_codes")
    codes: dict[str, None] = {}
    while len(codes) < count:
        codes.setdefault("".join(alphabet[int(i)] for i in rng.integers(len(alphabet), size=length)))
    return list(codes)


TRIAL_TAGS = 16
TRIAL_DIAMETER = 30.0


def ring_widths(real: list[Cutout], class_name: str, box_per_diameter: Callable[[], float]
                ) -> tuple[float, float] | None:
    """Ring diameters whose boxes span the sizes of the real ``class_name`` cutouts (module
    docstring); None without any. ``box_per_diameter`` is called only when there are real tags."""
    sizes = [math.sqrt(c.object_box.width * c.object_box.height) for c in real
             if c.class_name == class_name]
    if not sizes:
        return None
    ratio = box_per_diameter()
    return max(6.0, min(sizes) / ratio), max(6.0, max(sizes) / ratio)


def _box_per_diameter(glyphs: GlyphSource, style: TagStyle, colours, code: str, seed: int) -> float:
    """The median ratio of a rendered tag's box size (square root of its area) to its diameter."""
    trial = dataclasses.replace(style, width=(TRIAL_DIAMETER, TRIAL_DIAMETER))
    ratios = []
    for index in range(TRIAL_TAGS):
        tag = render_tag(stream(seed, "tag_size_trial", index), code, glyphs, trial, colours)
        ys, xs = np.nonzero(tag.mask)
        ratios.append(math.sqrt((np.ptp(xs) + 1) * (np.ptp(ys) + 1)) / TRIAL_DIAMETER)
    return float(np.median(ratios))


def rendered_cutouts(inputs: InputsConfig, label_map: LabelMap, seed: int,
                     real: list[Cutout]) -> list[Cutout]:
    """The ``inputs.rendered_tags`` rendered tags as cutouts (module docstring)."""
    if not inputs.rendered_tags:
        return []
    class_id = label_map.id_of(inputs.tag_class)
    if class_id is None:
        raise RenderedTagsError(f"--tag_class={inputs.tag_class!r} is not a class of the label map "
                                f"({', '.join(label_map.names)}); rendered tags need one")
    try:
        glyphs = glyph_source(inputs.tag_font, inputs.tag_glyph_sheet, inputs.tag_alphabet)
    except ValueError as error:
        raise RenderedTagsError(str(error)) from None
    style, colours = inputs.tag_style, parse_colours(inputs.tag_colours)
    codes = draw_codes(inputs.rendered_tags, inputs.tag_alphabet, inputs.tag_length, seed)
    if style.width is None:
        widths = ring_widths(real, inputs.tag_class,
                             lambda: _box_per_diameter(glyphs, style, colours, codes[0], seed))
        style = dataclasses.replace(style, width=widths or DEFAULT_WIDTH)
    cutouts = []
    for index, code in enumerate(codes):
        tag = render_tag(stream(seed, "rendered_tag", index), code, glyphs, style, colours)
        ys, xs = np.nonzero(tag.mask)
        box = Box(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        height, width = tag.mask.shape
        if min(box.xmin, box.ymin, width - box.xmax, height - box.ymax) < CUTOUT_MARGIN:
            raise RenderedTagsError(f"rendered tag {code}: less than {CUTOUT_MARGIN} px of context")
        name = f"{RENDERED_PREFIX}{code}"
        cutouts.append(Cutout(name, code, tag.pixels, tag.mask, box,
                              (CutoutPart(inputs.tag_class, class_id, tag.mask, 0),), name,
                              origin="rendered", code=code, code_class=inputs.tag_class,
                              upright_turns=tag.upright_turns))
    return cutouts


def contact_sheet(cutouts: list[Cutout], columns: int = 12, cell: int = 96) -> np.ndarray:
    """Rendered tags side by side (pixels above, mask below), for the README and the report."""
    import cv2
    rows = []
    for start in range(0, len(cutouts), columns):
        row = []
        for cutout in cutouts[start:start + columns]:
            tile = np.full((2 * cell, cell, 3), 255, np.uint8)
            scale = min(1.0, (cell - 4) / max(cutout.pixels.shape[:2]))
            size = (max(1, round(cutout.pixels.shape[1] * scale)), max(1, round(cutout.pixels.shape[0] * scale)))
            pixels = cv2.resize(cutout.pixels, size, interpolation=cv2.INTER_AREA)
            mask = cv2.resize(cutout.alpha, size, interpolation=cv2.INTER_NEAREST)
            tile[2:2 + size[1], 2:2 + size[0]] = pixels
            tile[cell + 2:cell + 2 + size[1], 2:2 + size[0]] = mask[..., None]
            row.append(tile)
        row += [np.full((2 * cell, cell, 3), 255, np.uint8)] * (columns - len(row))
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)
