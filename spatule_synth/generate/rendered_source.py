"""Rendered tags as cutouts (``--rendered_tags=N``): N distinct codes, each drawn once.

Codes are ``tag_length`` characters of ``tag_alphabet``, drawn from the ``tag_codes`` stream of
the seed (`spatule_synth.generate.random_streams`); tag ``i`` is drawn from the ``rendered_tag``
stream of ``i`` (`spatule_synth.tags.render.render_tag`), so the pool is the same for any number
of workers. Each tag's identity is its code: the split (`spatule_synth.generate.split`) sends
each code to one side, so **no code is in both train and eval**, and a rendered code equal to a
real tag's ``--identity=regex`` name is that tag's identity, on its side.

Without ``width`` in ``--tag_style`` the ring diameters follow the real cutouts of ``tag_class``
(the range of their boxes' short sides), so rendered tags have the size of the tags the
detector will face.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spatule_synth.core.boxes import Box
from spatule_synth.core.config import InputsConfig
from spatule_synth.core.transform import CUTOUT_MARGIN
from spatule_synth.formats.label_map import LabelMap
from spatule_synth.generate.cutouts import Cutout, CutoutPart
from spatule_synth.generate.random_streams import stream
from spatule_synth.tags.glyphs import glyph_source
from spatule_synth.tags.render import DEFAULT_WIDTH, parse_colours, render_tag

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


def ring_widths(real: list[Cutout], class_name: str) -> tuple[float, float] | None:
    """The range of the real ``class_name`` cutouts' short box sides; None without any."""
    sides = [min(c.object_box.width, c.object_box.height) for c in real
             if c.class_name == class_name]
    return (float(min(sides)), float(max(sides))) if sides else None


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
    style = inputs.tag_style
    if style.width is None:
        style = dataclasses.replace(style, width=ring_widths(real, inputs.tag_class) or DEFAULT_WIDTH)
    colours = parse_colours(inputs.tag_colours)
    cutouts = []
    for index, code in enumerate(draw_codes(inputs.rendered_tags, inputs.tag_alphabet,
                                            inputs.tag_length, seed)):
        tag = render_tag(stream(seed, "rendered_tag", index), code, glyphs, style, colours)
        ys, xs = np.nonzero(tag.mask)
        box = Box(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        height, width = tag.mask.shape
        if min(box.xmin, box.ymin, width - box.xmax, height - box.ymax) < CUTOUT_MARGIN:
            raise RenderedTagsError(f"rendered tag {code}: less than {CUTOUT_MARGIN} px of context")
        name = f"{RENDERED_PREFIX}{code}"
        cutouts.append(Cutout(name, code, tag.pixels, tag.mask, box,
                              (CutoutPart(inputs.tag_class, class_id, tag.mask, 0),), name,
                              origin="rendered", code=code, upright_turns=tag.upright_turns))
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
