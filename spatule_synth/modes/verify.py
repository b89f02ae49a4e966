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
* ``scene``          (with ``--scene_outputs``) every background, mask, layers and depth PNG of
                     the image exists at its size; the mask is 0/255, has no pixel outside the
                     boxes and reaches each side of every box; layers are set wherever the mask
                     is; depth is 16-bit;
* ``leak audit``     (generate, source photos still on disk) cutouts of eval that look like a
                     cutout of train (`spatule_synth.generate.near_duplicates`: the same tag photographed
                     twice) are *reported*, not failed: with ``--identity=image`` they are the
                     leak ``--identity=auto`` or ``regex`` would have prevented.

`verify_output` returns a `VerifyReport`; the command prints its table (failures, then warnings and
notes) and exits 1 on any failure.

The output directory may be a URL (``gs://...``; ``memory://`` in the tests): every file of it is
read through `spatule_synth.core.storage` (local paths still go straight to the OS), and the report
is the one its local copy gives, but for the paths named. The shards of a URL are read by
`spatule_synth.formats.tfrecord.iter_record_file` (TensorFlow cannot open every URL), so only the
text of an "unreadable TFRecord file" failure differs; each example is still parsed by TensorFlow.

Memory does not grow with the number of images beyond a few bytes per image. The manifest is
parsed in one pass that keeps everything but its per-image lists (``images``); the split check
streams those lists again item by item (`_ManifestStream`: any JSON layout). The examples are read
shard after shard, one at a time; each goes through every per-example check (records, images,
xml, masks) before the next is read, so no decoded image, mask or JPEG outlives its example.
What is kept across examples: the failure messages, and per example its source id and its image
name, remembered by `_FirstSeen` in about 4 bytes each when they are numbered as ``generate`` and
``convert`` number them (``12``, ``train/train_000012.jpg``), else in a dict. The leak audit
holds one fingerprint (about 70 KB) per cutout of the run (not per image), one source photo at a
time while making them, and compares eval with train in blocks
(`spatule_synth.generate.near_duplicates.cross_distances`: the distances of `distance`, screened in
bulk). On a URL, the check for stray images lists each image folder once, names in memory (a
local folder is streamed).
"""

from __future__ import annotations

import array
import bisect
import collections
import dataclasses
import hashlib
import io
import json
import os
import re
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from spatule_synth.core.annotations import mask_box
from spatule_synth.formats.label_map import LabelMap, LabelMapError, read_label_map
from spatule_synth.formats.manifest import MANIFEST_NAME, ManifestStream
from spatule_synth.modes.split_from import cutout_prints
from spatule_synth.formats.voc import VocFormatError, read_voc
from spatule_synth.generate.split import SPLITS
from spatule_synth.core import storage

MAX_LISTED = 5


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
    """Run every check on ``output_dir``, streaming (see "Memory" in the module docstring)."""
    report = VerifyReport(output_dir)
    manifest = _manifest(output_dir, report.check("manifest"))
    if manifest is None:
        return report
    label_map = _label_map(output_dir, manifest.head, report.check("label map"))
    reader = _ExampleReader(output_dir, _record_files(manifest.head), report.check("records"))
    per_example = [_RecordChecks(label_map, reader, report)]
    generate = manifest.head.get("mode") == "generate"
    if generate:  # the checks are created in the order of the table
        per_example.append(_ImageChecks(output_dir, report))
        split = report.check("split")
        if storage.is_dir(storage.join(output_dir, "masks")):
            per_example.append(_MaskChecks(output_dir, report.check("masks")))
        scene_kinds = tuple(manifest.head.get("config", {}).get("scene_outputs") or ())
        if scene_kinds:
            per_example.append(_SceneChecks(output_dir, scene_kinds, report.check("scene")))
    for example in reader:
        for checks in per_example:
            checks.add(example)
    for checks in per_example:
        checks.finish()
    if generate:
        _check_split(manifest, split)
        _audit_leaks(manifest.head, report.check("leak audit"))
    return report


# --- the manifest, streamed ---------------------------------------------------------------------

@dataclasses.dataclass
class _Manifest:
    """manifest.json: ``head`` holds every top-level member but the per-image lists, which
    `images` streams from the file again at each call."""

    path: str
    head: dict  # holds "images" too only when read whole (a layout the stream cannot follow)

    def images(self, split: str) -> Iterator[dict]:
        """``manifest["images"][split]``, item by item."""
        if "images" in self.head:
            yield from self.head["images"].get(split, [])
            return
        with storage.open_text(self.path) as handle:
            for where, image in ManifestStream(handle).members():
                if where == split:
                    yield image


def _manifest(output_dir: str, check: Check) -> _Manifest | None:
    """The manifest, parsed whole (a file that is not JSON fails) but kept without its per-image
    lists."""
    path = storage.join(output_dir, MANIFEST_NAME)
    try:
        with storage.open_text(path) as handle:
            head = ManifestStream(handle).head()
    except FileNotFoundError:
        check.fail(f"{path} is missing: the run did not finish (or this is not an output directory)")
        return None
    except OSError as error:
        check.fail(f"{path}: cannot be read: {error}")
        return None
    except ValueError:
        # Not JSON, or JSON whose top level is not an object: json.load gives its own message
        # (or its document, which the checks then read in memory).
        try:
            with storage.open_text(path) as handle:
                head = json.load(handle)
        except (OSError, ValueError) as error:
            check.fail(f"{path}: cannot be read: {error}")
            return None
    check.ok()
    return _Manifest(path, head)


def _label_map(output_dir: str, manifest: dict, check: Check) -> LabelMap | None:
    path = storage.join(output_dir, "annotations", "label_map.pbtxt")
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


# --- the examples, one at a time ----------------------------------------------------------------

@dataclasses.dataclass
class _Example:
    split: str
    where: str  # "annotations/train.record #12"
    ordinal: int  # of the example among all examples read, in reading order
    record: object  # RecordImage
    decoded: dict  # Model Garden decoder output (numpy)


class _ExampleReader:
    """Iterates over every example of every shard, each parsed twice (our reader and the Model
    Garden decoder), one at a time: the "records" check. `where` names an example by its ordinal."""

    def __init__(self, output_dir: str, splits: dict[str, list[str]], check: Check) -> None:
        self.output_dir, self.splits, self.check = output_dir, splits, check
        self._starts: list[int] = []  # ordinal of each read shard's first example,
        self._shards: list[str] = []  # and the shard

    def where(self, ordinal: int) -> str:
        shard = bisect.bisect_right(self._starts, ordinal) - 1
        return f"{self._shards[shard]} #{ordinal - self._starts[shard]}"

    def __iter__(self) -> Iterator[_Example]:
        import tensorflow as tf
        from official.vision.dataloaders.tf_example_decoder import TfExampleDecoder

        from spatule_synth.formats.tfrecord import from_example

        check = self.check
        plain, with_masks = TfExampleDecoder(), TfExampleDecoder(include_mask=True)
        ordinal = 0
        for split, relative_paths in self.splits.items():
            for relative in relative_paths:
                path = storage.join(self.output_dir, relative)
                if not storage.is_file(path):
                    check.fail(f"{relative}: listed in the manifest but missing")
                    continue
                self._starts.append(ordinal)
                self._shards.append(relative)
                try:
                    for number, serialized in enumerate(_serialized_examples(path)):
                        where = f"{relative} #{number}"
                        ordinal += 1
                        try:
                            record = from_example(serialized.numpy())
                            decoder = with_masks if any(o.mask_png for o in record.objects) else plain
                            decoded = {key: value.numpy() for key, value in decoder.decode(serialized).items()}
                        except (tf.errors.OpError, ValueError) as error:
                            check.fail(f"{where}: does not decode: {error}")
                            continue
                        check.ok()
                        yield _Example(split, where, ordinal - 1, record, decoded)
                except _UnreadableShard as error:
                    check.fail(f"{relative}: unreadable TFRecord file: {error}")


class _UnreadableShard(Exception):
    """A shard that cannot be read to its end; its message is the reader's."""


def _serialized_examples(path: str) -> Iterator:
    """The serialized examples of one shard, as string tensors: read by TensorFlow from a local
    file, by `iter_record_file` through `storage` from a URL (TensorFlow cannot open ``memory://``,
    nor any URL whose file system it was built without). A file damaged or cut short yields the
    examples before the damage, then raises `_UnreadableShard`."""
    import tensorflow as tf

    if not storage.is_url(path):
        try:
            yield from tf.data.TFRecordDataset(path)
        except tf.errors.OpError as error:
            raise _UnreadableShard(error.message) from error
        return
    from spatule_synth.formats.tfrecord import iter_record_file

    try:
        for serialized in iter_record_file(path):
            yield tf.constant(serialized)
    except (OSError, ValueError) as error:  # ValueError names the path: the check names the shard
        raise _UnreadableShard(str(error).removeprefix(f"{path}: ")) from error


class _FirstSeen:
    """Remembers the first value given for each string, in about 4 bytes per string when the
    strings are numbered the way source ids (``12``) and image names (``train/train_000012.jpg``)
    are. Such a string is a pattern (the text before its last run of up to 9 digits, the run's
    length, the text after) and a number; each pattern keeps its numbers in a `_NumberRun`. Any
    other string goes to a dict."""

    _NUMBERED = re.compile(r"(.*?)([0-9]{1,9})([^0-9]*)", re.DOTALL)

    def __init__(self) -> None:
        self._runs: dict[tuple[str, int, str], _NumberRun] = {}
        self._others: dict[str, int] = {}

    def setdefault(self, text: str, value: int) -> int:
        """The value remembered for ``text``, remembering ``value`` if there is none."""
        match = self._NUMBERED.fullmatch(text)
        if match is None:
            return self._others.setdefault(text, value)
        head, digits, tail = match.groups()
        pattern, number = (head, len(digits), tail), int(digits)
        if pattern not in self._runs:
            self._runs[pattern] = _NumberRun(number)
        return self._runs[pattern].setdefault(number, value)

    def __contains__(self, text: str) -> bool:
        match = self._NUMBERED.fullmatch(text)
        if match is None:
            return text in self._others
        head, digits, tail = match.groups()
        run = self._runs.get((head, len(digits), tail))
        return run is not None and int(digits) in run


class _NumberRun:
    """Values (ints in [0, 2**31 - 2]) of numbers that mostly come in a run upwards from the first
    one, ``base``: an array over [base, base + its length) holding value + 1 (0: none), doubled
    when a number falls a little beyond it, and a dict for the numbers outside it."""

    _GROWTH = 4096  # a number up to this far beyond twice the array's length extends the array

    def __init__(self, base: int) -> None:
        self.base = base
        self.values = array.array("i")
        self.outside: dict[int, int] = {}  # never a number inside the array

    def setdefault(self, number: int, value: int) -> int:
        offset = number - self.base
        if len(self.values) <= offset < 2 * len(self.values) + self._GROWTH:
            self._grow(max(offset + 1, 2 * len(self.values)))
        if 0 <= offset < len(self.values):
            if not self.values[offset]:
                self.values[offset] = value + 1
            return self.values[offset] - 1
        return self.outside.setdefault(number, value)

    def __contains__(self, number: int) -> bool:
        offset = number - self.base
        if 0 <= offset < len(self.values):
            return self.values[offset] > 0
        return number in self.outside

    def _grow(self, size: int) -> None:
        old = len(self.values)
        self.values.frombytes(bytes(self.values.itemsize * (size - old)))
        for number in [n for n in self.outside if old <= n - self.base < size]:
            self.values[number - self.base] = self.outside.pop(number) + 1


class _RecordChecks:
    """boxes, classes and source ids of each example. Source ids are remembered in a `_FirstSeen`
    (with the ordinal of their first example)."""

    def __init__(self, label_map: LabelMap | None, reader: _ExampleReader, report: VerifyReport) -> None:
        self.label_map, self.reader = label_map, reader
        self.boxes, self.classes = report.check("boxes"), report.check("classes")
        self.ids = report.check("source ids")
        self.seen = _FirstSeen()

    def add(self, example: _Example) -> None:
        boxes, classes, ids, label_map = self.boxes, self.classes, self.ids, self.label_map
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
            return
        first = self.seen.setdefault(record.source_id, example.ordinal)
        if first != example.ordinal:
            ids.fail(f"{where}: source_id {record.source_id} repeats {self.reader.where(first)}")
        else:
            ids.ok()

    def finish(self) -> None:
        pass


class _ImageChecks:
    """images and xml of each example; at the end, the images on disk that no example has (the
    examples' file names are remembered in a `_FirstSeen`)."""

    def __init__(self, output_dir: str, report: VerifyReport) -> None:
        self.output_dir = output_dir
        self.images, self.xml = report.check("images"), report.check("xml")
        self.expected = _FirstSeen()  # "split/filename"

    def add(self, example: _Example) -> None:
        images, record = self.images, example.record
        self.expected.setdefault(f"{example.split}/{record.filename}", 0)
        image_path = storage.join(self.output_dir, "images", example.split, record.filename)
        try:
            data = storage.read_bytes(image_path)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                size = image.size
        except OSError as error:
            images.fail(f"images/{example.split}/{record.filename}: missing or unreadable ({error})")
            return
        if (size != (record.width, record.height)) or data != record.encoded:
            images.fail(f"images/{example.split}/{record.filename}: differs from its example "
                        f"({size[0]}x{size[1]} vs {record.width}x{record.height}"
                        f"{', other bytes' if data != record.encoded else ''})")
        else:
            images.ok()
        _check_xml(os.path.splitext(image_path)[0] + ".xml", example, self.xml)

    def finish(self) -> None:
        for split in SPLITS:
            folder = storage.join(self.output_dir, "images", split)
            if storage.is_dir(folder):
                strays = [name for name in storage.names_in(folder) if name.endswith(".jpg")
                          and f"{split}/{name}" not in self.expected]
                for name in sorted(strays):
                    self.images.fail(f"images/{split}/{name}: on disk but in no record")


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


def _check_split(manifest: _Manifest, check: Check) -> None:
    """Train and eval keep apart: identities, background photos (`_check_background_photos`), and
    each image's cutouts and background come from its own split (the images streamed from the
    manifest)."""
    splits = manifest.head.get("splits", {})
    identities = {split: set(splits.get(split, {}).get("identities", [])) for split in SPLITS}
    shared = sorted(identities["train"] & identities["eval"])
    if shared:
        check.fail(f"identities in both train and eval: {', '.join(shared[:MAX_LISTED])}"
                   + (f" and {len(shared) - MAX_LISTED} more" if len(shared) > MAX_LISTED else ""))
    else:
        check.ok()
    backgrounds = {split: {_canonical(p): p for p in splits.get(split, {}).get("backgrounds", [])}
                   for split in SPLITS}
    _check_background_photos(manifest.head, backgrounds, check)
    for split in SPLITS:
        allowed = set(splits.get(split, {}).get("cutouts", []))
        other = "eval" if split == "train" else "train"
        for image in manifest.images(split):
            where = f"images/{split}/{image['name']}.jpg"
            foreign = [o["cutout"] for o in image["objects"] if o["cutout"] not in allowed]
            if foreign:
                check.fail(f"{where}: objects from cutouts of the other split: {', '.join(foreign)}")
            background = image["background"]["file"]
            own = _canonical(background) in backgrounds[split]
            if not own:
                listed = (f"listed for {other}" if _canonical(background) in backgrounds[other]
                          else "listed for neither split")
                check.fail(f"{where}: background {background} is not one of {split}'s background "
                           f"photos ({listed})")
            if own and not foreign:
                check.ok()


def _check_background_photos(manifest: dict, backgrounds: dict[str, dict[str, str]],
                             check: Check) -> None:
    """Train and eval crop different photos, unless the run was made with ``--share_backgrounds``:
    no photo of eval is one of train, by path (`_canonical`) or by content (sha256 of the file: a
    copy under another name or in another folder is the same photo). ``backgrounds`` maps each
    split's canonical paths to the paths the manifest lists."""
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


def _canonical(path: str) -> str:
    """`storage.canonical` of a background photo (``os.path.realpath`` when local), or the path as
    listed when its URL's file system cannot be used here (its photo then reads as gone)."""
    try:
        return storage.canonical(path)
    except storage.StorageError:
        return path


def _sha256(path: str) -> str | None:
    """The file's sha256 (hex), or None if it is gone or unreadable."""
    try:
        with storage.open_binary(path) as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def _read_png(path: str) -> np.ndarray:
    """The pixels of an image file, local or URL; an OSError names ``path`` in both cases (Pillow
    names a file it opened itself, not the bytes of a URL)."""
    source = storage.pillow_source(path)
    try:
        with Image.open(source) as image:
            return np.array(image)
    except UnidentifiedImageError:
        if isinstance(source, str):
            raise
        raise UnidentifiedImageError(f"cannot identify image file {path!r}") from None


class _MaskChecks:
    """masks of each example."""

    def __init__(self, output_dir: str, check: Check) -> None:
        self.output_dir, self.check = output_dir, check

    def add(self, example: _Example) -> None:
        check, record = self.check, example.record
        stem = os.path.splitext(record.filename)[0]
        relative = os.path.join("masks", example.split, stem + ".png")
        try:
            plane = _read_png(storage.join(self.output_dir, relative))
        except OSError as error:
            check.fail(f"{relative}: missing or unreadable ({error})")
            return
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

    def finish(self) -> None:
        pass


class _SceneChecks:
    """--scene_outputs of each example: every file there, of the image's size; the union mask
    0/255, inside the example's boxes and reaching each side of every box; the layer map set
    wherever the mask is; the depth map 16-bit."""

    def __init__(self, output_dir: str, kinds: tuple[str, ...], check: Check) -> None:
        self.output_dir, self.kinds, self.check = output_dir, kinds, check

    def add(self, example: _Example) -> None:
        record = example.record
        stem = os.path.splitext(record.filename)[0]
        planes, problems = {}, []
        for kind in self.kinds:
            relative = os.path.join(kind, example.split, stem + ".png")
            try:
                planes[kind] = _read_png(storage.join(self.output_dir, relative))
            except OSError as error:
                problems.append(f"{relative}: missing or unreadable ({error})")
                continue
            if planes[kind].shape[:2] != (record.height, record.width):
                problems.append(f"{relative}: {planes[kind].shape[1]}x{planes[kind].shape[0]}, the image "
                                f"{record.width}x{record.height}")
                del planes[kind]
        if "depth" in planes and planes["depth"].dtype != np.uint16:
            problems.append(f"depth/{example.split}/{stem}.png: {planes['depth'].dtype}, not 16-bit")
        if "mask" in planes:
            problems += _mask_problems(planes["mask"], [o.box(record.width, record.height) for o in record.objects])
            if "layers" in planes and (planes["layers"][planes["mask"] == 255] == 0).any():
                problems.append("layers: 0 (background) where the mask shows an object")
        if problems:
            self.check.fail(f"{example.split}/{stem}: " + "; ".join(problems))
        else:
            self.check.ok()

    def finish(self) -> None:
        pass


def _mask_problems(mask: np.ndarray, boxes: list) -> list[str]:
    """What is wrong with a union mask given the image's boxes (see `_SceneChecks`)."""
    problems = []
    values = set(np.unique(mask).tolist())
    if not values <= {0, 255}:
        problems.append(f"mask: values {sorted(values - {0, 255})[:3]} besides 0 and 255")
    inside = np.zeros(mask.shape[:2], bool)
    for index, box in enumerate(boxes, start=1):
        x0, y0, x1, y1 = box.voc_ints()
        inside[y0:y1, x0:x1] = True
        part = mask[y0:y1, x0:x1] == 255
        if not (part.size and part[0].any() and part[-1].any() and part[:, 0].any() and part[:, -1].any()):
            problems.append(f"mask: object {index} does not reach every side of its box ({box})")
    if ((mask == 255) & ~inside).any():
        problems.append("mask: object pixels outside every box")
    return problems


_AUDIT_BLOCK = 256  # eval cutouts compared with every train cutout at once


def _audit_leaks(manifest: dict, check: Check) -> None:
    """Report eval cutouts that look like a train cutout (see the module docstring). Each block of
    eval cutouts is compared with every train cutout by `near_duplicates.cross_distances` (bulk
    screens, then `distance`'s own steps for the pairs they leave: the same distances)."""
    from spatule_synth.generate.near_duplicates import NEAR_DUPLICATE_THRESHOLD, cross_distances

    splits = manifest.get("splits", {})
    prints = {split: cutout_prints(splits.get(split, {}).get("cutout_sources", {})) for split in SPLITS}
    missing = sorted(set(prints["train"].missing) | set(prints["eval"].missing))
    if missing:
        check.warn(f"{len(missing)} source photos are gone or unreadable (e.g. {missing[0]}): "
                   "their cutouts were not audited")
    train_ids = [train_id for train_id, _ in prints["train"].prints]
    train_prints = [train_print for _, train_print in prints["train"].prints]
    evals = prints["eval"].prints
    for start in range(0, len(evals), _AUDIT_BLOCK):
        block = evals[start:start + _AUDIT_BLOCK]
        rows = cross_distances([eval_print for _, eval_print in block], train_prints)
        for (eval_id, _), row in zip(block, rows):
            closest = min(zip(row.tolist(), train_ids), default=None)
            if closest is not None and closest[0] <= NEAR_DUPLICATE_THRESHOLD:
                check.warn(f"eval cutout {eval_id} looks like train cutout {closest[1]} (distance "
                           f"{closest[0]:.2f} <= {NEAR_DUPLICATE_THRESHOLD}): the same object in "
                           "both splits? --identity=auto groups such cutouts")
            else:
                check.ok()
