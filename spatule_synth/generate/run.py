"""``generate``: labelled cutouts pasted onto crops of object-free photos, split by identity.

Output layout (fixed)::

    OUT/images/{train,eval}/NAME.jpg + NAME.xml    open the folder in labelImg: every box shows
    OUT/annotations/label_map.pbtxt
    OUT/annotations/{train,eval}.record[-SSSSS-of-NNNNN]
    OUT/manifest.json     config, versions, counts, identities and cutouts per split, and per image
                          its background (file + window), cutouts, boxes and blend modes

With ``--scene_outputs`` also ``OUT/{background,mask,layers}/SPLIT/NAME.png`` (written by the
workers, `spatule_synth.generate.sample_files`) and ``OUT/depth/SPLIT/NAME.png`` (written here, by
the parent, as each chunk is assembled: `spatule_synth.core.depth`), and the exact per-kind pixel
mean and std of the written files in the manifest (``pixel_stats``, `PixelTotals`).
``--layout=grid`` (`grid_pools`, `spatule_synth.generate.grid`) replaces ``--num_images`` by the
size of each split's grid.

Data flow: `read_sources` -> `split_pools` (identities, and background photos unless shared) ->
chunks of images per split, written by a runner (`spatule_synth.generate.execute.LocalRunner` or
`spatule_synth.generate.beam_runner.BeamRunner`: plan, render, write JPEG + XML + the chunk's part file) ->
`SplitAssembly` appends each finished chunk, in index order, to the shards, the per-image manifest
lines and the COCO file -> report -> manifest, written last.

``OUT`` may be a URL (``gs://``, ``memory://``...): every file then goes through
`spatule_synth.core.storage`, written in one request under its final name (no rename); image
workers write into the store directly, or, for a store only this process sees, into a local
staging folder that `StagedChunks` publishes chunk by chunk.

Memory is flat in ``--num_images``: per-image data streams through scratch files. The run is
crash-safe and resumable (`spatule_synth.generate.progress`): ``--resume`` writes only the missing chunks
and assembles the rest again from their part files, so its output equals an uninterrupted run's.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import tempfile
from typing import IO

import cv2
import numpy as np
from absl import logging
from tqdm import tqdm

from spatule_synth.core import storage
from spatule_synth.core.config import GenerateConfig, OutputConfig, SplitConfig
from spatule_synth.core.depth import DEPTH_LEVELS
from spatule_synth.core.images import encode_png
from spatule_synth.formats.coco import CocoStreamWriter
from spatule_synth.generate.execute import ImageSettings, ImageWorkers, LocalRunner, SplitJob
from spatule_synth.generate.identities import content_key
from spatule_synth.formats.label_map import LabelMap, read_label_map, write_label_map
from spatule_synth.formats.labels_csv import HEADER as CROP_HEADER
from spatule_synth.formats.labels_csv import csv_row
from spatule_synth.formats.manifest import MANIFEST_NAME, JsonLines, read_manifest_head, write_manifest
from spatule_synth.core.output_dir import OutputDirError, OutputWriteError, atomic_open, atomic_write_bytes, \
    cannot_write, check_output_dir, output_dir_for_run, remove_replaced_leftovers
from spatule_synth.generate.grid import GRID_CHUNK, grid_shape
from spatule_synth.generate.plan import SplitPool, windows_per_background
from spatule_synth.generate.gan_source import GAN_PREFIX
from spatule_synth.generate.rendered_source import RENDERED_PREFIX
from spatule_synth.core.problems import ProblemLog
from spatule_synth.generate.progress import (PROGRESS_DIR, TEMPORARY_PREFIX, Chunk, Progress, describe_changes,
                                             fingerprint, is_unfinished_run, remove_temporary_files,
                                             run_description, split_chunks)
from spatule_synth.modes.report import generated_images, write_report
from spatule_synth.generate.sample_files import STATISTICS_KINDS, SampleOutputs, WrittenSample, pixel_sums, \
    read_written_image, serialized_example
from spatule_synth.generate.sources import SourceSet, read_sources
from spatule_synth.generate.split import SPLITS, SplitError, images_per_split, split_all
from spatule_synth.formats.tfrecord import ShardedRecordWriter
from spatule_synth.formats.yolo import write_classes

TAG_CROPS = "tag_crops"  # OUT/tag_crops/{train,eval}/ and labels.csv (--tag_crops)


@dataclasses.dataclass
class SplitCounts:
    """Running totals of one split's images, for the summary and the manifest."""

    images: int = 0
    negatives: int = 0
    objects_per_class: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    blends: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    placements: int = 0  # labelled placements really pasted, plus those dropped as not recognisable
    redrawn: int = 0
    invisible_dropped: int = 0
    rendered_objects: int = 0  # labelled objects that are rendered tags
    generated_objects: int = 0  # labelled objects made by --gan_model
    tag_crops: int = 0

    def add(self, entry: dict) -> None:
        self.images += 1
        self.placements += sum(not p["distractor"] for p in entry["placements"]) + entry["invisible_dropped"]
        self.redrawn += entry["redrawn"]
        self.invisible_dropped += entry["invisible_dropped"]
        self.negatives += not entry["objects"]
        self.objects_per_class.update(obj["class"] for obj in entry["objects"])
        self.blends.update(obj["blend"] for obj in entry["objects"])
        self.rendered_objects += sum(obj["cutout"].startswith(RENDERED_PREFIX) for obj in entry["objects"])
        self.generated_objects += sum(obj["cutout"].startswith(GAN_PREFIX) for obj in entry["objects"])
        self.tag_crops += len(entry.get("tag_crops", ()))


@dataclasses.dataclass
class GenerateResult:
    output_dir: str
    problems: ProblemLog
    pools: dict[str, SplitPool]
    counts: dict[str, SplitCounts] = dataclasses.field(
        default_factory=lambda: {s: SplitCounts() for s in SPLITS})
    records: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    coco: dict[str, str] = dataclasses.field(default_factory=dict)
    report: list[str] = dataclasses.field(default_factory=list)
    manifest_path: str = ""
    already_complete: bool = False  # --resume found a finished run: nothing was written
    crops_path: str = ""  # labels.csv of --tag_crops
    eval_fraction: float = 0.0

    def _eval_share_line(self) -> str:
        parts = []
        for name, (in_eval, total) in eval_shares(self.pools).items():
            parts.append(f"{name.replace('_', ' ')} {in_eval} of {total} ({in_eval / max(total, 1):.0%})")
        return f"eval share: {', '.join(parts)} (--eval_fraction={self.eval_fraction:g}: each drawn alone)"

    def summary(self) -> str:
        if self.already_complete:
            return (f"nothing to resume: {self.output_dir} is already complete with these settings "
                    f"(manifest: {self.manifest_path})")
        lines = []
        for split in SPLITS:
            counts = self.counts[split]
            classes = ", ".join(f"{name}: {n}" for name, n in sorted(counts.objects_per_class.items()))
            identities = len({c.identity for c in self.pools[split].cutouts})
            photos = len(self.pools[split].backgrounds)
            lines.append(f"{split}: {counts.images} images ({counts.negatives} negatives), objects: "
                         f"{classes or 'none'}; from {identities} "
                         f"{'identity' if identities == 1 else 'identities'}, {photos} background "
                         f"{'photo' if photos == 1 else 'photos'}")
            rendered = sum(c.origin == "rendered" for c in self.pools[split].cutouts)
            if rendered:
                lines.append(f"  rendered tags: {counts.rendered_objects} of the labelled objects, "
                             f"from {rendered} codes")
            generated = sum(c.origin == "gan" for c in self.pools[split].cutouts)
            if generated:
                lines.append(f"  generated instances: {counts.generated_objects} of the labelled "
                             f"objects, from {generated} instances")
            if counts.blends:
                lines.append("  blend modes: " + ", ".join(f"{b}: {n}"
                                                           for b, n in sorted(counts.blends.items())))
            if counts.redrawn:
                lines.append(f"  re-drawn as not recognisable: {counts.redrawn} of {counts.placements} "
                             f"placements ({counts.redrawn / counts.placements:.1%}), "
                             f"{counts.invisible_dropped} dropped")
        lines.append(self._eval_share_line())
        lines.append(f"inputs skipped or noted: {len(self.problems.problems)}")
        lines += ["  " + line for line in self.problems.summary_lines()]
        lines.append(f"images: {os.path.join(self.output_dir, 'images')}/{{train,eval}}/")
        lines += [f"records: {path}" for split in SPLITS for path in self.records.get(split, [])]
        lines += [f"COCO instances: {path}" for path in self.coco.values()]
        if self.crops_path:
            crops = sum(self.counts[split].tag_crops for split in SPLITS)
            lines.append(f"tag crops: {crops}, listed in {self.crops_path}")
        if self.report:
            lines.append(f"report: {os.path.join(self.output_dir, 'report', 'index.html')} (stats.json, "
                         "stats.png, galleries)")
        lines.append(f"manifest: {self.manifest_path}")
        return "\n".join(lines)


def _in_eval(pools: dict[str, SplitPool], key) -> tuple[int, int]:
    """How many distinct ``key(pool)`` items are in eval, and in all."""
    train, evaluation = set(key(pools["train"])), set(key(pools["eval"]))
    return len(evaluation), len(train | evaluation)


def split_pools(config: SplitConfig, seed: int, sources: SourceSet,
                counts: dict[str, int]) -> dict[str, SplitPool]:
    """Each split's cutouts (by identity) and backgrounds (by photo content, unless shared), for
    ``counts[split]`` images (see `spatule_synth.generate.split`)."""
    photo_of = {b.path: content_key(b.path) for b in sources.backgrounds}
    train_only = {c.identity for c in sources.cutouts if c.origin == "gan" and not config.gan_in_eval}
    keys = {"identities": [c.identity for c in sources.cutouts if c.identity not in train_only]}
    if not config.share_backgrounds:
        keys["background photos"] = list(photo_of.values())
    sides = split_all(keys, config.eval_fraction, seed)
    by_identity = {**sides["identities"], **dict.fromkeys(train_only, "train")}
    by_photo = sides.get("background photos")
    pools = {}
    for split in SPLITS:
        backgrounds = tuple(b for b in sources.backgrounds
                            if by_photo is None or by_photo[photo_of[b.path]] == split)
        pools[split] = SplitPool(
            split, tuple(c for c in sources.cutouts if by_identity[c.identity] == split),
            backgrounds, windows_per_background(counts[split], len(backgrounds)), sources.distractors)
    return pools


def grid_pools(config: GenerateConfig, sources: SourceSet
               ) -> tuple[dict[str, SplitPool], dict[str, int], dict[str, list[Chunk]]]:
    """``--layout=grid``: each split's pool (split as in the random layout), its image count (the
    size of its grid: `spatule_synth.generate.grid`) and chunks of `GRID_CHUNK` images."""
    pools = split_pools(config.split, config.seed, sources, {split: 0 for split in SPLITS})
    counts, chunks = {}, {}
    for split in SPLITS:
        shape = grid_shape(config.placement, pools[split])
        pools[split] = dataclasses.replace(pools[split], windows_per_background=max(
            1, len(shape.variants) * shape.positions))
        counts[split] = shape.images
        chunks[split] = split_chunks(split, counts[split], GRID_CHUNK)
    if not any(counts.values()):
        pool = pools["train"]
        raise SplitError("--layout=grid: the grid is empty: " + (
            "no background photo" if not pool.backgrounds else "no cutout") + " in the train split")
    return pools, counts, chunks


def eval_shares(pools: dict[str, SplitPool]) -> dict[str, list[int]]:
    """``[in eval, in all]`` for identities and for background photos: the realised split."""
    return {"identities": list(_in_eval(pools, lambda p: (c.identity for c in p.cutouts
                                                          if c.origin != "gan"))),
            "background_photos": list(_in_eval(pools, lambda p: (b.path for b in p.backgrounds)))}


def run_generate(config: GenerateConfig) -> GenerateResult:
    """Generate the data set of ``config`` (see the module docstring)."""
    finished = _finished_run(config)
    if finished is not None:
        return finished
    resuming = config.execution.resume and is_unfinished_run(config.output.output_dir)
    if not resuming:
        if is_unfinished_run(config.output.output_dir) and not config.execution.overwrite:
            raise OutputDirError(_unfinished_message(config.output.output_dir))
        check_output_dir(config.output.output_dir, config.execution.overwrite,
                         config.inputs.labelled_input_dirs)
    local = config.execution.runner == "local"
    with ImageWorkers(config.execution.worker_count if local else 1) as workers:
        if config.inputs.mask == "box":  # a short read stage: start the workers meanwhile
            workers.start()
        return _read_and_generate(config, workers, resuming)


def _read_and_generate(config: GenerateConfig, workers: ImageWorkers, resuming: bool) -> GenerateResult:
    label_map = read_label_map(config.inputs.label_map_path)
    depth_model = None
    if "depth" in config.output.scene_outputs:  # loaded first: a bad model stops the run at once
        from spatule_synth.core.depth import load_depth_model  # TensorFlow loads only when asked for
        depth_model = load_depth_model(config.output.depth_model, config.placement.canvas_size)
    problems = ProblemLog(config.inputs.on_error)
    sources = read_sources(config.inputs, config.split, config.placement, label_map, problems,
                           config.execution.worker_count, config.seed)
    if config.placement.layout == "grid":
        pools, counts, chunks = grid_pools(config, sources)
    else:
        counts = images_per_split(config.output.num_images, config.split.eval_fraction)
        pools = split_pools(config.split, config.seed, sources, counts)
        for split in SPLITS:
            if counts[split] and not (pools[split].backgrounds and
                                      (pools[split].cutouts or config.placement.objects_per_image[1] == 0)):
                raise SplitError(f"the {split} split gets {counts[split]} images but no "
                                 f"{'background photo' if not pools[split].backgrounds else 'cutout'}")
        chunks = {split: split_chunks(split, counts[split], pools[split].windows_per_background)
                  for split in SPLITS}
    description = run_description(_as_json(config), _inputs_fingerprint(config, pools),
                                  chunks)
    progress = Progress(config.output.output_dir)
    try:
        if resuming:
            changes = describe_changes(progress.read_run_file(), description)
            if changes:
                raise OutputDirError(
                    f"cannot resume {config.output.output_dir}: it was started with other settings, "
                    f"software or inputs ({'; '.join(changes)}); a resumed run would not match an "
                    "uninterrupted one. Rerun with the original flags, or pass --overwrite "
                    "instead of --resume to start again")
            with progress.locked():
                removed = remove_temporary_files(config.output.output_dir)
                logging.info("resuming %s: %s; %d temporary files of the interrupted run removed",
                             config.output.output_dir, _finished_images_text(progress), removed)
                result = _generate_into(config, label_map, problems, pools, counts, chunks,
                                        progress, workers, depth_model)
            for leftover in remove_replaced_leftovers(config.output.output_dir):
                logging.info("deleted %s, the output an interrupted --overwrite run had moved aside",
                             leftover)
        else:
            if progress.exists():  # --overwrite: never take a directory from a run still writing it
                with progress.locked():
                    pass
            with output_dir_for_run(config.output.output_dir, config.execution.overwrite, config.inputs.labelled_input_dirs):
                progress.create(description, SPLITS)
                with progress.locked():
                    result = _generate_into(config, label_map, problems, pools, counts, chunks,
                                            progress, workers, depth_model)
    except OSError as error:
        raise OutputWriteError(_stopped_message(config, error)) from error
    progress.remove()  # the manifest is written: the run is complete
    return result


def _finished_run(config: GenerateConfig) -> GenerateResult | None:
    """With ``--resume`` on a finished run of the same settings: its result (nothing to do)."""
    if not config.execution.resume or not storage.exists(storage.join(config.output.output_dir, MANIFEST_NAME)):
        return None
    try:
        manifest = read_manifest_head(config.output.output_dir)
    except (OSError, ValueError):
        return None  # not a readable manifest: handled as without --resume
    if manifest.get("mode") != "generate" or manifest.get("config") != _as_json(config):
        return None  # not this run: handled as without --resume
    progress = Progress(config.output.output_dir)
    if progress.exists():  # killed after its manifest, before tidying up
        with progress.locked():
            remove_temporary_files(config.output.output_dir)
        progress.remove()
    return GenerateResult(config.output.output_dir, ProblemLog(config.inputs.on_error), {}, already_complete=True,
                          manifest_path=storage.join(config.output.output_dir, MANIFEST_NAME))


def _as_json(config: GenerateConfig) -> dict:
    """``config.as_json()`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(config.as_json()))


def _inputs_fingerprint(config: GenerateConfig, pools: dict[str, SplitPool]) -> str:
    """What the images depend on besides the flags: every cutout as read (classes, pixels and
    masks: this covers changed photos, annotation files and mask models alike) and the background
    photos (path, size, modification time); not how they were split (that follows from the flags).
    """
    cutouts = {}
    for cutout in (c for pool in pools.values() for c in pool.cutouts + pool.distractors):
        digest = hashlib.sha256(cutout.pixels.tobytes())
        digest.update(cutout.alpha.tobytes())
        for part in cutout.parts:
            digest.update(part.mask.tobytes())
        cutouts[cutout.cutout_id] = [cutout.identity, list(cutout.source_box),
                                     [[part.class_name, part.class_id, part.object_index] for part in cutout.parts],
                                     digest.hexdigest()]
    backgrounds = sorted({b.path for pool in pools.values() for b in pool.backgrounds})
    return fingerprint([sorted(cutouts.items()), backgrounds], [config.inputs.label_map_path, *backgrounds])


def _finished_images_text(progress: Progress) -> str:
    done = progress.finished_images()
    total = {split: sum(stop - start for start, stop in chunks)
             for split, chunks in progress.read_run_file().get("chunks", {}).items()}
    return ", ".join(f"{split} {done.get(split, 0)} of {total[split]} images" for split in total)


def _unfinished_message(output_dir: str) -> str:
    try:
        written = f" ({_finished_images_text(Progress(output_dir))} written)"
    except (OutputDirError, KeyError, TypeError, AttributeError):
        written = ""
    return (f"output directory {output_dir} holds an unfinished run{written} and no manifest: it "
            "was interrupted. Pass --resume (with the same flags) to finish it, or --overwrite to "
            "start again")


def _stopped_message(config: GenerateConfig, error: OSError) -> str:
    if is_unfinished_run(config.output.output_dir):
        next_step = ("the images finished so far are kept: free some space (or fix the "
                     "permissions) and rerun the same command with --resume")
    else:
        next_step = "fix the cause and rerun"
    return (f"{cannot_write(error)}. The run stopped unfinished, so {config.output.output_dir} "
            f"has no manifest.json; {next_step}")


def _generate_into(config: GenerateConfig, label_map: LabelMap, problems: ProblemLog,
                   pools: dict[str, SplitPool], counts: dict[str, int],
                   chunks: dict[str, list[Chunk]], progress: Progress,
                   workers: ImageWorkers, depth_model=None) -> GenerateResult:
    result = GenerateResult(config.output.output_dir, problems, pools, eval_fraction=config.split.eval_fraction)
    output_dir = config.output.output_dir
    storage.makedirs(storage.join(output_dir, "annotations"))
    every_chunk = [chunk for split in SPLITS for chunk in chunks[split]]
    pending = {chunk for chunk in every_chunk if not progress.is_done(chunk)}
    with contextlib.ExitStack() as stack:
        staging = None
        if not storage.visible_to_other_processes(output_dir) and (
                workers.count > 1 or config.execution.runner == "beam"):
            staging = StagedChunks(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="spatule_synth_staging_")), progress)
        worker_dir = staging.folder if staging else output_dir
        jobs = _split_jobs(config, label_map, pools, counts, worker_dir)
        crop_list = None
        if config.output.tag_crops:  # the reading dataset's index, in image order
            result.crops_path = storage.join(output_dir, TAG_CROPS, "labels.csv")
            crop_list = stack.enter_context(atomic_open(result.crops_path, durable=False))
            crop_list.write(csv_row(CROP_HEADER))
        assemblies = {split: stack.enter_context(SplitAssembly(
            split, config.output, config.placement.canvas_size, label_map, progress, result.counts[split],
            crop_list, depth_model)) for split in SPLITS}
        runner = stack.enter_context(_runner(config, jobs, every_chunk, pending, workers, worker_dir))
        with tqdm(total=sum(counts.values()), unit="img", disable=None) as bar:
            for chunk in runner.finished_chunks():
                samples = (staging.publish(chunk) if staging and chunk in pending
                           else progress.read_part(chunk))
                assemblies[chunk.split].add(samples)
                bar.update(chunk.stop - chunk.start)
        for split, assembly in assemblies.items():
            result.records[split] = assembly.finish()
            if assembly.coco is not None:
                result.coco[split] = assembly.coco.path
        write_label_map(label_map, storage.join(output_dir, "annotations", "label_map.pbtxt"))
        manifest = _manifest(config, label_map, result,
                             {split: assembly.entries for split, assembly in assemblies.items()},
                             {split: assembly.pixel_totals.statistics() for split, assembly in assemblies.items()})
        if config.output.report:
            images = {split: (result.counts[split].images,
                              generated_images(assemblies[split].entries, config.placement.canvas_size, split))
                      for split in SPLITS}
            result.report = write_report(config.output.output_dir, manifest, images)
        result.manifest_path = write_manifest(config.output.output_dir, manifest)
    logging.info("generated %d images", sum(counts.values()))
    return result


def _split_jobs(config: GenerateConfig, label_map: LabelMap, pools: dict[str, SplitPool],
                counts: dict[str, int], worker_dir: str) -> dict[str, SplitJob]:
    """Each split's job for the image workers, which write under ``worker_dir`` (the output
    directory, or `StagedChunks`' folder); the folders are created here."""
    jobs, first_source_id = {}, 1
    class_names = tuple(label_map.names) if config.output.yolo_output else None
    for split in SPLITS:
        def folder_of(kind: str) -> str:
            folder = storage.join(worker_dir, kind, split)
            storage.makedirs(folder)
            return folder

        folder = folder_of("images")
        if class_names is not None:  # beside the images, in the output directory itself
            storage.makedirs(storage.join(config.output.output_dir, "images", split))
            write_classes(storage.join(config.output.output_dir, "images", split, "classes.txt"),
                          list(class_names))
        outputs = SampleOutputs(folder, folder_of("masks") if config.output.instance_masks else None,
                                class_names, config.output.jpeg_quality,
                                folder_of(TAG_CROPS) if config.output.tag_crops else None,
                                {kind: folder_of(kind) for kind in config.output.scene_outputs})
        jobs[split] = SplitJob(pools[split], outputs, first_source_id)
        first_source_id += counts[split]
    return jobs


class StagedChunks:
    """Where the image workers write when the output directory is a store no other process sees
    (``memory://``): a local folder, from which the parent sends each finished chunk's files to
    the store, and then its part file (so the store's part files keep their meaning: that chunk's
    files are all there)."""

    def __init__(self, folder: str, progress: Progress) -> None:
        self.folder, self.progress = folder, progress
        self.local_progress = Progress(folder)
        self.local_progress.create({}, SPLITS)

    def publish(self, chunk: Chunk) -> list[WrittenSample]:
        """Send every finished file the workers have written so far (this chunk's, and perhaps
        some of later chunks': they are whole too) to the store, then the chunk's part file; the
        chunk's samples."""
        samples = self.local_progress.read_part(chunk)
        for name in storage.files_under(self.folder):
            if name.startswith(PROGRESS_DIR + "/") or os.path.basename(name).startswith(TEMPORARY_PREFIX):
                continue
            path = os.path.join(self.folder, name)
            storage.put_file(path, storage.join(self.progress.output_dir, name))
            os.unlink(path)
        self.progress.write_part(chunk, samples)
        storage.remove(self.local_progress.part_path(chunk))
        return samples


def _runner(config: GenerateConfig, jobs: dict[str, SplitJob], chunks: list[Chunk], pending: set[Chunk],
            workers: ImageWorkers, worker_dir: str):
    settings = dataclasses.replace(ImageSettings.of(config), output_dir=worker_dir)
    if config.execution.runner == "beam":
        from spatule_synth.generate.beam_runner import BeamRunner  # Beam only loads when asked for
        return BeamRunner(settings, config.execution, jobs, chunks, pending)
    return LocalRunner(settings, workers, jobs, chunks, pending)


class SplitAssembly(contextlib.AbstractContextManager):
    """One split's shards, per-image manifest lines and COCO file, appended chunk by chunk in index
    order; the shards and the COCO file get their final names in `finish`."""

    def __init__(self, split: str, config: OutputConfig, canvas_size: int, label_map: LabelMap,
                 progress: Progress, counts: SplitCounts, crop_list: IO[bytes] | None = None,
                 depth_model=None) -> None:
        self.split, self.crop_list = split, crop_list
        self.depth_model = depth_model  # `spatule_synth.core.depth.DepthModel` (--scene_outputs=depth)
        self.depth_folder = storage.join(config.output_dir, "depth", split)
        self.pixel_totals = PixelTotals()
        self.counts = counts
        self.canvas_size = canvas_size
        self.folder = storage.join(config.output_dir, "images", split)
        annotations = storage.join(config.output_dir, "annotations")
        self.shards = ShardedRecordWriter(os.path.join(annotations, split), config.num_shards)
        self.shards.__enter__()
        self.entries = JsonLines(tempfile.TemporaryFile(dir=progress.scratch_dir))
        self.coco = CocoStreamWriter(os.path.join(annotations, f"{split}_coco.json"),
                                     [(item.id, item.name) for item in label_map.items],
                                     progress.scratch_dir) if config.instance_masks else None
        self._finished = False

    def add(self, samples: list[WrittenSample]) -> None:
        for sample in samples:
            jpeg = read_written_image(sample, self.folder)
            self.shards.write_serialized(serialized_example(sample, jpeg))
            self.pixel_totals.add(sample.pixel_sums)
            if self.depth_model is not None:
                self._write_depth(sample, jpeg)
            self.entries.append(sample.entry)
            self.counts.add(sample.entry)
            for crop in sample.entry.get("tag_crops", ()):
                self.crop_list.write(csv_row([crop["file"], crop["code"], self.split]))
            if self.coco is not None:
                self.coco.add({"id": int(sample.entry["source_id"]), "file_name": f"{sample.name}.jpg",
                               "width": self.canvas_size, "height": self.canvas_size},
                              sample.coco_annotations)

    def _write_depth(self, sample: WrittenSample, jpeg: bytes) -> None:
        """The depth map of the written image (`spatule_synth.core.depth`), its range in the
        manifest entry and its pixel statistics."""
        from spatule_synth.core.depth import depth_png_plane  # pylint: disable=import-outside-toplevel
        rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        plane, lo, hi = depth_png_plane(self.depth_model.depth(rgb))
        atomic_write_bytes(os.path.join(self.depth_folder, f"{sample.name}.png"), encode_png(plane),
                           durable=False)
        sample.entry["depth_range"] = [lo, hi]
        self.pixel_totals.add({"depth": pixel_sums(plane)})

    def finish(self) -> list[str]:
        """Give the shards and the COCO file their final names; the shard paths."""
        self.shards.__exit__(None, None, None)
        self._finished = True
        if self.coco is not None:
            self.coco.close()
        return self.shards.paths

    def __exit__(self, exc_type, exc, traceback) -> None:
        if not self._finished:  # the run failed: no shard gets its final name
            self.shards.__exit__(exc_type or RuntimeError, exc, traceback)
        self.entries.handle.close()


class PixelTotals:
    """Exact per-kind pixel sums of a split's written files (``--scene_outputs``: the decoded
    JPEG, the PNGs), and from them each kind's per-channel mean and standard deviation as
    fractions of full scale (255, or 65535 for depth, whose PNG values are each map stretched to
    its own range): the numbers a training pipeline that reads these files normalises with."""

    def __init__(self) -> None:
        self.totals: dict[str, list] = {}  # kind -> [pixels, sums, sums of squares]

    def add(self, sums: dict) -> None:
        for kind, (count, total, squares) in sums.items():
            known = self.totals.setdefault(kind, [0, [0] * len(total), [0] * len(total)])
            known[0] += count
            known[1] = [a + b for a, b in zip(known[1], total)]
            known[2] = [a + b for a, b in zip(known[2], squares)]

    def statistics(self) -> dict:
        """kind -> {"mean": [...], "std": [...]} per channel, in [0, 1] units; kinds in a fixed order."""
        found = {}
        for kind in (*STATISTICS_KINDS, "depth"):
            if kind not in self.totals or not self.totals[kind][0]:
                continue
            count, total, squares = self.totals[kind]
            full = DEPTH_LEVELS if kind == "depth" else 255
            means = [t / count for t in total]
            deviations = [math.sqrt(max(q / count - m * m, 0.0)) for q, m in zip(squares, means)]
            found[kind] = {"mean": [round(m / full, 6) for m in means],
                           "std": [round(d / full, 6) for d in deviations]}
        return found


def _cutout_source(cutout) -> dict:
    """A cutout's manifest source: its photo and box, its identity; rendered and generated
    cutouts also say their ``origin`` (their "file" is no photo)."""
    source = {"file": cutout.source_file, "box": list(cutout.source_box), "identity": cutout.identity}
    if cutout.origin != "photo":
        source["origin"] = cutout.origin
    return source


def _manifest(config: GenerateConfig, label_map: LabelMap, result: GenerateResult,
              entries: dict[str, JsonLines], pixel_stats: dict[str, dict] | None = None) -> dict:
    pixel_stats = pixel_stats or {}
    splits = {}
    for split in SPLITS:
        pool, counts = result.pools[split], result.counts[split]
        splits[split] = {
            "images": counts.images,
            "negatives": counts.negatives,
            "objects_per_class": dict(sorted(counts.objects_per_class.items())),
            "placements": counts.placements,
            "redrawn": counts.redrawn,
            "invisible_dropped": counts.invisible_dropped,
            "identities": sorted({c.identity for c in pool.cutouts}),
            "cutouts": [c.cutout_id for c in pool.cutouts],
            "cutout_sources": {c.cutout_id: _cutout_source(c) for c in pool.cutouts},
            "backgrounds": [b.path for b in pool.backgrounds],
            "windows_per_background": pool.windows_per_background,
            "records": [os.path.relpath(p, config.output.output_dir) for p in result.records.get(split, [])],
        }
        if split in pixel_stats and pixel_stats[split]:
            splits[split]["pixel_stats"] = pixel_stats[split]
    return {"mode": "generate", "config": config.as_json(), "seed": config.seed,
            "label_map": [{"id": item.id, "name": item.name} for item in label_map.items],
            "splits": splits, "eval_share": eval_shares(result.pools), "problem_counts": result.problems.counts(),
            "problems": result.problems.as_json(),
            "images": {split: entries[split] for split in SPLITS}}
