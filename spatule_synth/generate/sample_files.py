"""One synthetic image's outputs: ``NAME.jpg`` and ``NAME.xml`` on disk, its TFRecord example and
its manifest entry, all made from the same rendered pixels and boxes; with ``--instance_masks``
also ``masks/SPLIT/NAME.png`` (pixel value = 1-based index of the object in the XML, 0 = none),
one PNG mask per object in the example (``image/object/mask``, the OD API's ``PNG_MASKS``) and
the image's COCO annotations (RLE of the same masks); with ``--yolo_output`` a YOLO ``NAME.txt``;
with ``--tag_crops`` ``tag_crops/SPLIT/NAME_K.png`` for object K when its code is known and the
object is its tag (cut from the JPEG as written, box plus `CROP_MARGIN` px, turned by the quarter
turns that undo the rendered tag's reading direction and the paste's rotation; mirrored pastes,
and objects cut by the canvas edge or with less than `MIN_CROP_VISIBLE` of their mask visible,
are left out: their code may not be readable), listed in the manifest entry's ``tag_crops``; with ``--scene_outputs``, per image
``OUT/background/SPLIT/NAME.png`` (the canvas window before anything was pasted, lossless),
``OUT/mask/SPLIT/NAME.png`` (the union of the labelled objects' visible masks, 0/255) and
``OUT/layers/SPLIT/NAME.png`` (per pixel 0 for the background, else k: the manifest entry's
``placements[k-1]`` wrote it last; uint16 past 255 pastes).
Every mask is the object's *visible* mask, so all of them agree pixel for pixel.

Workers call `write_sample` themselves; what they hand back (`WrittenSample`) holds the example
without its JPEG bytes, which the parent reads from the written file when it appends the example to
a shard (`serialized_example`): the record holds exactly the bytes on disk, and the chunk's part
file (`spatule_synth.generate.progress`) stays small.
"""

from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np

from spatule_synth.formats.coco import instance_fields
from spatule_synth.core.images import encode_png
from spatule_synth.core import storage
from spatule_synth.core.output_dir import atomic_write_bytes
from spatule_synth.generate.plan import SplitPool
from spatule_synth.generate.render import Sample
from spatule_synth.formats.tfrecord import RecordImage, RecordObject, serialize_example
from spatule_synth.formats.voc import VocAnnotation, VocObject, voc_bytes
from spatule_synth.formats.yolo import yolo_lines

STATISTICS_KINDS = ("image", "background", "mask")  # plus depth, made by the parent
PixelSums = tuple[int, tuple[int, ...], tuple[int, ...]]
CROP_MARGIN = 3  # context around a tag crop, px
MIN_CROP_VISIBLE = 0.9  # share of a tag's mask that must be visible for its crop to be written


@dataclasses.dataclass(frozen=True)
class SampleOutputs:
    """Where and what to write besides the JPEG and XML."""

    folder: str  # OUT/images/SPLIT
    mask_folder: str | None = None  # OUT/masks/SPLIT with --instance_masks
    class_names: tuple[str, ...] | None = None  # label-map order, with --yolo_output
    jpeg_quality: int = 95
    crop_folder: str | None = None  # OUT/tag_crops/SPLIT with --tag_crops
    scene_folders: dict = dataclasses.field(default_factory=dict)  # kind -> OUT/KIND/SPLIT (--scene_outputs)


@dataclasses.dataclass(frozen=True)
class WrittenSample:
    """What the parent needs of a written image: its example (without the JPEG bytes: ``encoded``
    is empty), manifest entry and COCO annotations."""

    name: str
    record: RecordImage
    entry: dict
    coco_annotations: tuple[dict, ...] = ()  # `spatule_synth.formats.coco.instance_fields` per object
    pixel_sums: dict = dataclasses.field(default_factory=dict)  # kind -> `pixel_sums` (--scene_outputs)


def encode_canvas(sample: Sample, quality: int) -> bytes:
    """The JPEG of the rendered RGB pixels."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(sample.pixels, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"{sample.spec.name}: JPEG encoding failed")
    return encoded.tobytes()


def write_sample(sample: Sample, pool: SplitPool, source_id: str, outputs: SampleOutputs,
                 background: np.ndarray | None = None) -> WrittenSample:
    """Write the image's files; return its example, manifest entry and COCO annotations."""
    name = sample.spec.name
    size = int(sample.pixels.shape[0])
    quality = sample.spec.image_augment.jpeg_quality or outputs.jpeg_quality
    jpeg = encode_canvas(sample, quality)
    folder = outputs.folder
    annotation = VocAnnotation(
        filename=f"{name}.jpg", width=size, height=size, depth=3,
        folder=os.path.basename(folder), path=None,
        objects=tuple(VocObject(o.class_name, o.box, truncated=o.truncated) for o in sample.objects))
    atomic_write_bytes(os.path.join(folder, f"{name}.jpg"), jpeg, durable=False)
    atomic_write_bytes(os.path.join(folder, f"{name}.xml"), voc_bytes(annotation), durable=False)
    crops = _write_tag_crops(sample, pool, jpeg, outputs.crop_folder) if outputs.crop_folder else []
    planes = _write_scene(sample, background, outputs.scene_folders)
    masks: list[bytes | None] = [None] * len(sample.objects)
    coco: tuple[dict, ...] = ()
    if outputs.mask_folder is not None:
        atomic_write_bytes(os.path.join(outputs.mask_folder, f"{name}.png"),
                           encode_png(instance_mask(sample)), durable=False)
        masks = [encode_png(o.mask.astype(np.uint8)) for o in sample.objects]
        coco = tuple(instance_fields(o.class_id, o.mask, f"{name} object {i}")
                     for i, o in enumerate(sample.objects))
    if outputs.class_names is not None:
        atomic_write_bytes(os.path.join(folder, f"{name}.txt"),
                           yolo_lines([(o.class_name, o.box) for o in sample.objects], size, size,
                                      list(outputs.class_names)).encode("utf-8"), durable=False)
    objects = tuple(RecordObject.from_box(o.box, size, size, class_text=o.class_name,
                                          class_label=o.class_id, truncated=o.truncated, mask_png=mask)
                    for o, mask in zip(sample.objects, masks))
    record = RecordImage(encoded=b"", image_format="jpeg", filename=f"{name}.jpg",
                         source_id=source_id, height=size, width=size, objects=objects)
    entry = manifest_entry(sample, pool, source_id)
    if crops:
        entry["tag_crops"] = crops
    sums = {}
    if outputs.scene_folders:  # per-kind pixel statistics (the report's mean and std), of the files
        written = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]  # RGB
        sums = {kind: pixel_sums(plane) for kind, plane in [("image", written), *planes.items()]
                if kind in STATISTICS_KINDS}
    return WrittenSample(name, record, entry, coco, sums)


def scene_planes(sample: Sample, background: np.ndarray | None) -> dict[str, np.ndarray]:
    """The scene outputs of one image (module docstring): what is known of them."""
    union = np.zeros(sample.pixels.shape[:2], bool)
    for obj in sample.objects:
        union |= obj.mask
    planes = {"mask": np.where(union, 255, 0).astype(np.uint8)}
    if background is not None:
        planes["background"] = background
    if sample.layers is not None:
        layers = sample.layers
        planes["layers"] = layers.astype(np.uint8) if int(layers.max(initial=0)) < 256 else layers
    return planes


def _write_scene(sample: Sample, background: np.ndarray | None, folders: dict) -> dict[str, np.ndarray]:
    """Write the scene outputs the worker makes (depth is the parent's); the planes written."""
    written = {}
    if not folders:
        return written
    planes = scene_planes(sample, background)
    for kind, folder in folders.items():
        if kind in planes:
            atomic_write_bytes(os.path.join(folder, f"{sample.spec.name}.png"), encode_png(planes[kind]),
                               durable=False)
            written[kind] = planes[kind]
    return written


def pixel_sums(plane: np.ndarray) -> PixelSums:
    """Pixel count, and per channel the sum and the sum of squares of the values, as exact
    integers (so totals are the same in any order: the same bytes for any number of workers)."""
    channels = plane.reshape(plane.shape[0] * plane.shape[1], -1)
    levels = np.arange(1 << (8 * plane.dtype.itemsize), dtype=np.int64)  # uint8 or uint16 values
    counts = [np.bincount(channels[:, c], minlength=len(levels)) for c in range(channels.shape[1])]
    return (int(channels.shape[0]), tuple(int(n @ levels) for n in counts),
            tuple(int(n @ (levels * levels)) for n in counts))


def _write_tag_crops(sample: Sample, pool: SplitPool, jpeg: bytes, folder: str) -> list[dict]:
    """The upright crops of the objects whose code is known (module docstring)."""
    known = [(index, obj, pool.cutout_by_id[obj.cutout_id]) for index, obj in enumerate(sample.objects)]
    known = [(index, obj, cutout) for index, obj, cutout in known
             if cutout.code and obj.class_name == cutout.code_class and not obj.mirrored
             and not obj.truncated and obj.visible_share >= MIN_CROP_VISIBLE]
    if not known:
        return []
    written = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    size = written.shape[0]
    crops = []
    for index, obj, cutout in known:
        x0, y0 = max(int(obj.box.xmin) - CROP_MARGIN, 0), max(int(obj.box.ymin) - CROP_MARGIN, 0)
        x1 = min(int(np.ceil(obj.box.xmax)) + CROP_MARGIN, size)
        y1 = min(int(np.ceil(obj.box.ymax)) + CROP_MARGIN, size)
        crop = np.ascontiguousarray(np.rot90(written[y0:y1, x0:x1], (cutout.upright_turns + obj.quarter_turns) % 4))
        file = f"{sample.spec.name}_{index}.png"
        atomic_write_bytes(os.path.join(folder, file), encode_png(crop), durable=False)
        crops.append({"file": f"{os.path.basename(folder)}/{file}", "code": cutout.code})
    return crops


def read_written_image(sample: WrittenSample, folder: str) -> bytes:
    """The bytes of the image's JPEG as written in ``folder``."""
    return storage.read_bytes(storage.join(folder, sample.record.filename))


def serialized_example(sample: WrittenSample, encoded: bytes) -> bytes:
    """The image's serialized ``tf.train.Example``, with ``encoded``: the JPEG bytes read back from
    its file (`read_written_image`)."""
    return serialize_example(dataclasses.replace(sample.record, encoded=encoded))


def instance_mask(sample: Sample) -> np.ndarray:
    """One plane: 0 where no object is visible, else the 1-based index of the object (XML order);
    uint16 if there are more than 255 objects. Visible masks never overlap."""
    dtype = np.uint8 if len(sample.objects) < 256 else np.uint16
    plane = np.zeros(sample.pixels.shape[:2], dtype)
    for index, obj in enumerate(sample.objects, start=1):
        plane[obj.mask] = index
    return plane


def manifest_entry(sample: Sample, pool: SplitPool, source_id: str) -> dict:
    """Where the image came from: background file and window, and per object its cutout, blend
    mode, box and truncation; every placement really pasted; how many labelled objects were left
    unlabelled (under --min_visible), re-drawn and dropped as not recognisable (--min_visibility)."""
    background = pool.backgrounds[sample.spec.background]
    return {"name": sample.spec.name, "source_id": source_id,
            "background": {"file": background.path, "window": list(sample.spec.window)},
            "objects": [{"class": o.class_name, "cutout": o.cutout_id, "blend": o.blend,
                         "box": [o.box.xmin, o.box.ymin, o.box.xmax, o.box.ymax],
                         "truncated": o.truncated} for o in sample.objects],
            "placements": [_placement_entry(p, pool) for p in sample.spec.placements],
            "hidden_objects": sample.hidden, "redrawn": sample.redrawn, "invisible_dropped": sample.invisible}


def _placement_entry(placement, pool: SplitPool) -> dict:
    """What was pasted where, labelled or not: cutout, position, scale, blend and augmentation."""
    augment = {key: value for key, value in dataclasses.asdict(placement.augment).items()
               if value not in (0.0, False, ())}
    return {"cutout": pool.cutout_of(placement).cutout_id, "distractor": placement.distractor,
            "x": placement.x, "y": placement.y, "scale": placement.scale, "blend": placement.blend,
            **({"augment": augment} if augment else {})}
