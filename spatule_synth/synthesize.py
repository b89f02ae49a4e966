"""``generate``: labelled cutouts pasted onto crops of object-free photos, split by identity.

Output layout (fixed)::

    OUT/images/{train,eval}/NAME.jpg + NAME.xml    open the folder in labelImg: every box shows
    OUT/annotations/label_map.pbtxt
    OUT/annotations/{train,eval}.record[-SSSSS-of-NNNNN]
    OUT/manifest.json     config, versions, counts, identities and cutouts per split, and per image
                          its background (file + window), cutouts, boxes and blend modes

Data flow: `read_sources` -> `split_keys` (identities, and background photos unless shared) ->
per split `SampleWriters.write_split` (plan, render, write JPEG + XML, serialize the example; on a process pool)
-> the shards and the manifest, written here.
"""

from __future__ import annotations

import collections
import dataclasses
import os

from absl import logging
from tqdm import tqdm

from spatule_synth.config import GenerateConfig
from spatule_synth.execute import SampleWriters, SplitJob
from spatule_synth.coco import assemble_document, write_coco
from spatule_synth.sample_files import SampleOutputs, WrittenSample
from spatule_synth.label_map import LabelMap, read_label_map, write_label_map
from spatule_synth.manifest import write_manifest
from spatule_synth.output_dir import check_output_dir, output_dir_for_run
from spatule_synth.plan import SplitPool, windows_per_background
from spatule_synth.problems import ProblemLog
from spatule_synth.report import write_report
from spatule_synth.sources import SourceSet, read_sources
from spatule_synth.split import SPLITS, SplitError, images_per_split, split_keys
from spatule_synth.tfrecord import ShardedRecordWriter
from spatule_synth.yolo import write_classes


@dataclasses.dataclass
class GenerateResult:
    output_dir: str
    problems: ProblemLog
    pools: dict[str, SplitPool]
    images: dict[str, list[dict]] = dataclasses.field(default_factory=lambda: {s: [] for s in SPLITS})
    records: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    coco: dict[str, str] = dataclasses.field(default_factory=dict)
    report: list[str] = dataclasses.field(default_factory=list)
    manifest_path: str = ""

    def objects_per_class(self, split: str) -> collections.Counter:
        return collections.Counter(obj["class"] for image in self.images[split]
                                   for obj in image["objects"])

    def summary(self) -> str:
        lines = []
        for split in SPLITS:
            images = self.images[split]
            negatives = sum(1 for image in images if not image["objects"])
            blends = collections.Counter(obj["blend"] for image in images for obj in image["objects"])
            classes = ", ".join(f"{name}: {n}" for name, n in sorted(self.objects_per_class(split).items()))
            identities = len({c.identity for c in self.pools[split].cutouts})
            photos = len(self.pools[split].backgrounds)
            lines.append(f"{split}: {len(images)} images ({negatives} negatives), objects: "
                         f"{classes or 'none'}; from {identities} "
                         f"{'identity' if identities == 1 else 'identities'}, {photos} background "
                         f"{'photo' if photos == 1 else 'photos'}")
            if blends:
                lines.append("  blend modes: " + ", ".join(f"{b}: {n}" for b, n in sorted(blends.items())))
        lines.append(f"inputs skipped or noted: {len(self.problems.problems)}")
        lines += ["  " + line for line in self.problems.summary_lines()]
        lines.append(f"images: {os.path.join(self.output_dir, 'images')}/{{train,eval}}/")
        lines += [f"records: {path}" for split in SPLITS for path in self.records.get(split, [])]
        lines += [f"COCO instances: {path}" for path in self.coco.values()]
        if self.report:
            lines.append(f"report: {os.path.join(self.output_dir, 'report', 'index.html')} (stats.json, "
                         "stats.png, galleries)")
        lines.append(f"manifest: {self.manifest_path}")
        return "\n".join(lines)


def split_pools(config: GenerateConfig, sources: SourceSet,
                counts: dict[str, int]) -> dict[str, SplitPool]:
    """Each split's cutouts (by identity) and backgrounds (by photo, unless shared), for
    ``counts[split]`` images."""
    by_identity = split_keys((c.identity for c in sources.cutouts), config.eval_fraction,
                             config.seed, "identities")
    if config.share_backgrounds:
        by_photo = {b.path: split for b in sources.backgrounds for split in SPLITS}
    else:
        by_photo = split_keys((b.path for b in sources.backgrounds), config.eval_fraction,
                              config.seed, "background photos")
    pools = {}
    for split in SPLITS:
        backgrounds = tuple(b for b in sources.backgrounds
                            if config.share_backgrounds or by_photo[b.path] == split)
        pools[split] = SplitPool(
            split, tuple(c for c in sources.cutouts if by_identity[c.identity] == split),
            backgrounds, windows_per_background(counts[split], len(backgrounds)), sources.distractors)
    return pools


def run_generate(config: GenerateConfig) -> GenerateResult:
    """Generate the data set of ``config`` (see the module docstring)."""
    check_output_dir(config.output_dir, config.overwrite, config.labelled_input_dirs)
    label_map = read_label_map(config.label_map_path)
    problems = ProblemLog(config.on_error)
    sources = read_sources(config, label_map, problems)
    counts = images_per_split(config.num_images, config.eval_fraction)
    pools = split_pools(config, sources, counts)
    for split in SPLITS:
        if counts[split] and not (pools[split].backgrounds and
                                  (pools[split].cutouts or config.objects_per_image[1] == 0)):
            raise SplitError(f"the {split} split gets {counts[split]} images but no "
                             f"{'background photo' if not pools[split].backgrounds else 'cutout'}")
    with output_dir_for_run(config.output_dir, config.overwrite,
                            config.labelled_input_dirs):
        return _generate_into(config, label_map, problems, pools, counts)


def _generate_into(config: GenerateConfig, label_map: LabelMap, problems: ProblemLog,
                   pools: dict[str, SplitPool], counts: dict[str, int]) -> GenerateResult:
    result = GenerateResult(config.output_dir, problems, pools)
    os.makedirs(os.path.join(config.output_dir, "annotations"), exist_ok=True)
    jobs, first_source_id = {}, 1
    class_names = tuple(label_map.names) if config.yolo_output else None
    for split in SPLITS:
        folder = os.path.join(config.output_dir, "images", split)
        os.makedirs(folder, exist_ok=True)
        mask_folder = None
        if config.instance_masks:
            mask_folder = os.path.join(config.output_dir, "masks", split)
            os.makedirs(mask_folder, exist_ok=True)
        if class_names is not None:
            write_classes(os.path.join(folder, "classes.txt"), list(class_names))
        outputs = SampleOutputs(folder, mask_folder, class_names, config.jpeg_quality)
        jobs[split] = SplitJob(pools[split], outputs, first_source_id)
        first_source_id += counts[split]
    with SampleWriters(config, jobs, counts) as writers:
        for split in SPLITS:
            prefix = os.path.join(config.output_dir, "annotations", split)
            with ShardedRecordWriter(prefix, config.num_shards) as shards:
                samples = writers.write_split(split, counts[split])
                coco = CocoCollector(label_map) if config.instance_masks else None
                for sample in tqdm(samples, total=counts[split], desc=split, unit="img", disable=None):
                    shards.write_serialized(sample.serialized_example)
                    result.images[split].append(sample.entry)
                    if coco is not None:
                        coco.add(sample, config.canvas_size)
            result.records[split] = shards.paths
            if coco is not None:
                result.coco[split] = coco.write(os.path.join(config.output_dir, "annotations",
                                                             f"{split}_coco.json"))
    write_label_map(label_map, os.path.join(config.output_dir, "annotations", "label_map.pbtxt"))
    manifest = _manifest(config, label_map, result)
    if config.report:
        result.report = write_report(config.output_dir, manifest)
    result.manifest_path = write_manifest(config.output_dir, manifest)
    logging.info("generated %d images", first_source_id - 1)
    return result


class CocoCollector:
    """A split's COCO instances JSON, gathered from the workers' per-image annotations; image ids
    are the records' source ids."""

    def __init__(self, label_map: LabelMap) -> None:
        self.categories = [(item.id, item.name) for item in label_map.items]
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, sample: WrittenSample, size: int) -> None:
        image_id = int(sample.entry["source_id"])
        self.images.append({"id": image_id, "file_name": f"{sample.name}.jpg", "width": size,
                            "height": size})
        self.annotations.extend({"image_id": image_id, **fields} for fields in sample.coco_annotations)

    def write(self, path: str) -> str:
        write_coco(path, assemble_document(self.images, self.annotations, self.categories))
        return path


def _manifest(config: GenerateConfig, label_map: LabelMap, result: GenerateResult) -> dict:
    splits = {}
    for split in SPLITS:
        pool = result.pools[split]
        splits[split] = {
            "images": len(result.images[split]),
            "negatives": sum(1 for image in result.images[split] if not image["objects"]),
            "objects_per_class": dict(sorted(result.objects_per_class(split).items())),
            "identities": sorted({c.identity for c in pool.cutouts}),
            "cutouts": [c.cutout_id for c in pool.cutouts],
            "cutout_sources": {c.cutout_id: {"file": c.source_file, "box": list(c.source_box),
                                             "identity": c.identity} for c in pool.cutouts},
            "backgrounds": [b.path for b in pool.backgrounds],
            "windows_per_background": pool.windows_per_background,
            "records": [os.path.relpath(p, config.output_dir) for p in result.records.get(split, [])],
        }
    return {"mode": "generate", "config": config.as_json(), "seed": config.seed,
            "label_map": [{"id": item.id, "name": item.name} for item in label_map.items],
            "splits": splits, "problems": result.problems.as_json(),
            "images": {split: result.images[split] for split in SPLITS}}
