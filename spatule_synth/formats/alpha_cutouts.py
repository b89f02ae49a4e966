"""Folders of cutouts with transparency: one object per image, its alpha channel is its mask.

Layout: ``ROOT/CLASS_NAME/*.png`` (or WebP, TIFF, GIF: any image with an alpha channel or a
transparent colour). The class is the name of the folder directly under ``ROOT``; deeper folders
are searched too and keep that class (``ROOT/bird/session1/x.png`` is a ``bird``). Hidden files and
folders (name starting with ``.``) and files that are not images are ignored; everything is
sorted, so the order is the same on every machine.

Each file gives an `AnnotatedImage` whose ``image_path`` and ``annotation_path`` are the file and
whose one object (``object_index`` 0) has, as built by `tight_masked_object` from the alpha:

* ``box``: the tight bounds of the pixels with alpha >= 128 (`MASK_THRESHOLD`);
* ``mask``: the alpha inside that box, soft values kept (anti-aliased edges); the faint fringe
  (alpha < 128) beyond the box is left out.

The alpha is taken after the EXIF orientation, as `spatule_synth.core.images.read_image` decodes the
pixels. The same reader serves distractor folders (the caller ignores the classes): with
``allow_flat=True`` images directly in ``ROOT`` are read too, with the folder name of ``ROOT`` as
class.

Problems (reported, file skipped): an image directly in ``ROOT`` (without ``allow_flat``) is
``malformed_annotation``; an image that cannot be decoded is ``unreadable_image``; an image without
alpha, with alpha transparent everywhere (no pixel >= 128), or opaque everywhere (no pixel < 128:
a photo saved with an alpha channel, not a cutout; pasting it would paste a rectangle) is
``mask_invalid``.
"""

from __future__ import annotations

import os
import struct
import warnings
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps

from spatule_synth.core.annotations import MASK_THRESHOLD, AnnotatedImage, tight_masked_object
from spatule_synth.core.images import is_image_file
from spatule_synth.formats.labelimg import InputDirError
from spatule_synth.core.problems import Problem, ProblemLog
from spatule_synth.core import storage

ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


class _CutoutError(ValueError):
    """A file that is not a usable cutout; ``kind`` is the problem kind, the message the reason."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


def read_alpha_cutouts(root: str, problems: ProblemLog, allow_flat: bool = False) -> list[AnnotatedImage]:
    """Every cutout under ``root`` (see the module docstring), in sorted path order."""
    if not storage.is_dir(root):
        raise InputDirError(f"cutout folder {root} does not exist or is not a folder")
    cutouts = []
    for path, class_name in _candidates(root, allow_flat, problems):
        try:
            alpha = read_alpha(path)
        except _CutoutError as error:
            problems.report(Problem(error.kind, path, f"{error}; skipped", 0, class_name))
            continue
        obj = tight_masked_object(class_name, alpha, 0)
        assert obj is not None  # read_alpha refuses fully transparent images
        cutouts.append(AnnotatedImage(path, path, (obj,), is_cutout_file=True))
    return cutouts


def _candidates(root: str, allow_flat: bool, problems: ProblemLog) -> Iterator[tuple[str, str]]:
    """``(image path, class name)`` of every image under ``root``, sorted."""
    root_class = os.path.basename(storage.canonical(root))
    files, folders = storage.list_folder(root)
    for path in sorted(files + folders, key=os.path.basename):
        name = os.path.basename(path)
        if name.startswith("."):
            continue
        if path in folders:
            yield from ((file, name) for file in _images_below(path))
        elif is_image_file(path) and allow_flat:
            yield path, root_class
        elif is_image_file(path):
            problems.report(Problem("malformed_annotation", path, "cutout directly in "
                                    f"{root}: put cutouts in a folder named after their class "
                                    f"({storage.join(root, 'CLASS_NAME', name)}); skipped"))


def _images_below(folder: str) -> list[str]:
    """Image files in ``folder`` and its sub-folders (hidden ones left out), sorted by path."""
    files, folders = storage.list_folder(folder)
    found = [path for path in files if is_image_file(path)]
    for below in folders:
        if not os.path.basename(below).startswith("."):
            found.extend(_images_below(below))
    return sorted(found)


def read_alpha(path: str) -> np.ndarray:
    """The alpha channel of an image, ``(height, width) uint8``, in the EXIF-rotated frame.

    `_CutoutError` if it cannot be decoded, has no alpha, or its alpha is transparent or opaque
    everywhere.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(storage.pillow_source(path)) as image:
                image.load()
                if image.mode not in ALPHA_MODES and "transparency" not in image.info:
                    raise _CutoutError("mask_invalid", f"{image.format or 'image'} in mode {image.mode} "
                                       "has no alpha channel; save the cutout as a PNG with transparency")
                alpha = np.array(ImageOps.exif_transpose(image).convert("RGBA"))[..., 3]
    except _CutoutError:
        raise
    except (OSError, SyntaxError, ValueError, TypeError, struct.error,
            Image.DecompressionBombError) as error:
        raise _CutoutError("unreadable_image", f"cannot decode image: {error}") from error
    if alpha.max() < MASK_THRESHOLD:
        raise _CutoutError("mask_invalid", f"alpha channel is transparent everywhere (no pixel with "
                           f"alpha >= {MASK_THRESHOLD})")
    if alpha.min() >= MASK_THRESHOLD:
        raise _CutoutError("mask_invalid", "alpha channel is opaque everywhere: a photo, not a cutout "
                           "(remove its background first)")
    return np.ascontiguousarray(alpha)
