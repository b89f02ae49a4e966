"""One synthetic image's outputs: ``NAME.jpg`` and ``NAME.xml`` on disk, its TFRecord example and
its manifest entry, all made from the same rendered pixels and boxes.

Workers call `write_sample` themselves, so the parent process only appends the serialized examples
to the shards: the work per image is spread over every core.
"""

from __future__ import annotations

import dataclasses
import os

import cv2

from spatule_synth.output_dir import atomic_write_bytes
from spatule_synth.plan import SplitPool
from spatule_synth.render import Sample
from spatule_synth.tfrecord import RecordImage, RecordObject, serialize_example
from spatule_synth.voc import VocAnnotation, VocObject, voc_bytes


@dataclasses.dataclass(frozen=True)
class WrittenSample:
    """What the parent needs of a written image: its example and its manifest entry."""

    name: str
    serialized_example: bytes
    entry: dict


def encode_canvas(sample: Sample, quality: int) -> bytes:
    """The JPEG of the rendered RGB pixels."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(sample.pixels, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"{sample.spec.name}: JPEG encoding failed")
    return encoded.tobytes()


def write_sample(sample: Sample, pool: SplitPool, folder: str, source_id: str,
                 jpeg_quality: int) -> WrittenSample:
    """Write ``NAME.jpg`` and ``NAME.xml`` into ``folder``; return the example and manifest entry."""
    name = sample.spec.name
    size = int(sample.pixels.shape[0])
    jpeg = encode_canvas(sample, jpeg_quality)
    annotation = VocAnnotation(
        filename=f"{name}.jpg", width=size, height=size, depth=3,
        folder=os.path.basename(folder), path=None,
        objects=tuple(VocObject(o.class_name, o.box, truncated=o.truncated) for o in sample.objects))
    atomic_write_bytes(os.path.join(folder, f"{name}.jpg"), jpeg, durable=False)
    atomic_write_bytes(os.path.join(folder, f"{name}.xml"), voc_bytes(annotation), durable=False)
    objects = tuple(RecordObject.from_box(o.box, size, size, class_text=o.class_name,
                                          class_label=o.class_id, truncated=o.truncated)
                    for o in sample.objects)
    record = RecordImage(encoded=jpeg, image_format="jpeg", filename=f"{name}.jpg",
                         source_id=source_id, height=size, width=size, objects=objects)
    return WrittenSample(name, serialize_example(record), manifest_entry(sample, pool, source_id))


def manifest_entry(sample: Sample, pool: SplitPool, source_id: str) -> dict:
    """Where the image came from: background file and window, and per object its cutout, blend
    mode, box and truncation."""
    background = pool.backgrounds[sample.spec.background]
    return {"name": sample.spec.name, "source_id": source_id,
            "background": {"file": background.path, "window": list(sample.spec.window)},
            "objects": [{"class": o.class_name, "cutout": o.cutout_id, "blend": o.blend,
                         "box": [o.box.xmin, o.box.ymin, o.box.xmax, o.box.ymax],
                         "truncated": o.truncated} for o in sample.objects]}
