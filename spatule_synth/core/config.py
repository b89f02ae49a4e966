"""Frozen run configurations: what the library receives once the command line has been validated.

Only `spatule_synth.cli` builds these from flags; the library never reads flags. The resolved
configuration is written into every output manifest (`as_json`). `GenerateConfig` is made of one
section per stage (`InputsConfig`, `SplitConfig`, `PlacementConfig`, `OutputConfig`,
`ExecutionConfig`): each stage receives its section only, and a test builds just the part it needs.
"""

from __future__ import annotations

import dataclasses
import os
import re

from spatule_synth.core import storage
from spatule_synth.core.augment import ImageAugmentRanges, ObjectAugmentRanges
from spatule_synth.core.masks import MASK_METHODS
from spatule_synth.tags.render import DEFAULT_ALPHABET, DEFAULT_COLOURS, TagStyle, parse_colours
from spatule_synth.core.validation import InputRules

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(PACKAGE_DIR)
# The tag label map: annotations/label_map.pbtxt in a checkout; once installed (pip install .), the
# package's copy of it (tests/test_packaging.py checks that the two are the same bytes).
CHECKOUT_LABEL_MAP = os.path.join(REPO_ROOT, "annotations", "label_map.pbtxt")
PACKAGED_LABEL_MAP = os.path.join(PACKAGE_DIR, "default_label_map.pbtxt")
DEFAULT_LABEL_MAP = CHECKOUT_LABEL_MAP if os.path.isfile(CHECKOUT_LABEL_MAP) else PACKAGED_LABEL_MAP


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
        object.__setattr__(self, "output_dir", storage.local(self.output_dir))  # file://PATH is PATH
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
MASK_SOURCES = MASK_METHODS
CLASS_BALANCE = ("proportional", "uniform")
RUNNERS = ("local", "beam")
SCENE_OUTPUTS = ("background", "mask", "layers", "depth")
LAYOUTS = ("random", "grid")


def _folder_of(path: str) -> str:
    """The folder of a file: absolute for a local path, the URL's own for a URL."""
    if storage.is_url(path):
        return path.rsplit("/", 1)[0]
    return os.path.dirname(os.path.abspath(path))


def _check_fractions(config: object, *names: str) -> None:
    for name in names:
        if not 0 <= getattr(config, name) <= 1:
            raise ValueError(f"{name} must lie in [0, 1], got {getattr(config, name)}")


def _check_min_max(name: str, pair: tuple[int, int]) -> None:
    lo, hi = pair
    if not 0 <= lo <= hi:
        raise ValueError(f"{name} must be min,max with 0 <= min <= max, got {lo},{hi}")


@dataclasses.dataclass(frozen=True)
class InputsConfig:
    """The read stage: where the labelled photos, cutouts, backgrounds and distractors are, how
    they are read (``unlabelled``, ``ignore_classes``, ``on_error``) and how masks are made."""

    input_dirs: tuple[str, ...] = ()  # labelImg folders
    annotation_dirs: tuple[str, ...] = ()
    background_dirs: tuple[str, ...] = ()
    label_map_path: str = DEFAULT_LABEL_MAP
    coco_json: tuple[str, ...] = ()
    coco_image_dirs: tuple[str, ...] = ()  # one per coco_json; empty: the JSON's folder
    yolo_dirs: tuple[str, ...] = ()
    voc_seg_dirs: tuple[str, ...] = ()
    cutout_dirs: tuple[str, ...] = ()
    distractor_dirs: tuple[str, ...] = ()
    mask: str = "box"
    mask_model: str = ""
    on_error: str = "skip"
    unlabelled: str = "skip"  # a photo with no annotation file: "skip" or "negative"
    ignore_classes: tuple[str, ...] = ()  # classes that are not labels ("*": every other one)
    use_truncated_cutouts: bool = False  # objects cut by their photo's edge may be cutouts
    use_difficult_cutouts: bool = False  # objects marked difficult may be cutouts
    # rendered tags (spatule_synth.tags, spatule_synth.generate.rendered_source)
    rendered_tags: int = 0  # how many tags with distinct codes to draw
    tag_class: str = "tag"
    tag_alphabet: str = DEFAULT_ALPHABET
    tag_length: int = 4
    tag_font: str = ""  # a TrueType/OpenType file; "": Pillow's bundled font
    tag_glyph_sheet: str = ""  # the alphabet's characters in a row, instead of a font
    tag_style: TagStyle = TagStyle()
    tag_colours: tuple[str, ...] = DEFAULT_COLOURS
    # generated instances (spatule_synth.gan, spatule_synth.generate.gan_source)
    gan_model: str = ""  # a model folder of `python -m spatule_synth.gan train`
    gan_instances: int = 200

    @property
    def input_rules(self) -> InputRules:
        return InputRules(self.unlabelled, self.ignore_classes)

    @property
    def labelled_input_dirs(self) -> tuple[str, ...]:
        """Every folder the run reads labelled inputs from (the output may hold none of them)."""
        return (self.input_dirs + self.annotation_dirs + self.coco_image_dirs + self.yolo_dirs
                + self.voc_seg_dirs + self.cutout_dirs + self.background_dirs + self.distractor_dirs)

    def __post_init__(self) -> None:
        InputRules(self.unlabelled, self.ignore_classes)  # raises for a bad unlabelled
        if self.mask not in MASK_SOURCES:
            raise ValueError(f"mask must be one of {', '.join(MASK_SOURCES)}, got {self.mask!r}")
        if self.mask == "model" and not self.mask_model:
            raise ValueError("mask=model needs mask_model (a SavedModel folder or a .keras file)")
        if self.coco_image_dirs and len(self.coco_image_dirs) != len(self.coco_json):
            raise ValueError("give one coco_image_dirs entry per coco_json file (or none)")
        if not (self.input_dirs or self.coco_json or self.yolo_dirs or self.voc_seg_dirs
                or self.cutout_dirs or self.rendered_tags or self.gan_model):
            raise ValueError("no labelled input: give input_dirs (labelImg), coco_json, yolo_dirs, "
                             "voc_seg_dirs, cutout_dirs, rendered_tags or gan_model")
        if self.gan_instances < 1:
            raise ValueError(f"gan_instances must be >= 1, got {self.gan_instances}")
        self._check_rendered_tags()
        if not self.coco_image_dirs and self.coco_json:
            object.__setattr__(self, "coco_image_dirs",
                               tuple(_folder_of(p) for p in self.coco_json))


    def _check_rendered_tags(self) -> None:
        if self.rendered_tags < 0:
            raise ValueError(f"rendered_tags must be >= 0, got {self.rendered_tags}")
        alphabet = self.tag_alphabet
        if not alphabet or len(set(alphabet)) != len(alphabet) or any(c.isspace() for c in alphabet):
            raise ValueError(f"tag_alphabet must be distinct characters without spaces, got {alphabet!r}")
        if not 1 <= self.tag_length <= 12:
            raise ValueError(f"tag_length must lie in [1, 12], got {self.tag_length}")
        if self.rendered_tags > len(alphabet) ** self.tag_length:
            raise ValueError(f"rendered_tags={self.rendered_tags} distinct codes cannot be made of "
                             f"{self.tag_length} characters of a {len(alphabet)}-character alphabet")
        if self.tag_font and self.tag_glyph_sheet:
            raise ValueError("give tag_font or tag_glyph_sheet, not both")
        parse_colours(self.tag_colours)


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """The split stage: what an identity is, and each identity's and background's side."""

    eval_fraction: float = 0.2
    identity: str = "image"
    identity_regex: str = ""
    share_backgrounds: bool = False
    gan_in_eval: bool = False  # generated instances may go to eval (default: train only)

    def __post_init__(self) -> None:
        _check_fractions(self, "eval_fraction")
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


@dataclasses.dataclass(frozen=True)
class PlacementConfig:
    """The plan and render stages: the canvas, what goes on it and how (counts, scale, overlap,
    blend, augmentation) and when a pasted object still counts as visible."""

    canvas_size: int = 640
    objects_per_image: tuple[int, int] = (1, 3)
    negative_fraction: float = 0.0
    blend: tuple[str, ...] = ("seamless_normal",)
    scale_range: tuple[float, float] = (1.0, 1.0)
    max_overlap: float = 0.0
    allow_truncation: bool = False
    distractors_per_image: tuple[int, int] = (0, 2)
    class_balance: str = "proportional"
    object_augment: ObjectAugmentRanges = ObjectAugmentRanges()
    no_flip_classes: tuple[str, ...] = ()
    image_augment: ImageAugmentRanges = ImageAugmentRanges()
    max_occlusion: float = 0.0
    min_visible: float = 0.25
    min_visibility: float = 0.6  # see spatule_synth.generate.visibility and the README's measurement
    rendered_fraction: float | None = None  # share of labelled placements using rendered tags
    gan_fraction: float | None = None  # share of labelled placements using generated instances
    layout: str = "random"  # "grid": every cutout on every background (spatule_synth.generate.grid)
    grid_positions: int = 20  # K positions per (cutout, background, mirror) in the grid layout

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.grid_positions < 1:
            raise ValueError(f"grid_positions must be >= 1, got {self.grid_positions}")
        for name in ("rendered_fraction", "gan_fraction"):
            if getattr(self, name) is not None and not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if (self.rendered_fraction or 0) + (self.gan_fraction or 0) > 1:
            raise ValueError("rendered_fraction + gan_fraction must not exceed 1")
        if self.canvas_size < 16:
            raise ValueError(f"canvas_size must be at least 16, got {self.canvas_size}")
        _check_min_max("objects_per_image", self.objects_per_image)
        _check_min_max("distractors_per_image", self.distractors_per_image)
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale_range must be min,max with 0 < min <= max, got {self.scale_range}")
        _check_fractions(self, "negative_fraction", "max_overlap", "max_occlusion", "min_visible",
                         "min_visibility")
        unknown = [mode for mode in self.blend if mode not in BLEND_MODES]
        if unknown or not self.blend:
            raise ValueError(f"blend modes must be among {', '.join(BLEND_MODES)}, got {self.blend}")
        if self.class_balance not in CLASS_BALANCE:
            raise ValueError(f"class_balance must be one of {', '.join(CLASS_BALANCE)}, "
                             f"got {self.class_balance!r}")


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """The write stage: where the run goes, how many images, and which files it holds."""

    output_dir: str = ""
    num_images: int = 100
    num_shards: int = 1
    jpeg_quality: int = 95
    instance_masks: bool = False
    yolo_output: bool = False
    report: bool = True
    tag_crops: bool = False  # the reading dataset: OUT/tag_crops/SPLIT/*.png + labels.csv
    scene_outputs: tuple[str, ...] = ()  # among SCENE_OUTPUTS: OUT/KIND/SPLIT/NAME.png
    depth_model: str = ""  # with scene_outputs=depth (spatule_synth.core.depth)

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.scene_outputs if kind not in SCENE_OUTPUTS]
        if unknown:
            raise ValueError(f"scene_outputs must be among {', '.join(SCENE_OUTPUTS)}, got {', '.join(unknown)}")
        if "depth" in self.scene_outputs and not self.depth_model:
            raise ValueError("scene_outputs=depth needs depth_model (a SavedModel folder or a .keras "
                             "file that maps an image to a depth map); without one no depth is "
                             "written (none is made up)")
        if self.depth_model and "depth" not in self.scene_outputs:
            raise ValueError("depth_model goes with scene_outputs=depth")
        if not self.output_dir:
            raise ValueError("output_dir is required")
        object.__setattr__(self, "output_dir", storage.local(self.output_dir))  # file://PATH is PATH
        if self.num_images < 1 or self.num_shards < 1:
            raise ValueError("num_images >= 1 and num_shards >= 1 are required")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must lie in [1, 100], got {self.jpeg_quality}")


@dataclasses.dataclass(frozen=True)
class ExecutionConfig:
    """How the images are computed; never what they are: runs that differ only in these settings
    write identical files, and the manifest leaves them out."""

    num_workers: int = 0  # 0: one per core
    cache_mb: int = 1024
    overwrite: bool = False
    resume: bool = False
    runner: str = "local"
    beam_pipeline_options: str = ""

    @property
    def worker_count(self) -> int:
        """``num_workers``, 0 meaning one per core."""
        return self.num_workers or os.cpu_count() or 1

    def __post_init__(self) -> None:
        if self.runner not in RUNNERS:
            raise ValueError(f"runner must be one of {', '.join(RUNNERS)}, got {self.runner!r}")
        if self.beam_pipeline_options and self.runner != "beam":
            raise ValueError("beam_pipeline_options goes with runner=beam")


SECTIONS = {"inputs": InputsConfig, "split": SplitConfig, "placement": PlacementConfig,
            "output": OutputConfig, "execution": ExecutionConfig}
# The manifest's "config": every setting but the execution ones, flat, in this order (the order
# of the manifests written before the settings were grouped, so their content is unchanged).
MANIFEST_SETTINGS = (
    "input_dirs", "output_dir", "annotation_dirs", "background_dirs", "label_map_path", "num_images",
    "eval_fraction", "canvas_size", "objects_per_image", "negative_fraction", "blend", "scale_range",
    "max_overlap", "allow_truncation", "identity", "identity_regex", "share_backgrounds", "coco_json",
    "coco_image_dirs", "yolo_dirs", "voc_seg_dirs", "cutout_dirs", "distractor_dirs",
    "distractors_per_image", "mask", "mask_model", "class_balance", "object_augment",
    "no_flip_classes", "image_augment", "max_occlusion", "min_visible", "min_visibility",
    "instance_masks", "yolo_output", "report", "seed", "num_shards", "jpeg_quality", "on_error",
    "unlabelled", "ignore_classes", "use_truncated_cutouts", "use_difficult_cutouts",
    "rendered_tags", "tag_class", "tag_alphabet", "tag_length", "tag_font", "tag_glyph_sheet",
    "tag_style", "tag_colours", "rendered_fraction", "tag_crops", "gan_model", "gan_instances",
    "gan_fraction", "gan_in_eval", "scene_outputs", "layout", "grid_positions", "depth_model")


def _section_of_setting() -> dict[str, str]:
    owner = {}
    for section, kind in SECTIONS.items():
        for field in dataclasses.fields(kind):
            owner[field.name] = section
    return owner


SECTION_OF_SETTING = _section_of_setting()


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
    """Synthetic images: labelled cutouts pasted onto crops of object-free photos.

    One frozen section per stage (inputs -> split -> placement -> output, plus execution), so a
    stage receives only its section, and the ``seed`` that every random stream starts from.
    `from_settings` builds one from the flat setting names the command line and the manifest use.
    """

    inputs: InputsConfig
    output: OutputConfig
    split: SplitConfig = SplitConfig()
    placement: PlacementConfig = PlacementConfig()
    execution: ExecutionConfig = ExecutionConfig()
    seed: int = 0

    @classmethod
    def from_settings(cls, **settings) -> "GenerateConfig":
        """``GenerateConfig.from_settings(input_dirs=(...), output_dir=..., canvas_size=96, ...)``:
        each flat setting goes to its section; an unknown name is a TypeError."""
        sections: dict[str, dict] = {name: {} for name in SECTIONS}
        top = {}
        for name, value in settings.items():
            if name == "seed":
                top[name] = value
            elif name in SECTION_OF_SETTING:
                sections[SECTION_OF_SETTING[name]][name] = value
            else:
                raise TypeError(f"unknown generate setting {name!r}")
        built = {name: SECTIONS[name](**values) for name, values in sections.items()}
        return cls(**built, **top)

    def settings(self) -> dict:
        """Every setting, flat (name -> value), execution ones included."""
        flat = {"seed": self.seed}
        for section in SECTIONS:
            part = getattr(self, section)
            flat.update({f.name: getattr(part, f.name) for f in dataclasses.fields(part)})
        return flat

    def as_json(self) -> dict:
        """The settings that shape the data set, flat, in `MANIFEST_SETTINGS` order. Execution
        settings (workers, cache, runner, resume, overwrite) are left out: runs that differ only
        in those write identical files."""
        flat = self.settings()
        return {name: _plain(flat[name]) for name in MANIFEST_SETTINGS}


def _plain(value):
    """A setting as `dataclasses.asdict` gives it (nested ranges as dicts)."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
