"""``convert --split_from=RUN``: evaluate a generated run on real photos without a leak.

A detector trained on a generate run has seen every train identity (a tag and its characters) and
every train background photo. To measure it on *real* photos, keep only the photos that show
nothing of train; `RunSplit.decide` tells, for one validated photo, whether to keep it and why:

* dropped: the photo is (by content: SHA-256 of its bytes, whatever its name) the source of a train
  cutout, or a train background of the run;
* dropped (``--identity=regex`` runs): its file name gives an identity that went to train;
* dropped (``--identity=auto`` runs): one of its objects looks like a train cutout (the
  near-duplicate test of `spatule_synth.generate.near_duplicates`, as the run grouped its own cutouts);
* kept: the source of eval cutouts only, an eval background, or a photo the run never saw that
  matches no train identity by content, name or (auto) look.

Identities are computed as the run computed them (its manifest's ``identity`` and
``identity_regex``), so the rule holds for exactly the identities the run split.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import numpy as np

from spatule_synth.core import storage
from spatule_synth.generate.identities import content_key
from spatule_synth.formats.manifest import MANIFEST_NAME
from spatule_synth.generate.split import SplitError
from spatule_synth.core.validation import ValidPhoto


class SplitFromError(SplitError):
    """The run given to --split_from cannot be read as a finished generate run."""


KINDS = {  # decision kind -> what the summary says
    "eval_source": "the source of eval cutouts",
    "eval_background": "an eval background photo",
    "unseen": "not in the run, and like no train cutout by content or name",
    "train_source": "the source of train cutouts",
    "train_background": "a train background photo",
    "train_name": "an identity from its file name that went to train",
    "train_look": "an object that looks like a train cutout",
}


@dataclasses.dataclass(frozen=True)
class Decision:
    keep: bool
    kind: str  # a key of KINDS
    reason: str  # the kind, with the file or cutout that decided it


@dataclasses.dataclass
class CutoutPrints:
    """Near-duplicate fingerprints of one split's cutouts, re-cut from their source photos."""

    prints: list[tuple[str, object]]  # (cutout id, fingerprint)
    missing: list[str]  # source photos that are gone or unreadable


def cutout_prints(sources: dict[str, dict]) -> CutoutPrints:
    """Fingerprints of the cutouts of a manifest's ``cutout_sources`` (file + box each). One source
    photo is held decoded at a time (a run lists the cutouts of a photo together; a photo listed
    again later is read again)."""
    from spatule_synth.core.images import ImageReadError, read_image
    from spatule_synth.generate.near_duplicates import fingerprint
    missing: set[str] = set()
    photo: str | None = None
    pixels: np.ndarray | None = None
    prints = []
    for cutout_id, source in sources.items():
        if source["file"] in missing or "origin" in source:  # rendered or generated: no photo
            continue
        if source["file"] != photo:
            photo, pixels = source["file"], None  # the previous photo goes before the next is read
            try:
                pixels = read_image(photo).pixels
            except ImageReadError:
                missing.add(photo)
                continue
        x0, y0, x1, y1 = source["box"]
        prints.append((cutout_id, fingerprint(pixels[y0:y1, x0:x1])))
    return CutoutPrints(prints, sorted(missing))


def _contents(files) -> dict[str, str]:
    """Content key -> file, for the run's files that exist (train files must: `read_run_split`)."""
    found = {}
    for path in files:
        if storage.is_file(path):
            found[content_key(path)] = path
    return found


@dataclasses.dataclass
class RunSplit:
    """What a generate run put in train and eval (see the module docstring)."""

    run: str
    identity: str
    identity_regex: str
    train_photos: dict[str, str]  # content key -> file: sources of train cutouts
    eval_photos: dict[str, str]
    train_backgrounds: dict[str, str]
    eval_backgrounds: dict[str, str]
    train_names: frozenset[str]  # regex runs: identities from the train file names
    train_sources: dict[str, dict]  # cutout id -> {file, box, identity}: for the auto look test
    _train_prints: CutoutPrints | None = None

    def decide(self, photo: ValidPhoto) -> Decision:
        path = photo.image_path
        content = content_key(path)
        if content in self.train_photos:
            return Decision(False, "train_source", "the source of train cutouts of the run "
                                   f"({self.train_photos[content]})")
        if content in self.train_backgrounds:
            return Decision(False, "train_background", "a train background photo of the run "
                                   f"({self.train_backgrounds[content]})")
        if self.identity == "regex":
            match = re.search(self.identity_regex, os.path.basename(path))
            name = (match.group(1) if match.re.groups else match.group(0)) if match else None
            if name and name in self.train_names:
                return Decision(False, "train_name",
                                f"its identity {name!r} (from --identity_regex) went to train")
        if content in self.eval_photos:
            return Decision(True, "eval_source", "the source of eval cutouts of the run")
        if self.identity == "auto" and photo.objects:
            look = self._looks_like_train(photo)
            if look is not None:
                return Decision(False, "train_look", look)
        if content in self.eval_backgrounds:
            return Decision(True, "eval_background", "an eval background photo of the run")
        return Decision(True, "unseen", KINDS["unseen"])

    def _looks_like_train(self, photo: ValidPhoto) -> str | None:
        from spatule_synth.generate.near_duplicates import NEAR_DUPLICATE_THRESHOLD, distance, fingerprint
        if self._train_prints is None:
            self._train_prints = cutout_prints(self.train_sources)
        for obj in photo.objects:
            x0, y0, x1, y1 = obj.box.voc_ints()
            mine = fingerprint(photo.image.pixels[y0:y1, x0:x1])
            closest = min(((distance(mine, theirs), cutout_id)
                           for cutout_id, theirs in self._train_prints.prints), default=None)
            if closest is not None and closest[0] <= NEAR_DUPLICATE_THRESHOLD:
                return (f"object #{obj.object_index} looks like train cutout {closest[1]} of the run "
                        f"(distance {closest[0]:.2f} <= {NEAR_DUPLICATE_THRESHOLD}: the same object "
                        "photographed again)")
        return None


def read_run_split(path: str) -> RunSplit:
    """The split of the generate run at ``path`` (its directory or its manifest.json)."""
    manifest_path = storage.join(path, MANIFEST_NAME) if storage.is_dir(path) else path
    try:
        manifest = json.loads(storage.read_bytes(manifest_path).decode("utf-8"))
    except (OSError, ValueError) as error:
        raise SplitFromError(f"--split_from={path}: cannot read {manifest_path} ({error}); give the "
                             "output directory (or manifest.json) of a finished generate run") from error
    if manifest.get("mode") != "generate" or "splits" not in manifest:
        raise SplitFromError(f"--split_from={path}: {manifest_path} is not the manifest of a "
                             f"generate run (mode {manifest.get('mode')!r})")
    config, splits = manifest.get("config", {}), manifest["splits"]
    sources = {split: splits.get(split, {}).get("cutout_sources", {}) for split in ("train", "eval")}
    backgrounds = {split: splits.get(split, {}).get("backgrounds", []) for split in ("train", "eval")}
    train_files = {s["file"] for s in sources["train"].values() if "origin" not in s}
    gone = sorted(p for p in train_files | set(backgrounds["train"]) if not storage.is_file(p))
    if gone:
        raise SplitFromError(f"--split_from={path}: {len(gone)} train photos of that run are not where "
                             f"its manifest says (e.g. {gone[0]}); without them no photo can be "
                             "recognised as train by its content. Run convert where the run's "
                             "inputs are")
    regex = config.get("identity_regex") or ""
    names = set()
    if config.get("identity") == "regex":
        names = {s["identity"] for s in sources["train"].values()}
        for file in train_files:
            match = re.search(regex, os.path.basename(file))
            if match:
                names.add((match.group(1) if match.re.groups else match.group(0)))
    return RunSplit(
        run=os.path.dirname(storage.absolute(manifest_path)), identity=config.get("identity", "image"),
        identity_regex=regex, train_photos=_contents(train_files),
        eval_photos=_contents({s["file"] for s in sources["eval"].values() if "origin" not in s}),
        train_backgrounds=_contents(backgrounds["train"]), eval_backgrounds=_contents(backgrounds["eval"]),
        train_names=frozenset(names), train_sources=sources["train"])
