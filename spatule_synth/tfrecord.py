"""TFRecord files of ``tf.train.Example`` as the TF2 Object Detection API and TF Model Garden read them.

Feature keys are declared once, in `KEYS`. Boxes are stored normalised to [0, 1] (see
`spatule_synth.boxes`); ``image/source_id`` must be unique per example and is a decimal number,
because the OD API's COCO evaluator drops repeated ids and the Model Garden's detection input
pipeline converts source ids with ``tf.strings.to_number``. Shards are named like the OD API's own
tools: ``NAME.record-00000-of-00004``, or ``NAME.record`` when there is a single shard. Every shard
is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Iterable, Iterator

import numpy as np
import tensorflow as tf

from spatule_synth.boxes import Box
from spatule_synth.output_dir import temporary_path


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


# Optional keys get defaults, so that examples written by the OD API's own tools read back too.
FEATURE_SPEC = {
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


def _bytes(values: Iterable[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _floats(values: Iterable[float]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _ints(values: Iterable[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def to_example(record: RecordImage) -> tf.train.Example:
    """The OD API ``tf.train.Example`` of ``record``."""
    if not record.source_id.isdigit():
        raise ValueError(f"{record.filename}: source_id {record.source_id!r} must be a decimal number")
    objects = record.objects
    masks = [obj.mask_png for obj in objects]
    if any(m is None for m in masks) and any(m is not None for m in masks):
        raise ValueError(f"{record.filename}: either every object has a mask or none has")
    feature = {
        KEYS.ENCODED: _bytes([record.encoded]),
        KEYS.FORMAT: _bytes([_text(record.image_format)]),
        KEYS.FILENAME: _bytes([_text(record.filename)]),
        KEYS.SOURCE_ID: _bytes([_text(record.source_id)]),
        KEYS.SHA256: _bytes([_text(record.sha256)]),
        KEYS.HEIGHT: _ints([record.height]),
        KEYS.WIDTH: _ints([record.width]),
        KEYS.XMIN: _floats(o.xmin for o in objects),
        KEYS.XMAX: _floats(o.xmax for o in objects),
        KEYS.YMIN: _floats(o.ymin for o in objects),
        KEYS.YMAX: _floats(o.ymax for o in objects),
        KEYS.CLASS_TEXT: _bytes(_text(o.class_text) for o in objects),
        KEYS.CLASS_LABEL: _ints(o.class_label for o in objects),
        KEYS.DIFFICULT: _ints(int(o.difficult) for o in objects),
        KEYS.TRUNCATED: _ints(int(o.truncated) for o in objects),
        KEYS.VIEW: _bytes(_text(o.view) for o in objects),
    }
    if objects and masks[0] is not None:
        feature[KEYS.MASK] = _bytes(masks)
    return tf.train.Example(features=tf.train.Features(feature=feature))


def from_example(serialized: bytes) -> RecordImage:
    """Decode a serialized example written by `to_example` (or by the OD API's tools)."""
    parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
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
    on error the temporary files are removed.
    """

    def __init__(self, prefix: str, num_shards: int) -> None:
        self.paths = shard_paths(prefix, num_shards)
        self._temporary = [temporary_path(path) for path in self.paths]
        self._writers: list[tf.io.TFRecordWriter] = []
        self.count = 0

    def __enter__(self) -> ShardedRecordWriter:
        self._writers = [tf.io.TFRecordWriter(path) for path in self._temporary]
        return self

    def write(self, record: RecordImage) -> None:
        self._writers[self.count % len(self._writers)].write(to_example(record).SerializeToString())
        self.count += 1

    def __exit__(self, exc_type, exc, traceback) -> None:
        for writer in self._writers:
            writer.close()
        for temporary, final in zip(self._temporary, self.paths):
            if exc_type is None:
                os.replace(temporary, final)
            elif os.path.exists(temporary):
                os.unlink(temporary)


def read_records(paths: Iterable[str]) -> Iterator[RecordImage]:
    """Every example of the given TFRecord files, in file order."""
    for serialized in tf.data.TFRecordDataset(list(paths)):
        yield from_example(serialized.numpy())
