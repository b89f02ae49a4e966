"""``convert``: labelImg folders -> TFRecord shards + ``label_map.pbtxt`` + manifest.

For the real labelled photos users evaluate (or fine-tune) on. Output layout::

    OUT/annotations/NAME.record[-SSSSS-of-NNNNN]   examples, round-robin over the shards
    OUT/annotations/label_map.pbtxt                the label map the ids refer to
    OUT/manifest.json                              config, versions, counts, problems, examples

Every photo goes through `spatule_synth.core.validation` (the same checks as generate): a photo that
lost a label (a bad box, an unknown class, ...) is skipped whole, never written with its remaining
boxes; a photo with no XML is skipped unless ``unlabelled="negative"``. Images whose XML has no
object are written as negatives (no boxes) unless ``keep_negatives`` is off. With ``tile_size`` > 0
every photo is cut into ``tile_size`` windows at full resolution instead (`spatule_synth.modes.tiles`:
windows overlap by at least ``tile_overlap``; boxes are clipped to each window and marked
truncated; a box with less than ``tile_min_visible`` of its area in a window is left out there and
counted as an unlabelled part; windows with labels are kept, and ``tile_negative_fraction`` of the
object-free ones), so a model trained on 640 crops is evaluated at the scale it was trained on. Source ids are 1, 2, 3, ... in
the sorted input order. ``difficult`` objects are kept, with ``image/object/difficult`` set (the OD
API's evaluators leave them out of the score).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import zlib

from absl import logging
from tqdm import tqdm

from spatule_synth.core.config import ConvertConfig
from spatule_synth.core.images import bytes_for_record, encode_jpeg
from spatule_synth.formats.label_map import LabelMap, read_label_map, write_label_map
from spatule_synth.formats.labelimg import find_pairs, read_labelimg
from spatule_synth.formats.manifest import write_manifest
from spatule_synth.core import storage
from spatule_synth.core.output_dir import OutputWriteError, cannot_write, check_output_dir, output_dir_for_run
from spatule_synth.core.problems import ProblemLog
from spatule_synth.modes.split_from import KINDS, Decision, RunSplit, read_run_split
from spatule_synth.formats.tfrecord import RecordImage, RecordObject, ShardedRecordWriter
from spatule_synth.modes.tiles import choose_negatives, cut_tiles, lost_objects, tile_pixels
from spatule_synth.core.validation import ValidPhoto, load_photo


@dataclasses.dataclass
class ConvertResult:
    """What a convert run did, for the summary and the manifest."""

    output_dir: str
    shard_paths: list[str]
    label_map_path: str
    manifest_path: str = ""
    pairs_found: int = 0
    examples: list[dict] = dataclasses.field(default_factory=list)
    negatives_dropped: int = 0
    unlabelled_parts: int = 0  # with tiles: slivers of objects left unlabelled in kept tiles
    objects_per_class: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    problems: ProblemLog = dataclasses.field(default_factory=ProblemLog)
    split_from: RunSplit | None = None
    split_decisions: list[tuple[str, Decision]] = dataclasses.field(default_factory=list)
    photos: list[dict] = dataclasses.field(default_factory=list)  # with tiles: each photo, whole

    @property
    def negatives_written(self) -> int:
        return sum(1 for example in self.examples if not example["objects"])

    def summary(self) -> str:
        """The one-screen end-of-run summary."""
        lines = [f"convert: {len(self.examples)} examples written from {self.pairs_found} images found "
                 f"({self.negatives_written} negatives without objects"
                 + (f", {self.negatives_dropped} negatives left out" if self.negatives_dropped else "")
                 + ")"]
        if self.unlabelled_parts:
            lines.append(f"  object slivers under --tile_min_visible left unlabelled in kept tiles: "
                         f"{self.unlabelled_parts}")
        for name, count in sorted(self.objects_per_class.items()):
            lines.append(f"  objects of class {name!r}: {count}")
        if self.split_from is not None:
            lines += self._split_from_lines()
        problem_lines = self.problems.summary_lines()
        lines.append(f"  problems: {len(self.problems.problems)}")
        lines += ["  " + line for line in problem_lines]
        lines += [f"  records: {path}" for path in self.shard_paths]
        lines += [f"  label map: {self.label_map_path}", f"  manifest: {self.manifest_path}"]
        return "\n".join(lines)


    def _split_from_lines(self) -> list[str]:
        kinds = collections.Counter((d.keep, d.kind) for _, d in self.split_decisions)
        lines = []
        for keep, verb in ((True, "kept"), (False, "dropped")):
            total = sum(n for (kept, _), n in kinds.items() if kept == keep)
            parts = [f"{KINDS[kind]}: {n}" for (kept, kind), n in sorted(kinds.items()) if kept == keep]
            lines.append(f"  --split_from {self.split_from.run}: {verb} {total} "
                         f"{'photo' if total == 1 else 'photos'}"
                         + (f" ({'; '.join(parts)})" if parts else ""))
        return lines


def record_for(photo: ValidPhoto, source_id: int) -> RecordImage:
    """The TFRecord example of one validated photo."""
    image = photo.image
    encoded, image_format = bytes_for_record(photo.file_bytes, image)
    objects = tuple(
        RecordObject.from_box(obj.box, image.width, image.height, class_text=obj.class_name,
                              class_label=obj.class_id, difficult=obj.difficult,
                              truncated=obj.truncated, view=obj.pose)
        for obj in photo.objects)
    return RecordImage(encoded=encoded, image_format=image_format,
                       filename=os.path.basename(photo.image_path),
                       source_id=str(source_id), height=image.height, width=image.width,
                       objects=objects)


def run_convert(config: ConvertConfig) -> ConvertResult:
    """Convert the labelImg folders of ``config``; raises `RunStopped` under ``on_error='fail'``."""
    input_dirs = config.input_dirs + config.annotation_dirs
    check_output_dir(config.output_dir, config.overwrite, input_dirs)
    label_map = read_label_map(config.label_map_path)
    config.input_rules.check(label_map)
    run_split = read_run_split(config.split_from) if config.split_from else None
    problems = ProblemLog(config.on_error)
    pairs = find_pairs(config.input_dirs, config.annotation_dirs, problems)
    if not pairs:
        logging.warning("no images found in %s", ", ".join(config.input_dirs))
    replacing = not storage.is_empty_or_missing(config.output_dir)
    try:
        with output_dir_for_run(config.output_dir, config.overwrite, input_dirs):
            return _convert_into(config, label_map, problems, pairs, run_split)
    except OSError as error:
        after = (f"the previous output in {config.output_dir} is kept as it was"
                 if replacing and not storage.is_url(config.output_dir) else
                 f"{config.output_dir} holds no finished output (no manifest.json); fix the cause "
                 "and rerun with --overwrite")
        raise OutputWriteError(f"{cannot_write(error)}. The run stopped: {after}") from error


def _convert_into(config: ConvertConfig, label_map: LabelMap, problems: ProblemLog,
                  pairs: list, run_split: RunSplit | None) -> ConvertResult:
    annotations_dir = storage.join(config.output_dir, "annotations")
    storage.makedirs(annotations_dir)
    prefix = storage.join(annotations_dir, config.record_name)
    with ShardedRecordWriter(prefix, config.num_shards) as writer:
        result = ConvertResult(config.output_dir, writer.paths,
                               storage.join(annotations_dir, "label_map.pbtxt"),
                               pairs_found=len(pairs), problems=problems, split_from=run_split)
        for pair in tqdm(pairs, desc="convert", unit="img", disable=None):
            photo = load_photo(read_labelimg(pair, problems), label_map, config.input_rules, problems)
            if photo is None:
                continue
            if run_split is not None:
                decision = run_split.decide(photo)
                result.split_decisions.append((photo.image_path, decision))
                if not decision.keep:
                    continue
            if not photo.objects and not config.keep_negatives:
                result.negatives_dropped += 1
                continue
            if config.tile_size:
                _write_tiles(photo, config, writer, result)
                continue
            record = record_for(photo, source_id=len(result.examples) + 1)
            writer.write(record)
            result.objects_per_class.update(obj.class_name for obj in photo.objects)
            result.examples.append(_example_entry(photo, record))
    write_label_map(label_map, result.label_map_path)
    result.manifest_path = write_manifest(config.output_dir, _manifest(config, label_map, result))
    return result


def _write_tiles(photo: ValidPhoto, config: ConvertConfig, writer: ShardedRecordWriter,
                 result: ConvertResult) -> None:
    """The windows of one photo that carry labels, plus the chosen share of empty ones."""
    image, path = photo.image, photo.image_path
    objects = [(o.class_name, o.class_id, o.box, o.truncated) for o in photo.objects]
    tiles = cut_tiles(image.width, image.height, objects, config.tile_size, config.tile_overlap,
                      config.tile_min_visible)
    for index in lost_objects(tiles, len(objects)):
        obj = photo.objects[index]
        result.problems.report(photo.problem("tile_lost", f"box ({obj.box}) is under "
                                             f"--tile_min_visible={config.tile_min_visible} in every "
                                             f"{config.tile_size} px tile; it is in no tile's labels "
                                             "(raise --tile_overlap)", obj))
    result.photos.append(_photo_entry(photo))  # its whole boxes: --mode=evaluate scores photos
    seed = zlib.crc32(os.path.basename(path).encode("utf-8", "surrogateescape"))
    negatives = {id(tile) for tile in choose_negatives(tiles, config.tile_negative_fraction, seed)}
    stem = os.path.splitext(os.path.basename(path))[0]
    for tile in tiles:
        if not tile.objects and id(tile) not in negatives:
            continue
        result.unlabelled_parts += tile.unlabelled_parts
        size = tile.size
        record = RecordImage(
            encoded=encode_jpeg(tile_pixels(image.pixels, tile)), image_format="jpeg",
            filename=f"{stem}_x{tile.x}_y{tile.y}.jpg", source_id=str(len(result.examples) + 1),
            height=size, width=size,
            objects=tuple(RecordObject.from_box(o.box, size, size, class_text=o.name,
                                                class_label=o.class_id, truncated=o.truncated,
                                                difficult=photo.objects[o.source_index].difficult,
                                                view=photo.objects[o.source_index].pose)
                          for o in tile.objects))
        writer.write(record)
        result.objects_per_class.update(o.name for o in tile.objects)
        result.examples.append({"source_id": record.source_id, "image": path, "tile": [tile.x, tile.y, size],
                                "xml": photo.annotation_path, "width": size, "height": size,
                                "unlabelled_parts": tile.unlabelled_parts,
                                "objects": [{"name": o.name, "object_index":
                                             photo.objects[o.source_index].object_index,
                                             "box": [o.box.xmin, o.box.ymin, o.box.xmax, o.box.ymax],
                                             "truncated": o.truncated} for o in tile.objects]})


def _example_entry(photo: ValidPhoto, record: RecordImage) -> dict:
    return {"source_id": record.source_id, **_photo_entry(photo)}


def _photo_entry(photo: ValidPhoto) -> dict:
    """A photo, its size and its labelled objects (boxes in its pixels)."""
    return {"image": photo.image_path,
            "xml": photo.annotation_path, "width": photo.image.width, "height": photo.image.height,
            "objects": [{"name": obj.class_name, "object_index": obj.object_index,
                         "box": [obj.box.xmin, obj.box.ymin, obj.box.xmax, obj.box.ymax],
                         "truncated": obj.truncated, "difficult": obj.difficult}
                        for obj in photo.objects]}


def _manifest(config: ConvertConfig, label_map: LabelMap, result: ConvertResult) -> dict:
    return {
        "mode": "convert",
        "config": config.as_json(),
        "label_map": [{"id": item.id, "name": item.name} for item in label_map.items],
        "counts": {"images_found": result.pairs_found, "examples": len(result.examples),
                   "negatives_written": result.negatives_written,
                   "negatives_dropped": result.negatives_dropped,
                   "unlabelled_parts": result.unlabelled_parts,
                   "objects_per_class": dict(sorted(result.objects_per_class.items())),
                   "problems": result.problems.counts()},
        "records": [os.path.relpath(path, config.output_dir) for path in result.shard_paths],
        "problems": result.problems.as_json(),
        **({"split_from": {"run": result.split_from.run, "identity": result.split_from.identity,
                           "photos": [{"image": path, "kept": d.keep, "kind": d.kind, "reason": d.reason}
                                      for path, d in result.split_decisions]}}
           if result.split_from is not None else {}),
        **({"photos": result.photos} if config.tile_size else {}),
        "examples": result.examples,
    }
