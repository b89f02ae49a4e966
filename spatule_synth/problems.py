"""Bad-input bookkeeping: every problem is named, logged once, counted, and may stop the run.

A `Problem` names the file, the object (index in its XML and class name, when it concerns one
object), the reason and what was done about it. `ProblemLog.report` logs it as a warning and counts
it; with ``on_error="fail"`` a problem whose kind is *fatal* raises `RunStopped` carrying the same
message instead. Notes (kinds that leave the data correct, like an XML ``<size>`` that disagrees
with the decoded image) are logged and counted but never stop a run.
"""

from __future__ import annotations

import collections
import dataclasses

from absl import logging

ON_ERROR_CHOICES = ("skip", "fail")

# kind -> (what it means, fatal under --on_error=fail)
KINDS: dict[str, tuple[str, bool]] = {
    "malformed_xml": ("XML that does not parse as a labelImg annotation (image skipped)", True),
    "malformed_annotation": ("annotation file (COCO JSON, YOLO txt, mask PNG) that cannot be read "
                             "(skipped)", True),
    "missing_image": ("XML whose image is missing (skipped)", True),
    "unreadable_image": ("unreadable, corrupt or truncated image (skipped)", True),
    "duplicate_stem": ("several inputs with one stem in a folder (all skipped)", True),
    "box_invalid": ("object with an inverted, zero-area or non-numeric box (dropped)", True),
    "box_outside": ("object box entirely outside its image (dropped)", True),
    "box_clipped": ("object box partly outside its image (clipped to the image)", True),
    "unknown_class": ("object whose class is not in the label map (dropped)", True),
    "mask_invalid": ("object whose mask is empty or does not fit its image (dropped)", True),
    "identity_unmatched": ("object whose file name --identity_regex does not match (skipped)", True),
    "cutout_too_large": ("object too large for the canvas (skipped)", True),
    "background_small": ("background smaller than the canvas (upscaled to cover it)", False),
    "no_xml": ("image with no XML (taken as a photo without objects)", False),
    "size_mismatch": ("XML <size> differs from the decoded image (decoded size used)", False),
    "exif_frame": ("boxes drawn on the un-rotated image (moved to the EXIF-rotated frame)", False),
    "mask_fallback": ("--mask=grabcut/model found no object in the box (the whole box is used)", False),
    "tile_lost": ("object under --tile_min_visible in every tile (in no tile's labels)", True),
    "crowd_region": ("COCO crowd region (iscrowd=1: not one object; skipped)", False),
}


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

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown problem kind {self.kind!r}")

    @property
    def fatal(self) -> bool:
        return KINDS[self.kind][1]

    def message(self) -> str:
        where = self.file
        if self.object_index is not None:
            where += f", object #{self.object_index}"
            if self.object_name is not None:
                where += f" ({self.object_name!r})"
        return f"{where}: {self.reason}"


class ProblemLog:
    """Collects problems for the end-of-run summary; stops the run under ``on_error='fail'``."""

    def __init__(self, on_error: str = "skip") -> None:
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        self.on_error = on_error
        self.problems: list[Problem] = []

    def report(self, problem: Problem) -> None:
        """Log and count ``problem``; raise `RunStopped` if it is fatal and the run must stop."""
        self.problems.append(problem)
        if problem.fatal and self.on_error == "fail":
            raise RunStopped(f"{problem.message()} (stopped by --on_error=fail)")
        logging.warning("%s", problem.message())

    def counts(self) -> dict[str, int]:
        """Number of problems per kind, in the order of `KINDS`."""
        counted = collections.Counter(p.kind for p in self.problems)
        return {kind: counted[kind] for kind in KINDS if counted[kind]}

    def summary_lines(self) -> list[str]:
        """One line per kind that occurred: count and meaning."""
        return [f"{n:6d}  {KINDS[kind][0]}" for kind, n in self.counts().items()]

    def as_json(self) -> list[dict]:
        """Every problem, for the manifest."""
        return [dataclasses.asdict(p) | {"message": p.message()} for p in self.problems]
