"""Bad-input bookkeeping: every problem is named, logged once, counted, and may stop the run.

A `Problem` names the file, the image it labels (when the file is an annotation file), the object
(index in the file and class name, when it concerns one object), the reason and what was done
about it. `ProblemLog.report` logs it as a warning and counts
it; with ``on_error="fail"`` a problem whose kind is *fatal* raises `RunStopped` carrying the same
message instead. Notes (kinds that leave the data correct, like an XML ``<size>`` that disagrees
with the decoded image) are logged and counted but never stop a run.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Iterable

from absl import logging

ON_ERROR_CHOICES = ("skip", "fail")

# kind -> (what it means, fatal under --on_error=fail)
KINDS: dict[str, tuple[str, bool]] = {
    "malformed_xml": ("XML that does not parse as a labelImg annotation (image skipped)", True),
    "malformed_annotation": ("annotation file (COCO JSON, YOLO txt, mask PNG) that cannot be read "
                             "(skipped)", True),
    "missing_image": ("annotation whose image is missing (skipped)", True),
    "unsupported_image": ("image in a format that cannot be read (HEIC, RAW, ...: skipped)", True),
    "unreadable_image": ("unreadable, corrupt or truncated image (skipped)", True),
    "foreign_annotation": ("image whose only annotation file is of another format than its folder "
                           "is read as (skipped)", True),
    "duplicate_stem": ("several inputs with one stem in a folder (all skipped)", True),
    "filename_mismatch": ("XML whose <filename> names another photo of the folder (skipped)", True),
    "size_conflict": ("annotation size differs from the image and the boxes do not fit it "
                      "(skipped)", True),
    "box_invalid": ("object with an inverted, zero-area or non-numeric box (dropped)", True),
    "box_outside": ("object box entirely outside its image (dropped)", True),
    "box_clipped": ("object box partly outside its image (clipped to the image)", False),
    "unknown_class": ("object whose class is not in the label map (dropped)", True),
    "mask_invalid": ("object whose mask is empty or does not fit its image (dropped)", True),
    "crowd_region": ("COCO crowd region (iscrowd=1: several objects under one label; dropped)", True),
    "image_incomplete": ("photo that lost an object's label (skipped whole: it would show an "
                         "object without a box)", True),
    "background_labelled": ("--background_dirs photo whose annotation file has objects (not a "
                            "background)", True),
    "distractor_labelled": ("distractor that shows a labelled object (class of the label map, or "
                            "also a cutout; skipped)", True),
    "identity_unmatched": ("object whose file name --identity_regex does not match (skipped)", True),
    "cutout_too_large": ("object too large for the canvas (skipped)", True),
    "background_small": ("background smaller than the canvas (upscaled to cover it)", False),
    "no_annotation": ("image with no annotation file: not labelled yet (skipped; "
                      "--unlabelled=negative takes it as object-free)", False),
    "unlabelled_negative": ("image with no annotation file, taken as object-free "
                            "(--unlabelled=negative)", False),
    "duplicate_entry": ("image listed by several entries of one COCO file (annotations merged)", False),
    "size_mismatch": ("annotation size differs from the image, boxes fit the image (kept)", False),
    "size_scaled": ("photo resized after labelling (boxes scaled by the same factor)", False),
    "exif_unknown_frame": ("EXIF-rotated photo whose annotation size cannot tell the frame of the "
                           "boxes (taken as displayed)", False),
    "exif_frame": ("boxes drawn on the un-rotated image (moved to the EXIF-rotated frame)", False),
    "duplicate_photo": ("photo given twice under other names (the same bytes: used once)", False),
    "duplicate_object": ("object exactly repeated in its photo (same class and box: kept once)", False),
    "ignored_class": ("object of an --ignore_classes class (not a label: left out)", False),
    "truncated_cutout": ("object cut by its photo's edge or marked truncated (not a cutout; "
                         "--use_truncated_cutouts)", False),
    "difficult_cutout": ("object marked difficult (not a cutout; --use_difficult_cutouts)", False),
    "mask_fallback": ("--mask=grabcut/model gave no mask that agrees with the box (the whole box is used)", False),
    "tile_lost": ("object under --tile_min_visible in every tile (in no tile's labels)", True),
}
# Problems of one kind logged one by one before the rest are only counted (and listed in the
# manifest): a folder of 2,000 photos not labelled yet gives a few lines, not 2,000.
LOGGED_PER_KIND = 5
# Files named per kind in the end-of-run summary; more are counted ("and 9 more").
LISTED_FILES = 3


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def listed_files(places: Iterable[tuple[str, str | None]]) -> str:
    """The distinct files of some problems, given as (file, image) pairs in the order reported:
    ``"a.xml, b.xml"``. A file that labels images of other names (a COCO JSON) names them:
    ``"instances.json (images lost.jpg, mixed.jpg)"``. Beyond `LISTED_FILES` files (or images of
    one file) the rest are counted: ``"a.xml, b.xml, c.xml and 9 more (all in manifest.json)"``."""
    images: dict[str, dict[str, None]] = {}
    for file, image in places:
        named = images.setdefault(file, {})
        if image is not None and _stem(image) != _stem(file):
            named[image] = None
    cut = len(images) > LISTED_FILES
    items = []
    for file, named in list(images.items())[:LISTED_FILES]:
        names = list(named)
        if names:
            text = ", ".join(names[:LISTED_FILES])
            if len(names) > LISTED_FILES:
                text += f" and {len(names) - LISTED_FILES} more"
                cut = True
            file += f" ({'image' if len(names) == 1 else 'images'} {text})"
        items.append(file)
    text = ", ".join(items)
    if len(images) > LISTED_FILES:
        text += f" and {len(images) - LISTED_FILES} more"
    return text + (" (all in manifest.json)" if cut else "")


class RunStopped(RuntimeError):
    """Raised under ``--on_error=fail`` by the first fatal problem; the message names it."""


@dataclasses.dataclass(frozen=True)
class Problem:
    """One bad input, as the user will read it."""

    kind: str
    file: str
    reason: str
    object_index: int | None = None
    object_name: str | None = None
    image: str | None = None  # the photo's file name, when ``file`` is its annotation file
    reference: str | None = None  # where the object is in its file: "annotation id 7", "line 3"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown problem kind {self.kind!r}")

    @property
    def fatal(self) -> bool:
        return KINDS[self.kind][1]

    def message(self) -> str:
        """``"photos/IMG_1.xml (image IMG_1.JPG), object #2 ('tga'): reason"``; a COCO object
        reads ``"object #0 ('dog', annotation id 17)"``, a YOLO one ``"object #0 ('tag', line 1)"``."""
        where = self.file
        if self.image is not None:
            where += f" (image {self.image})"
        if self.object_index is not None:
            where += f", object #{self.object_index}"
            details = ([repr(self.object_name)] if self.object_name is not None else []) + (
                [self.reference] if self.reference is not None else [])
            if details:
                where += f" ({', '.join(details)})"
        return f"{where}: {self.reason}"


class ProblemLog:
    """Collects problems for the end-of-run summary; stops the run under ``on_error='fail'``."""

    def __init__(self, on_error: str = "skip") -> None:
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        self.on_error = on_error
        self.problems: list[Problem] = []
        self._logged: collections.Counter = collections.Counter()

    def report(self, problem: Problem) -> None:
        """Log and count ``problem``; raise `RunStopped` if it is fatal and the run must stop.

        The first `LOGGED_PER_KIND` problems of a kind are logged; then one line says that the
        others are only counted (summary) and listed (manifest)."""
        self.problems.append(problem)
        if problem.fatal and self.on_error == "fail":
            raise RunStopped(f"{problem.message()} (stopped by --on_error=fail)")
        self._logged[problem.kind] += 1
        if self._logged[problem.kind] <= LOGGED_PER_KIND:
            logging.warning("%s", problem.message())
        if self._logged[problem.kind] == LOGGED_PER_KIND + 1:
            logging.warning("more problems of this kind (%s): counted in the summary and listed in "
                            "manifest.json, not logged one by one", KINDS[problem.kind][0])

    def counts(self) -> dict[str, int]:
        """Number of problems per kind, in the order of `KINDS`."""
        counted = collections.Counter(p.kind for p in self.problems)
        return {kind: counted[kind] for kind in KINDS if counted[kind]}

    def summary_lines(self) -> list[str]:
        """One line per kind that occurred: count, meaning and files (`listed_files`), e.g.
        ``"     1  annotation whose image is missing (skipped): photos/IMG_3.xml"``."""
        places: dict[str, list[tuple[str, str | None]]] = collections.defaultdict(list)
        for problem in self.problems:
            places[problem.kind].append((problem.file, problem.image))
        return [f"{n:6d}  {KINDS[kind][0]}: {listed_files(places[kind])}"
                for kind, n in self.counts().items()]

    def as_json(self) -> list[dict]:
        """Every problem, for the manifest."""
        return [dataclasses.asdict(p) | {"message": p.message()} for p in self.problems]
