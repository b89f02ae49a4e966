"""TFRecord files of ``tf.train.Example`` as the TF2 Object Detection API and TF Model Garden read them.

Feature keys are declared once, in `KEYS`. Boxes are stored normalised to [0, 1] (see
`spatule_synth.core.boxes`); ``image/source_id`` must be unique per example and is a decimal number,
because the OD API's COCO evaluator drops repeated ids and the Model Garden's detection input
pipeline converts source ids with ``tf.strings.to_number``. Shards are named like the OD API's own
tools: ``NAME.record-00000-of-00004``, or ``NAME.record`` when there is a single shard. Every shard
is written under a temporary name and renamed when complete.

Writing needs no TensorFlow (importing it costs seconds, in every worker process): examples are
built with protobuf from the ``tf.train.Example`` schema (``tensorflow/core/example/*.proto``,
declared here with `spatule_synth.formats.proto_schema`) and framed as TFRecord does (length,
masked CRC-32C of the length, data, masked CRC-32C of the data). Reading goes through TensorFlow
itself, so the tests check what TensorFlow sees; `iter_record_file` reads the entries without it,
from a local file or a URL (`spatule_synth.core.storage`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import shutil
import struct
import tempfile
from typing import Callable, Iterable, Iterator

import google_crc32c
import numpy as np

from spatule_synth.core import storage
from spatule_synth.core.boxes import Box
from spatule_synth.core.output_dir import naming, temporary_path
from spatule_synth.formats.proto_schema import message_classes


class KEYS:
    """The OD API feature keys, the only place they are spelled."""

    ENCODED = "image/encoded"
    FORMAT = "image/format"
    FILENAME = "image/filename"
    SOURCE_ID = "image/source_id"
    SHA256 = "image/key/sha256"
    HEIGHT = "image/height"
    WIDTH = "image/width"
    XMIN = "image/object/bbox/xmin"
    XMAX = "image/object/bbox/xmax"
    YMIN = "image/object/bbox/ymin"
    YMAX = "image/object/bbox/ymax"
    CLASS_TEXT = "image/object/class/text"
    CLASS_LABEL = "image/object/class/label"
    DIFFICULT = "image/object/difficult"
    TRUNCATED = "image/object/truncated"
    VIEW = "image/object/view"
    MASK = "image/object/mask"


def feature_spec() -> dict:
    """The ``tf.io.parse_single_example`` spec of our examples. Optional keys get defaults, so that
    examples written by the OD API's own tools read back too. (Imports TensorFlow.)"""
    import tensorflow as tf

    return {
        KEYS.ENCODED: tf.io.FixedLenFeature((), tf.string),
        KEYS.FORMAT: tf.io.FixedLenFeature((), tf.string, default_value="jpeg"),
        KEYS.FILENAME: tf.io.FixedLenFeature((), tf.string, default_value=""),
        KEYS.SOURCE_ID: tf.io.FixedLenFeature((), tf.string, default_value=""),
        KEYS.SHA256: tf.io.FixedLenFeature((), tf.string, default_value=""),
        KEYS.HEIGHT: tf.io.FixedLenFeature((), tf.int64),
        KEYS.WIDTH: tf.io.FixedLenFeature((), tf.int64),
        KEYS.XMIN: tf.io.VarLenFeature(tf.float32),
        KEYS.XMAX: tf.io.VarLenFeature(tf.float32),
        KEYS.YMIN: tf.io.VarLenFeature(tf.float32),
        KEYS.YMAX: tf.io.VarLenFeature(tf.float32),
        KEYS.CLASS_TEXT: tf.io.VarLenFeature(tf.string),
        KEYS.CLASS_LABEL: tf.io.VarLenFeature(tf.int64),
        KEYS.DIFFICULT: tf.io.VarLenFeature(tf.int64),
        KEYS.TRUNCATED: tf.io.VarLenFeature(tf.int64),
        KEYS.VIEW: tf.io.VarLenFeature(tf.string),
        KEYS.MASK: tf.io.VarLenFeature(tf.string),
    }


def _text(value: str) -> bytes:
    """UTF-8, keeping undecodable file-name bytes as they were (Python's surrogateescape)."""
    return value.encode("utf-8", "surrogateescape")


def _untext(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def _float32(value: float) -> float:
    return float(np.float32(value))


@dataclasses.dataclass(frozen=True)
class RecordObject:
    """One object of an example: normalised box (float32 precision), class, flags, optional mask."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    class_text: str
    class_label: int
    difficult: bool = False
    truncated: bool = False
    view: str = "Unspecified"
    mask_png: bytes | None = None  # PNG of the image size, non-zero where the object is

    @classmethod
    def from_box(cls, box: Box, width: int, height: int, **fields) -> RecordObject:
        if not box.is_inside(width, height):
            raise ValueError(f"box ({box}) lies outside the {width}x{height} image")
        xmin, ymin, xmax, ymax = (_float32(v) for v in box.normalized(width, height))
        return cls(xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax, **fields)

    def box(self, width: int, height: int) -> Box:
        """The pixel box in an image of ``width`` x ``height``.

        float32 keeps normalised coordinates to about 1e-4 px at 4000 px, so the result is rounded
        to 1/1000 px: a box written from whole or half pixels reads back exactly.
        """
        box = Box.from_normalized(self.xmin, self.ymin, self.xmax, self.ymax, width, height)
        return Box(*(round(value, 3) for value in (box.xmin, box.ymin, box.xmax, box.ymax)))


@dataclasses.dataclass(frozen=True)
class RecordImage:
    """One ``tf.train.Example``: an encoded image and its objects."""

    encoded: bytes
    image_format: str  # "jpeg" or "png"
    filename: str
    source_id: str
    height: int
    width: int
    objects: tuple[RecordObject, ...] = ()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.encoded).hexdigest()


# tf.train.Example and its parts (tensorflow/core/example/{example,feature}.proto, proto3).
_EXAMPLE_SCHEMA = {
    "BytesList": [("value", 1, "bytes", "repeated")],
    "FloatList": [("value", 1, "float", "repeated")],  # proto3: packed
    "Int64List": [("value", 1, "int64", "repeated")],  # proto3: packed
    "Feature": [("bytes_list", 1, "message", "oneof kind", "BytesList"),
                ("float_list", 2, "message", "oneof kind", "FloatList"),
                ("int64_list", 3, "message", "oneof kind", "Int64List")],
    "Features": [("feature", 1, "message", "map string", "Feature")],
    "Example": [("features", 1, "message", "optional", "Features")],
}


@functools.cache
def _example_classes() -> dict[str, type]:
    """``tensorflow.{Example, Features, Feature, BytesList, FloatList, Int64List}`` by name."""
    return message_classes("tensorflow", _EXAMPLE_SCHEMA, syntax="proto3")


def to_example(record: RecordImage):
    """The OD API ``tf.train.Example`` of ``record`` (a protobuf message with the same schema)."""
    if not record.source_id.isdigit():
        raise ValueError(f"{record.filename}: source_id {record.source_id!r} must be a decimal number")
    objects = record.objects
    masks = [obj.mask_png for obj in objects]
    if any(m is None for m in masks) and any(m is not None for m in masks):
        raise ValueError(f"{record.filename}: either every object has a mask or none has")
    classes = _example_classes()
    lists = {"bytes_list": classes["BytesList"], "float_list": classes["FloatList"],
             "int64_list": classes["Int64List"]}
    example = classes["Example"]()
    feature = example.features.feature

    def add(key: str, kind: str, values: Iterable) -> None:
        getattr(feature[key], kind).CopyFrom(lists[kind](value=list(values)))

    add(KEYS.ENCODED, "bytes_list", [record.encoded])
    add(KEYS.FORMAT, "bytes_list", [_text(record.image_format)])
    add(KEYS.FILENAME, "bytes_list", [_text(record.filename)])
    add(KEYS.SOURCE_ID, "bytes_list", [_text(record.source_id)])
    add(KEYS.SHA256, "bytes_list", [_text(record.sha256)])
    add(KEYS.HEIGHT, "int64_list", [record.height])
    add(KEYS.WIDTH, "int64_list", [record.width])
    add(KEYS.XMIN, "float_list", (o.xmin for o in objects))
    add(KEYS.XMAX, "float_list", (o.xmax for o in objects))
    add(KEYS.YMIN, "float_list", (o.ymin for o in objects))
    add(KEYS.YMAX, "float_list", (o.ymax for o in objects))
    add(KEYS.CLASS_TEXT, "bytes_list", (_text(o.class_text) for o in objects))
    add(KEYS.CLASS_LABEL, "int64_list", (o.class_label for o in objects))
    add(KEYS.DIFFICULT, "int64_list", (int(o.difficult) for o in objects))
    add(KEYS.TRUNCATED, "int64_list", (int(o.truncated) for o in objects))
    add(KEYS.VIEW, "bytes_list", (_text(o.view) for o in objects))
    if objects and masks[0] is not None:
        add(KEYS.MASK, "bytes_list", masks)
    return example


def serialize_example(record: RecordImage) -> bytes:
    """`to_example` serialized, with its features in key order (the same bytes on every run)."""
    return to_example(record).SerializeToString(deterministic=True)


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def framed(serialized: bytes) -> bytes:
    """One TFRecord entry: little-endian length, its masked CRC-32C, the data, its masked CRC-32C."""
    length = struct.pack("<Q", len(serialized))
    return b"".join((length, struct.pack("<I", _masked_crc(length)), serialized,
                     struct.pack("<I", _masked_crc(serialized))))


def from_example(serialized: bytes) -> RecordImage:
    """Decode a serialized example written by `to_example` (or by the OD API's tools)."""
    import tensorflow as tf

    parsed = tf.io.parse_single_example(serialized, feature_spec())
    dense = {key: (tf.sparse.to_dense(value) if isinstance(value, tf.SparseTensor) else value).numpy()
             for key, value in parsed.items()}
    count = len(dense[KEYS.XMIN])

    def per_object(key: str, default) -> list:  # optional per-object lists may be absent
        values = list(dense[key])
        return values if values else [default] * count

    objects = tuple(
        RecordObject(xmin=float(x0), ymin=float(y0), xmax=float(x1), ymax=float(y1),
                     class_text=_untext(text), class_label=int(label), difficult=bool(difficult),
                     truncated=bool(truncated), view=_untext(view), mask_png=mask)
        for x0, y0, x1, y1, text, label, difficult, truncated, view, mask in zip(
            dense[KEYS.XMIN], dense[KEYS.YMIN], dense[KEYS.XMAX], dense[KEYS.YMAX],
            per_object(KEYS.CLASS_TEXT, b""), per_object(KEYS.CLASS_LABEL, 0),
            per_object(KEYS.DIFFICULT, 0), per_object(KEYS.TRUNCATED, 0),
            per_object(KEYS.VIEW, b"Unspecified"), per_object(KEYS.MASK, None), strict=True))
    return RecordImage(encoded=dense[KEYS.ENCODED], image_format=_untext(dense[KEYS.FORMAT]),
                       filename=_untext(dense[KEYS.FILENAME]),
                       source_id=_untext(dense[KEYS.SOURCE_ID]),
                       height=int(dense[KEYS.HEIGHT]), width=int(dense[KEYS.WIDTH]), objects=objects)


def iter_record_file(path: str, wanted: Callable[[int], bool] | None = None) -> Iterator[bytes]:
    """The serialized examples of one TFRecord file (a local path or a URL: `storage`), in order,
    without TensorFlow; ValueError names the entry whose length or data fails its CRC (a file cut
    short or damaged). With ``wanted``, entries whose number (0-based) it refuses are skipped
    unread (b"" is yielded in their place, their data is not checked)."""
    with storage.open_binary(path) as handle:
        number = 0
        while True:
            header = handle.read(12)
            if not header:
                return
            length_bytes = header[:8]
            if len(header) < 12 or struct.unpack("<I", header[8:])[0] != _masked_crc(length_bytes):
                raise ValueError(f"{path}: entry #{number}: damaged length")
            length = struct.unpack("<Q", length_bytes)[0]
            if wanted is not None and not wanted(number):
                handle.seek(length + 4, os.SEEK_CUR)
                yield b""
                number += 1
                continue
            data = handle.read(length)
            footer = handle.read(4)
            if len(footer) < 4 or struct.unpack("<I", footer)[0] != _masked_crc(data):
                raise ValueError(f"{path}: entry #{number}: damaged data (cut short?)")
            yield data
            number += 1


def parse_example(serialized: bytes) -> RecordImage:
    """`from_example` without TensorFlow (protobuf only): the fields `to_example` writes."""
    example = _example_classes()["Example"]()
    example.ParseFromString(serialized)
    feature = example.features.feature

    def values(key: str, kind: str) -> list:
        return list(getattr(feature[key], kind).value) if key in feature else []

    boxes = [values(key, "float_list") for key in (KEYS.XMIN, KEYS.YMIN, KEYS.XMAX, KEYS.YMAX)]
    count = len(boxes[0])

    def per_object(key: str, kind: str, default) -> list:
        found = values(key, kind)
        return found if found else [default] * count

    masks = values(KEYS.MASK, "bytes_list") or [None] * count
    objects = tuple(
        RecordObject(xmin=x0, ymin=y0, xmax=x1, ymax=y1, class_text=_untext(text), class_label=int(label),
                     difficult=bool(difficult), truncated=bool(truncated), view=_untext(view), mask_png=mask)
        for x0, y0, x1, y1, text, label, difficult, truncated, view, mask in zip(
            *boxes, per_object(KEYS.CLASS_TEXT, "bytes_list", b""), per_object(KEYS.CLASS_LABEL, "int64_list", 0),
            per_object(KEYS.DIFFICULT, "int64_list", 0), per_object(KEYS.TRUNCATED, "int64_list", 0),
            per_object(KEYS.VIEW, "bytes_list", b"Unspecified"), masks, strict=True))
    [encoded] = values(KEYS.ENCODED, "bytes_list")
    return RecordImage(encoded=encoded, image_format=_untext(values(KEYS.FORMAT, "bytes_list")[0]),
                       filename=_untext((values(KEYS.FILENAME, "bytes_list") or [b""])[0]),
                       source_id=_untext((values(KEYS.SOURCE_ID, "bytes_list") or [b""])[0]),
                       height=int(values(KEYS.HEIGHT, "int64_list")[0]),
                       width=int(values(KEYS.WIDTH, "int64_list")[0]), objects=objects)


def shard_paths(prefix: str, num_shards: int) -> list[str]:
    """``PREFIX.record`` for one shard, else ``PREFIX.record-00000-of-0000N`` ..."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {num_shards}")
    if num_shards == 1:
        return [f"{prefix}.record"]
    return [f"{prefix}.record-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]


def shard_glob(prefix: str, num_shards: int) -> str:
    """The ``input_path`` pattern that matches exactly the shards of `shard_paths`."""
    return shard_paths(prefix, 1)[0] if num_shards == 1 else f"{prefix}.record-?????-of-{num_shards:05d}"


class ShardedRecordWriter:
    """Writes examples round-robin into shards (example ``i`` goes to shard ``i % num_shards``).

    Use as a context manager: shards get their final names only when the block ends without error;
    on error the temporary files are removed. Shards of a URL prefix (``gs://...``) are written to
    local scratch files and each sent in one request at the end (`spatule_synth.core.storage`).
    """

    def __init__(self, prefix: str, num_shards: int) -> None:
        self.paths = shard_paths(prefix, num_shards)
        self._scratch = tempfile.mkdtemp(prefix="spatule_synth_shards_") if storage.is_url(prefix) else None
        self._temporary = [os.path.join(self._scratch, f"{index}.record") if self._scratch else temporary_path(path)
                           for index, path in enumerate(self.paths)]
        self._files: list = []
        self.count = 0

    def __enter__(self) -> ShardedRecordWriter:
        for temporary, final in zip(self._temporary, self.paths):
            try:
                self._files.append(open(temporary, "wb"))
            except OSError as error:
                self.__exit__(type(error), error, None)
                raise naming(error, final) from error
        return self

    def write(self, record: RecordImage) -> None:
        self.write_serialized(serialize_example(record))

    def write_serialized(self, serialized: bytes) -> None:
        """Append an already serialized example (see `serialize_example`). An OSError names the
        shard (its final name)."""
        shard = self.count % len(self._files)
        try:
            self._files[shard].write(framed(serialized))
        except OSError as error:
            raise naming(error, self.paths[shard]) from error
        self.count += 1

    def __exit__(self, exc_type, exc, traceback) -> None:
        failure = None
        for handle, final in zip(self._files, self.paths):
            try:
                handle.close()  # flushes: a full disk may only show here
            except OSError as error:
                failure = failure or naming(error, final)
        if failure is not None:
            exc_type = type(failure)
        try:
            for temporary, final in zip(self._temporary, self.paths):
                if exc_type is None and self._scratch:
                    storage.put_file(temporary, final)
                elif exc_type is None:
                    os.replace(temporary, final)
                elif os.path.exists(temporary):
                    os.unlink(temporary)
        finally:
            if self._scratch:
                shutil.rmtree(self._scratch, ignore_errors=True)
        if failure is not None and exc is None:
            raise failure


def read_records(paths: Iterable[str]) -> Iterator[RecordImage]:
    """Every example of the given TFRecord files, in file order (read by TensorFlow)."""
    import tensorflow as tf

    for serialized in tf.data.TFRecordDataset(list(paths)):
        yield from_example(serialized.numpy())
