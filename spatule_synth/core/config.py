"""Frozen run configurations: what the library receives once the command line has been validated.

Only `spatule_synth.cli` builds these from flags; the library never reads flags. The resolved
configuration is written into every output manifest (`as_json`).
"""

from __future__ import annotations

import dataclasses
import os
import re

from spatule_synth.core.augment import ImageAugmentRanges, ObjectAugmentRanges
from spatule_synth.core.validation import InputRules

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_LABEL_MAP = os.path.join(REPO_ROOT, "annotations", "label_map.pbtxt")


@dataclasses.dataclass(frozen=True)
class ConvertConfig:
    """labelImg folders -> TFRecord shards + label map (real photos, usually for evaluation)."""

    input_dirs: tuple[str, ...]
    output_dir: str
    annotation_dirs: tuple[str, ...] = ()
    label_map_path: str = DEFAULT_LABEL_MAP
    record_name: str = "real"
    num_shards: int = 1
    keep_negatives: bool = True
    tile_size: int = 0  # 0: whole photos
    tile_overlap: int = 64
    tile_min_visible: float = 0.5
    tile_negative_fraction: float = 0.1
    overwrite: bool = False
    on_error: str = "skip"
    unlabelled: str = "skip"  # a photo with no XML: "skip" (not labelled yet) or "negative"
    ignore_classes: tuple[str, ...] = ()  # classes that are not labels ("*": every other one)
    split_from: str = ""  # a generate run: keep only photos that show none of its train side

    @property
    def input_rules(self) -> InputRules:
        return InputRules(self.unlabelled, self.ignore_classes)

    def __post_init__(self) -> None:
        InputRules(self.unlabelled, self.ignore_classes)  # raises for a bad unlabelled
        if self.tile_size and not 0 <= self.tile_overlap < self.tile_size:
            raise ValueError(f"tile_overlap must lie in [0, tile_size), got {self.tile_overlap}")
        for name in ("tile_min_visible", "tile_negative_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


BLEND_MODES = ("seamless_normal", "seamless_mixed", "feather", "alpha", "paste",
               "seamless_normal_opencv", "seamless_mixed_opencv")
IDENTITY_MODES = ("image", "object", "regex", "auto")
MASK_SOURCES = ("box", "grabcut", "model")
CLASS_BALANCE = ("proportional", "uniform")
RUNNERS = ("local", "beam")
EXECUTION_SETTINGS = ("num_workers", "cache_mb", "overwrite", "resume", "runner",
                      "beam_pipeline_options")


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
    """Synthetic images: labelled cutouts pasted onto crops of object-free photos."""

    input_dirs: tuple[str, ...] = ()  # labelImg folders
    output_dir: str = ""
    annotation_dirs: tuple[str, ...] = ()
    background_dirs: tuple[str, ...] = ()
    label_map_path: str = DEFAULT_LABEL_MAP
    num_images: int = 100
    eval_fraction: float = 0.2
    canvas_size: int = 640
    objects_per_image: tuple[int, int] = (1, 3)
    negative_fraction: float = 0.0
    blend: tuple[str, ...] = ("seamless_normal",)
    scale_range: tuple[float, float] = (1.0, 1.0)
    max_overlap: float = 0.0
    allow_truncation: bool = False
    identity: str = "image"
    identity_regex: str = ""
    share_backgrounds: bool = False
    coco_json: tuple[str, ...] = ()
    coco_image_dirs: tuple[str, ...] = ()  # one per coco_json; empty: the JSON's folder
    yolo_dirs: tuple[str, ...] = ()
    voc_seg_dirs: tuple[str, ...] = ()
    cutout_dirs: tuple[str, ...] = ()
    distractor_dirs: tuple[str, ...] = ()
    distractors_per_image: tuple[int, int] = (0, 2)
    mask: str = "box"
    mask_model: str = ""
    class_balance: str = "proportional"
    object_augment: ObjectAugmentRanges = ObjectAugmentRanges()
    no_flip_classes: tuple[str, ...] = ()
    image_augment: ImageAugmentRanges = ImageAugmentRanges()
    max_occlusion: float = 0.0
    min_visible: float = 0.25
    min_visibility: float = 0.6  # see spatule_synth.generate.visibility and the README's measurement
    instance_masks: bool = False
    yolo_output: bool = False
    report: bool = True
    seed: int = 0
    num_workers: int = 0
    num_shards: int = 1
    jpeg_quality: int = 95
    cache_mb: int = 1024
    overwrite: bool = False
    resume: bool = False
    runner: str = "local"
    beam_pipeline_options: str = ""
    on_error: str = "skip"
    unlabelled: str = "skip"  # a photo with no annotation file: "skip" or "negative"
    ignore_classes: tuple[str, ...] = ()  # classes that are not labels ("*": every other one)
    use_truncated_cutouts: bool = False  # objects cut by their photo's edge may be cutouts
    use_difficult_cutouts: bool = False  # objects marked difficult may be cutouts

    @property
    def input_rules(self) -> InputRules:
        return InputRules(self.unlabelled, self.ignore_classes)

    def __post_init__(self) -> None:
        InputRules(self.unlabelled, self.ignore_classes)  # raises for a bad unlabelled
        if not self.output_dir:
            raise ValueError("output_dir is required")
        if self.runner not in RUNNERS:
            raise ValueError(f"runner must be one of {', '.join(RUNNERS)}, got {self.runner!r}")
        if self.beam_pipeline_options and self.runner != "beam":
            raise ValueError("beam_pipeline_options goes with runner=beam")
        lo, hi = self.objects_per_image
        if not 0 <= lo <= hi:
            raise ValueError(f"objects_per_image must be min,max with 0 <= min <= max, got {lo},{hi}")
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale_range must be min,max with 0 < min <= max, got {self.scale_range}")
        for name in ("eval_fraction", "negative_fraction", "max_overlap", "max_occlusion", "min_visible",
                     "min_visibility"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        unknown = [mode for mode in self.blend if mode not in BLEND_MODES]
        if unknown or not self.blend:
            raise ValueError(f"blend modes must be among {', '.join(BLEND_MODES)}, got {self.blend}")
        if self.identity not in IDENTITY_MODES:
            raise ValueError(f"identity must be one of {IDENTITY_MODES}, got {self.identity!r}")
        if self.identity == "regex" and not self.identity_regex:
            raise ValueError("identity=regex needs an identity_regex")
        if self.identity_regex:
            try:
                re.compile(self.identity_regex)
            except re.error as error:
                raise ValueError(f"identity_regex {self.identity_regex!r} is not a regular "
                                 f"expression: {error}") from None
        if self.canvas_size < 16 or self.num_images < 1 or self.num_shards < 1:
            raise ValueError("canvas_size >= 16, num_images >= 1 and num_shards >= 1 are required")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must lie in [1, 100], got {self.jpeg_quality}")
        if self.mask not in MASK_SOURCES:
            raise ValueError(f"mask must be one of {', '.join(MASK_SOURCES)}, got {self.mask!r}")
        if self.mask == "model" and not self.mask_model:
            raise ValueError("mask=model needs mask_model (a SavedModel folder or a .keras file)")
        if self.class_balance not in CLASS_BALANCE:
            raise ValueError(f"class_balance must be one of {', '.join(CLASS_BALANCE)}, "
                             f"got {self.class_balance!r}")
        if self.coco_image_dirs and len(self.coco_image_dirs) != len(self.coco_json):
            raise ValueError("give one coco_image_dirs entry per coco_json file (or none)")
        lo, hi = self.distractors_per_image
        if not 0 <= lo <= hi:
            raise ValueError(f"distractors_per_image must be min,max with 0 <= min <= max, got {lo},{hi}")
        if not (self.input_dirs or self.coco_json or self.yolo_dirs or self.voc_seg_dirs
                or self.cutout_dirs):
            raise ValueError("no labelled input: give input_dirs (labelImg), coco_json, yolo_dirs, "
                             "voc_seg_dirs or cutout_dirs")
        if not self.coco_image_dirs and self.coco_json:
            object.__setattr__(self, "coco_image_dirs",
                               tuple(os.path.dirname(os.path.abspath(p)) for p in self.coco_json))

    @property
    def labelled_input_dirs(self) -> tuple[str, ...]:
        """Every folder the run reads labelled inputs from (the output may hold none of them)."""
        return (self.input_dirs + self.annotation_dirs + self.coco_image_dirs + self.yolo_dirs
                + self.voc_seg_dirs + self.cutout_dirs + self.background_dirs + self.distractor_dirs)

    def as_json(self) -> dict:
        """The settings that shape the data set. Execution-only settings (workers, cache, runner,
        resume, overwrite) are left out: runs that differ only in those write identical files."""
        settings = dataclasses.asdict(self)
        for name in EXECUTION_SETTINGS:
            del settings[name]
        return settings
