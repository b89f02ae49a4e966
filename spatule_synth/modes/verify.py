"""``verify``: re-read an output directory and prove it is what the manifest says.

Checks, each counted per item and reported with the first failures by name:

* ``manifest``       manifest.json exists and parses (a directory without one is unfinished);
* ``label map``      annotations/label_map.pbtxt parses and matches the manifest's classes;
* ``records``        every shard listed exists and every example decodes, with TensorFlow's parser
                     and with the TF Model Garden's ``TfExampleDecoder`` (the OD API's reader);
* ``boxes``          every box lies in [0, 1] with min < max;
* ``classes``        every class id is in the label map, with its name as the class text;
* ``source ids``     unique over all splits, decimal (the Model Garden casts them to numbers);
* ``images``         (generate) every example's JPEG exists, decodes to the example's size, and
                     equals the example's bytes; no image on disk lacks an example;
* ``xml``            (generate) every XML parses, matches its image's size, and holds the
                     example's objects (class, box rounded outwards, truncated);
* ``split``          (generate) train and eval identities are disjoint; so are their background
                     photos, by path and by content (sha256: a copy under another name is the same
                     photo), unless the run was made with ``--share_backgrounds`` (then a note);
                     every object of an image comes from a cutout of its own split, and its
                     background from a photo of its own split;
* ``masks``          (when written) every instance mask PNG, and every mask in the records, has
                     exactly the example's objects with the example's boxes;
* ``leak audit``     (generate, source photos still on disk) cutouts of eval that look like a
                     cutout of train (`spatule_synth.generate.near_duplicates`: the same tag photographed
                     twice) are *reported*, not failed: with ``--identity=image`` they are the
                     leak ``--identity=auto`` or ``regex`` would have prevented.

`verify_output` returns a `VerifyReport`; the command prints its table (failures, then warnings and
notes) and exits 1 on any failure.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import json
import os

import numpy as np
from PIL import Image

from spatule_synth.core.annotations import mask_box
from spatule_synth.formats.label_map import LabelMap, LabelMapError, read_label_map
from spatule_synth.formats.manifest import MANIFEST_NAME
from spatule_synth.modes.split_from import cutout_prints
from spatule_synth.formats.voc import VocFormatError, read_voc

MAX_LISTED = 5
SPLITS = ("train", "eval")


@dataclasses.dataclass
class Check:
    name: str
    passed: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)  # reported, not failed
    notes: list[str] = dataclasses.field(default_factory=list)  # why a pass is a pass

    def ok(self, count: int = 1) -> None:
        self.passed += count

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def note(self, message: str) -> None:
        self.notes.append(message)


@dataclasses.dataclass
class VerifyReport:
    output_dir: str
    checks: dict[str, Check] = dataclasses.field(default_factory=dict)

    def check(self, name: str) -> Check:
        return self.checks.setdefault(name, Check(name))

    @property
    def failed(self) -> bool:
        return any(check.failures for check in self.checks.values())

    def table(self) -> str:
        width = max(len(name) for name in self.checks) if self.checks else 5
        lines = [f"verify {self.output_dir}", f"  {'check':<{width}}  {'passed':>7}  {'failed':>7}"]
        for check in self.checks.values():
            lines.append(f"  {check.name:<{width}}  {check.passed:>7}  {len(check.failures):>7}")
            lines += [f"      {message}" for message in check.failures[:MAX_LISTED]]
            if len(check.failures) > MAX_LISTED:
                lines.append(f"      ... and {len(check.failures) - MAX_LISTED} more")
            lines += [f"      warning: {message}" for message in check.warnings[:MAX_LISTED]]
            if len(check.warnings) > MAX_LISTED:
                lines.append(f"      ... and {len(check.warnings) - MAX_LISTED} more warnings")
            lines += [f"      note: {message}" for message in check.notes]
        lines.append("verify: FAILED" if self.failed else "verify: all checks passed")
        return "\n".join(lines)


def verify_output(output_dir: str) -> VerifyReport:
    """Run every check on ``output_dir``."""
    report = VerifyReport(output_dir)
    manifest = _manifest(output_dir, report.check("manifest"))
    if manifest is None:
        return report
    label_map = _label_map(output_dir, manifest, report.check("label map"))
    splits = _record_files(manifest)
    examples = _examples(output_dir, splits, report)
    _check_records(examples, label_map, report)
    if manifest.get("mode") == "generate":
        _check_images_and_xml(output_dir, examples, report)
        _check_split(manifest, report.check("split"))
        if os.path.isdir(os.path.join(output_dir, "masks")):
            _check_masks(output_dir, examples, report.check("masks"))
        _audit_leaks(manifest, report.check("leak audit"))
    return report


def _manifest(output_dir: str, check: Check) -> dict | None:
    path = os.path.join(output_dir, MANIFEST_NAME)
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        check.fail(f"{path} is missing: the run did not finish (or this is not an output directory)")
        return None
    except (OSError, ValueError) as error:
        check.fail(f"{path}: cannot be read: {error}")
        return None
    check.ok()
    return manifest


def _label_map(output_dir: str, manifest: dict, check: Check) -> LabelMap | None:
    path = os.path.join(output_dir, "annotations", "label_map.pbtxt")
    try:
        label_map = read_label_map(path)
    except LabelMapError as error:
        check.fail(str(error))
        return None
    listed = {(item["id"], item["name"]) for item in manifest.get("label_map", [])}
    if listed and listed != {(item.id, item.name) for item in label_map.items}:
        check.fail(f"{path}: classes differ from the manifest's {sorted(listed)}")
        return label_map
    check.ok()
    return label_map


def _record_files(manifest: dict) -> dict[str, list[str]]:
    if manifest.get("mode") == "convert":
        return {"records": manifest.get("records", [])}
    return {split: manifest.get("splits", {}).get(split, {}).get("records", []) for split in SPLITS}


@dataclasses.dataclass
class _Example:
    split: str
    where: str  # "annotations/train.record #12"
    record: object  # RecordImage
    decoded: dict  # Model Garden decoder output (numpy)


def _examples(output_dir: str, splits: dict[str, list[str]], report: VerifyReport) -> list[_Example]:
    """Every example of every shard, parsed twice (our reader and the Model Garden decoder)."""
    import tensorflow as tf
    from official.vision.dataloaders.tf_example_decoder import TfExampleDecoder

    from spatule_synth.formats.tfrecord import from_example

    check = report.check("records")
    plain, with_masks = TfExampleDecoder(), TfExampleDecoder(include_mask=True)
    examples = []
    for split, relative_paths in splits.items():
        for relative in relative_paths:
            path = os.path.join(output_dir, relative)
            if not os.path.isfile(path):
                check.fail(f"{relative}: listed in the manifest but missing")
                continue
            try:
                for number, serialized in enumerate(tf.data.TFRecordDataset(path)):
                    where = f"{relative} #{number}"
                    try:
                        record = from_example(serialized.numpy())
                        decoder = with_masks if any(o.mask_png for o in record.objects) else plain
                        decoded = {key: value.numpy() for key, value in decoder.decode(serialized).items()}
                    except (tf.errors.OpError, ValueError) as error:
                        check.fail(f"{where}: does not decode: {error}")
                        continue
                    examples.append(_Example(split, where, record, decoded))
                    check.ok()
            except tf.errors.OpError as error:
                check.fail(f"{relative}: unreadable TFRecord file: {error.message}")
    return examples


def _check_records(examples: list[_Example], label_map: LabelMap | None, report: VerifyReport) -> None:
    boxes, classes, ids = report.check("boxes"), report.check("classes"), report.check("source ids")
    seen: dict[str, str] = {}
    for example in examples:
        record, where = example.record, example.where
        for index, obj in enumerate(record.objects):
            values = (obj.xmin, obj.ymin, obj.xmax, obj.ymax)
            if all(0.0 <= v <= 1.0 for v in values) and obj.xmin < obj.xmax and obj.ymin < obj.ymax:
                boxes.ok()
            else:
                boxes.fail(f"{where} ({record.filename}), object #{index}: box {values} is not inside "
                           "[0, 1] with min < max")
            name = label_map.name_of(obj.class_label) if label_map else None
            if name is not None and name == obj.class_text:
                classes.ok()
            else:
                classes.fail(f"{where} ({record.filename}), object #{index}: class id {obj.class_label} "
                             f"({obj.class_text!r}) is not in the label map as that name")
        garden = example.decoded
        expected = [[o.ymin, o.xmin, o.ymax, o.xmax] for o in record.objects]
        if not np.allclose(np.reshape(garden["groundtruth_boxes"], (-1, 4)), np.reshape(expected, (-1, 4))):
            boxes.fail(f"{where}: the Model Garden decoder reads other boxes")
        if not record.source_id.isdigit():
            ids.fail(f"{where}: source_id {record.source_id!r} is not a decimal number")
        elif record.source_id in seen:
            ids.fail(f"{where}: source_id {record.source_id} repeats {seen[record.source_id]}")
        else:
            seen[record.source_id] = where
            ids.ok()


def _check_images_and_xml(output_dir: str, examples: list[_Example], report: VerifyReport) -> None:
    images, xml = report.check("images"), report.check("xml")
    expected: dict[str, set[str]] = collections.defaultdict(set)
    for example in examples:
        record = example.record
        folder = os.path.join(output_dir, "images", example.split)
        expected[example.split].add(record.filename)
        image_path = os.path.join(folder, record.filename)
        try:
            with open(image_path, "rb") as handle:
                data = handle.read()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                size = image.size
        except OSError as error:
            images.fail(f"images/{example.split}/{record.filename}: missing or unreadable ({error})")
            continue
        if (size != (record.width, record.height)) or data != record.encoded:
            images.fail(f"images/{example.split}/{record.filename}: differs from its example "
                        f"({size[0]}x{size[1]} vs {record.width}x{record.height}"
                        f"{', other bytes' if data != record.encoded else ''})")
        else:
            images.ok()
        _check_xml(os.path.splitext(image_path)[0] + ".xml", example, xml)
    for split in SPLITS:
        folder = os.path.join(output_dir, "images", split)
        if os.path.isdir(folder):
            for name in sorted(os.listdir(folder)):
                if name.endswith(".jpg") and name not in expected[split]:
                    images.fail(f"images/{split}/{name}: on disk but in no record")


def _check_xml(path: str, example: _Example, check: Check) -> None:
    record = example.record
    relative = os.path.join("images", example.split, os.path.basename(path))
    try:
        annotation = read_voc(path)
    except (OSError, VocFormatError) as error:
        check.fail(f"{relative}: {error}")
        return
    if (annotation.width, annotation.height) != (record.width, record.height):
        check.fail(f"{relative}: <size> {annotation.width}x{annotation.height} is not the image's "
                   f"{record.width}x{record.height}")
        return
    ours = [(o.class_text, o.box(record.width, record.height).voc_ints(), o.truncated) for o in record.objects]
    theirs = [(o.name, o.box.voc_ints(), o.truncated) for o in annotation.objects]
    if ours != theirs:
        check.fail(f"{relative}: objects {theirs} differ from the example's {ours}")
    else:
        check.ok()


def _check_split(manifest: dict, check: Check) -> None:
    """Train and eval keep apart: identities, background photos (`_check_background_photos`), and
    each image's cutouts and background come from its own split."""
    splits = manifest.get("splits", {})
    identities = {split: set(splits.get(split, {}).get("identities", [])) for split in SPLITS}
    shared = sorted(identities["train"] & identities["eval"])
    if shared:
        check.fail(f"identities in both train and eval: {', '.join(shared[:MAX_LISTED])}"
                   + (f" and {len(shared) - MAX_LISTED} more" if len(shared) > MAX_LISTED else ""))
    else:
        check.ok()
    backgrounds = {split: {os.path.realpath(p): p for p in splits.get(split, {}).get("backgrounds", [])}
                   for split in SPLITS}
    _check_background_photos(manifest, backgrounds, check)
    for split in SPLITS:
        allowed = set(splits.get(split, {}).get("cutouts", []))
        other = "eval" if split == "train" else "train"
        for image in manifest.get("images", {}).get(split, []):
            where = f"images/{split}/{image['name']}.jpg"
            foreign = [o["cutout"] for o in image["objects"] if o["cutout"] not in allowed]
            if foreign:
                check.fail(f"{where}: objects from cutouts of the other split: {', '.join(foreign)}")
            background = image["background"]["file"]
            own = os.path.realpath(background) in backgrounds[split]
            if not own:
                listed = (f"listed for {other}" if os.path.realpath(background) in backgrounds[other]
                          else "listed for neither split")
                check.fail(f"{where}: background {background} is not one of {split}'s background "
                           f"photos ({listed})")
            if own and not foreign:
                check.ok()


def _check_background_photos(manifest: dict, backgrounds: dict[str, dict[str, str]],
                             check: Check) -> None:
    """Train and eval crop different photos, unless the run was made with ``--share_backgrounds``:
    no photo of eval is one of train, by path (``os.path.realpath``) or by content (sha256 of the
    file: a copy under another name or in another folder is the same photo). ``backgrounds`` maps
    each split's real paths to the paths the manifest lists."""
    if manifest.get("config", {}).get("share_backgrounds", False):
        check.note("train and eval crop the same background photos: the run was made with "
                   "--share_backgrounds")
        check.ok()
        return
    digests: dict[str, str | None] = {}
    for split in SPLITS:
        for real in backgrounds[split]:
            if real not in digests:
                digests[real] = _sha256(real)
    gone = sorted(backgrounds["train"].get(real) or backgrounds["eval"][real]
                  for real, digest in digests.items() if digest is None)
    if gone:
        check.warn(f"{len(gone)} background photos are gone or unreadable (e.g. {gone[0]}): compared "
                   "with the other split by path only, not by content")
    train_by_digest: dict[str, list[str]] = collections.defaultdict(list)
    for real, path in backgrounds["train"].items():
        if digests[real] is not None:
            train_by_digest[digests[real]].append(path)
    shared = []
    for real, path in backgrounds["eval"].items():
        if real in backgrounds["train"]:
            shared.append((backgrounds["train"][real], path, "the same file"))
        elif digests[real] is not None:
            shared += [(train, path, f"the same photo by content (sha256 {digests[real][:12]}...)")
                       for train in train_by_digest.get(digests[real], [])]
    for train, evaluation, how in shared:
        check.fail(f"train background {train} and eval background {evaluation} are {how}, and the "
                   "run was not made with --share_backgrounds: eval images would crop the same photo "
                   "as train, so eval measures memorised backgrounds; regenerate the run, or run with "
                   "--share_backgrounds if that was intended")
    if not shared:
        check.ok()


def _sha256(path: str) -> str | None:
    """The file's sha256 (hex), or None if it is gone or unreadable."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def _check_masks(output_dir: str, examples: list[_Example], check: Check) -> None:
    for example in examples:
        record = example.record
        stem = os.path.splitext(record.filename)[0]
        relative = os.path.join("masks", example.split, stem + ".png")
        try:
            plane = np.array(Image.open(os.path.join(output_dir, relative)))
        except OSError as error:
            check.fail(f"{relative}: missing or unreadable ({error})")
            continue
        problems = []
        if int(plane.max(initial=0)) != len(record.objects):
            problems.append(f"holds {int(plane.max(initial=0))} instances, the example {len(record.objects)}")
        for index, obj in enumerate(record.objects, start=1):
            where = plane == index
            box = obj.box(record.width, record.height)
            if not where.any() or mask_box(where) != box:
                problems.append(f"instance {index} does not fill box ({box})")
            if obj.mask_png is not None:
                in_record = np.array(Image.open(io.BytesIO(obj.mask_png))) > 0
                if not np.array_equal(in_record, where):
                    problems.append(f"instance {index} differs from the record's mask")
        if problems:
            check.fail(f"{relative}: " + "; ".join(problems))
        else:
            check.ok()


def _audit_leaks(manifest: dict, check: Check) -> None:
    """Report eval cutouts that look like a train cutout (see the module docstring)."""
    from spatule_synth.generate.near_duplicates import NEAR_DUPLICATE_THRESHOLD, distance

    splits = manifest.get("splits", {})
    prints = {split: cutout_prints(splits.get(split, {}).get("cutout_sources", {})) for split in SPLITS}
    missing = sorted(set(prints["train"].missing) | set(prints["eval"].missing))
    if missing:
        check.warn(f"{len(missing)} source photos are gone or unreadable (e.g. {missing[0]}): "
                   "their cutouts were not audited")
    for eval_id, eval_print in prints["eval"].prints:
        closest = min(((distance(eval_print, train_print), train_id)
                       for train_id, train_print in prints["train"].prints), default=None)
        if closest is not None and closest[0] <= NEAR_DUPLICATE_THRESHOLD:
            check.warn(f"eval cutout {eval_id} looks like train cutout {closest[1]} (distance "
                       f"{closest[0]:.2f} <= {NEAR_DUPLICATE_THRESHOLD}): the same object in both "
                       "splits? --identity=auto groups such cutouts")
        else:
            check.ok()
