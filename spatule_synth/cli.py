"""The command line: absl flags, validated, turned into one frozen config per mode.

This is the only module of the package that imports ``absl.flags``. ``generate.py`` calls `run`.
A usage error (an unknown flag, a bad flag value, a missing required flag, a flag the chosen mode
does not read: see `MODE_FLAGS`) ends the run before anything is read or written, with one line
``error: MESSAGE (see python generate.py --help)`` and exit status 2. Other errors a user can fix
(unreadable label map, missing input folder, an existing output directory, a bad input under
``--on_error=fail``) end the run with one ``error:`` line and exit status 1. Never a traceback.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from typing import Callable, Iterable, Mapping, NoReturn

from absl import app, flags

from spatule_synth.core import storage
from spatule_synth.core.augment import parse_ranges
from spatule_synth.core.config import BLEND_MODES, CLASS_BALANCE, DEFAULT_LABEL_MAP, IDENTITY_MODES, \
    LAYOUTS, MASK_SOURCES, ConvertConfig, GenerateConfig
from spatule_synth.core.problems import ON_ERROR_CHOICES
from spatule_synth.tags.render import COLOURS, DEFAULT_ALPHABET, DEFAULT_COLOURS, parse_tag_style
from spatule_synth.core.validation import UNLABELLED_CHOICES

MODES = ("generate", "convert", "verify", "report", "evaluate")

FLAGS = flags.FLAGS

flags.DEFINE_enum("mode", "generate", MODES,
                  "What to run. generate: synthetic images from labelled cutouts and object-free "
                  "photos. convert: labelImg folders -> TFRecords + label_map.pbtxt. verify: re-read "
                  "--output_dir and check every image, XML, example, mask and the split. report: "
                  "write --output_dir/report/ (statistics, figures, galleries) for a finished run. "
                  "evaluate: score an exported detector (--detector) on a convert run's records "
                  "(--records): COCO metrics, recall per size, plots, contact sheets in --output_dir.")
flags.DEFINE_list("input_dirs", [], "labelImg folders (images, with their XML beside them unless "
                  "--annotation_dirs is given). Not searched recursively. generate: their objects "
                  "become cutouts; their images whose XML has no object become backgrounds (photos "
                  "without XML: see --unlabelled).")
flags.DEFINE_list("annotation_dirs", [], "Optional: one folder of XML files per --input_dirs entry "
                  "(labelImg's 'Change Save Dir'). XML is matched to images by file stem.")
flags.DEFINE_string("label_map", DEFAULT_LABEL_MAP, "label_map.pbtxt whose names the VOC <name> "
                    "values must match.")
flags.DEFINE_string("output_dir", None, "Directory to create for the outputs: a local path, or a "
                    "URL (gs://, s3://, ...; generate, convert, report, verify, evaluate).")
flags.DEFINE_boolean("overwrite", False, "Replace an existing output directory (only one that "
                     "spatule_synth created).")
flags.DEFINE_string("record_name", "real", "convert: TFRecord name, giving "
                    "OUT/annotations/NAME.record[-SSSSS-of-NNNNN].")
flags.DEFINE_string("split_from", "", "convert: a generate run (its output directory or "
                    "manifest.json): keep only the photos that show none of its train identities "
                    "or train backgrounds (by content, by --identity_regex name, and by look when "
                    "it used --identity=auto), so real photos evaluate it without a leak.")
flags.DEFINE_integer("num_shards", 1, "Number of TFRecord shards per record file.", lower_bound=1)
flags.DEFINE_boolean("keep_negatives", True, "convert: keep images without objects (XML with no "
                     "<object>; without XML: see --unlabelled) as negative examples.")
flags.DEFINE_integer("tile_size", 0, "convert: cut every photo into windows of this size at full "
                     "resolution (e.g. 640, the training scale); 0 = whole photos.", lower_bound=0)
flags.DEFINE_integer("tile_overlap", 64, "convert: least overlap of neighbouring tiles, px (objects "
                     "no larger than this are whole in some tile).", lower_bound=0)
flags.DEFINE_float("tile_min_visible", 0.5, "convert: a box keeps its label in a tile only if this "
                   "share of it is inside the tile.", lower_bound=0, upper_bound=1)
flags.DEFINE_float("tile_negative_fraction", 0.1, "convert: share of object-free tiles kept as "
                   "negatives.", lower_bound=0, upper_bound=1)
flags.DEFINE_enum("unlabelled", "skip", UNLABELLED_CHOICES, "A photo with no annotation file (no "
                  "XML, no YOLO txt) is not known to be object-free (usually: not labelled yet). "
                  "'skip' leaves it out with one counted note; 'negative' takes it as a photo "
                  "without objects (convert: a negative; generate: a background).")
flags.DEFINE_list("ignore_classes", [], "Classes of your annotations that are not labels of the "
                  "label map, on purpose (e.g. bird in a tag data set): their objects are left out "
                  "with a note and the photo is kept. Any other class that is not in the label map "
                  "skips its photo (it would show an object without a box). '*' = every class not "
                  "in the label map, except names close to one of its classes (typos).")
flags.DEFINE_enum("on_error", "skip", ON_ERROR_CHOICES, "Bad input: 'skip' warns, skips the "
                  "image or object and counts it in the summary; 'fail' stops at the first one.")
# generate
flags.DEFINE_list("background_dirs", [], "generate: extra folders of object-free photos.")
flags.DEFINE_integer("num_images", 1000, "generate: synthetic images in all (train + eval).",
                     lower_bound=1)
flags.DEFINE_float("eval_fraction", 0.2, "generate: share of identities, of background photos and "
                   "of images that go to eval.", lower_bound=0, upper_bound=1)
flags.DEFINE_integer("canvas_size", 640, "generate: side of the square output images, in pixels. "
                     "Backgrounds are cropped at full resolution (smaller ones upscaled).",
                     lower_bound=16)
flags.DEFINE_list("objects_per_image", ["1", "3"], "generate: min,max objects per image.")
flags.DEFINE_float("negative_fraction", 0.0, "generate: share of images with no object "
                   "(XML without <object>, examples without boxes).", lower_bound=0, upper_bound=1)
flags.DEFINE_list("blend", ["seamless_normal"], "generate: blend modes among "
                  f"{', '.join(BLEND_MODES)}; with several, each object draws one.")
flags.DEFINE_list("scale_range", ["1", "1"], "generate: min,max scale factor of the cutouts "
                  "(1,1 keeps objects at their photographed size).")
flags.DEFINE_float("max_overlap", 0.0, "generate: largest overlap between two pasted regions, as "
                   "a share of the smaller one; covered parts leave the boxes.",
                   lower_bound=0, upper_bound=1)
flags.DEFINE_boolean("allow_truncation", False, "generate: let objects cross the canvas edge "
                     "(their boxes are clipped and marked truncated).")
flags.DEFINE_enum("identity", "image", IDENTITY_MODES, "generate: what one identity is (it never "
                  "appears in both splits): 'image' = all objects of one photo, 'object' = each "
                  "object, 'regex' = --identity_regex over the file name, 'auto' = objects that "
                  "look the same (re-photographed tags) grouped by near_duplicates.py.")
flags.DEFINE_string("identity_regex", "", "generate: with --identity=regex, a regular expression "
                    "searched in the photo's file name; its first group (or whole match) is the "
                    "identity.")
flags.DEFINE_boolean("share_backgrounds", False, "generate: let train and eval crop the same "
                     "background photos (by default each photo belongs to one split).")
flags.DEFINE_integer("seed", 0, "generate: random seed; same flags and seed give the same bytes.")
flags.DEFINE_integer("num_workers", 0, "generate: worker processes (0 = all cores).", lower_bound=0)
flags.DEFINE_integer("jpeg_quality", 95, "generate: JPEG quality of the output images.",
                     lower_bound=1, upper_bound=100)
flags.DEFINE_integer("cache_mb", 1024, "generate: memory budget per worker for decoded "
                     "background photos.", lower_bound=1)
flags.DEFINE_boolean("resume", False, "generate: finish the interrupted run in --output_dir (after "
                     "a crash, a kill or a full disk); it needs the same flags, and the result is "
                     "the same as an uninterrupted run. Does nothing if --output_dir holds a "
                     "finished run of the same flags; otherwise runs as without --resume.")
flags.DEFINE_enum("runner", "local", ["local", "beam"], "generate: where the images are made: "
                  "'local' (a process pool on this machine) or 'beam' (an Apache Beam pipeline; see "
                  "--beam_pipeline_options). Both write the same bytes.")
flags.DEFINE_string("beam_pipeline_options", "", "generate, --runner=beam: Beam pipeline options, "
                    "e.g. \"--runner=DirectRunner --direct_num_workers=2 "
                    "--direct_running_mode=multi_processing\" (Flink, Spark and Dataflow runners "
                    "work too, if every worker reaches --output_dir and the inputs: bucket URLs or "
                    "a shared file system).")
# generate: other input formats and masks
flags.DEFINE_list("coco_json", [], "generate: COCO instance JSON files (polygons, RLE, or boxes).")
flags.DEFINE_list("coco_image_dirs", [], "generate: the image folder of each --coco_json "
                  "(default: the JSON's folder).")
flags.DEFINE_list("yolo_dirs", [], "generate: YOLO folders as labelImg writes them (NAME.txt "
                  "beside each image, classes.txt in the folder).")
flags.DEFINE_list("voc_seg_dirs", [], "generate: Pascal VOC roots with JPEGImages/, Annotations/ "
                  "and SegmentationObject/ (instance masks).")
flags.DEFINE_list("cutout_dirs", [], "generate: folders of alpha PNG cutouts, one sub-folder per "
                  "class (the folder name is the class).")
flags.DEFINE_list("distractor_dirs", [], "generate: folders of alpha PNG cutouts pasted as clutter "
                  "and never labelled.")
flags.DEFINE_list("distractors_per_image", ["0", "2"], "generate: min,max distractors per image "
                  "(when --distractor_dirs is given).")
flags.DEFINE_enum("mask", "box", MASK_SOURCES, "generate: masks of box-only labels: 'box' = the "
                  "whole box, 'grabcut' = OpenCV GrabCut inside the box, 'model' = --mask_model.")
flags.DEFINE_string("mask_model", "", "generate: with --mask=model, a TensorFlow SavedModel folder "
                    "or .keras file mapping an RGB crop to a foreground probability map (see "
                    "spatule_synth/core/masks.py for the contract).")
flags.DEFINE_enum("class_balance", "proportional", CLASS_BALANCE, "generate: 'proportional' draws "
                  "cutouts uniformly; 'uniform' draws a class uniformly, then one of its cutouts.")
flags.DEFINE_string("object_augment", "", "generate: per-object augmentation, key=value list: "
                    "rotate, flip (h, v, hv), perspective, brightness, contrast, saturation, hue, "
                    "blur; a value is v or lo:hi (see spatule_synth/core/augment.py). Example: "
                    "rotate=15,flip=h,brightness=0.1")
flags.DEFINE_list("no_flip_classes", [], "generate: classes never mirrored (text must stay "
                  "readable), e.g. tag.")
flags.DEFINE_string("image_augment", "", "generate: per-image augmentation, key=value list: "
                    "brightness, contrast, saturation, hue, noise, motion_blur, jpeg_quality "
                    "(e.g. noise=4,motion_blur=0:9,jpeg_quality=70:95).")
flags.DEFINE_float("max_occlusion", 0.0, "generate: if > 0, objects may overlap as long as no "
                   "labelled object loses more than this share of its mask to later pastes "
                   "(replaces the --max_overlap rule).", lower_bound=0, upper_bound=1)
flags.DEFINE_float("min_visible", 0.25, "generate: an object keeps its label only if at least this "
                   "share of its mask is visible (not covered, not off the canvas).",
                   lower_bound=0, upper_bound=1)
flags.DEFINE_float("min_visibility", 0.6, "generate: a labelled object must still look like its "
                   "cutout after blending (score in [0, 1]: correlation x contrast of its pixels "
                   "with the cutout's, or colour fidelity); below this its placement is re-drawn "
                   "(up to 4 times), then dropped. 0 turns the check off.",
                   lower_bound=0, upper_bound=1)
flags.DEFINE_boolean("instance_masks", False, "generate: also write OUT/masks/SPLIT/NAME.png, PNG "
                     "masks in the TFRecords (image/object/mask) and "
                     "OUT/annotations/SPLIT_coco.json.")
flags.DEFINE_string("pipeline_config", "", "generate: also write "
                    "object_detection_workspace/models/MODEL/pipeline.config (MODEL: --model_name) "
                    "for model_main_tf2.py from the template NAME, among "
                    "ssd_resnet50_v1_fpn_640x640, ssd_mobilenet_v2_fpnlite_320x320 (see "
                    "object_detection_workspace/README.md). convert with --split_from=RUN: write "
                    "models/MODEL_real_eval/pipeline.config, RUN's config evaluating on the "
                    "converted photos.")
flags.DEFINE_string("fine_tune_checkpoint", "", "generate: with --pipeline_config, the model zoo "
                    "checkpoint prefix to start from (.../checkpoint/ckpt-0); empty = from scratch.")
flags.DEFINE_integer("batch_size", None, "generate: with --pipeline_config, the training batch size "
                     "(default: the template's).", lower_bound=1)
flags.DEFINE_integer("num_steps", None, "generate: with --pipeline_config, the training steps; the "
                     "learning-rate schedule follows (default: the template's).", lower_bound=1)
flags.DEFINE_string("workspace", "object_detection_workspace", "generate: the TF OD API workspace "
                    "that receives models/NAME/pipeline.config.")
flags.DEFINE_string("model_name", "", "generate: with --pipeline_config, NAME in "
                    "WORKSPACE/models/NAME/pipeline.config (model_main_tf2.py's --model_dir); "
                    "default: the run's folder name (the last part of --output_dir), so runs do not "
                    "overwrite each other's config. convert with --split_from=RUN: writes "
                    "models/NAME_real_eval/, NAME defaulting to RUN's folder name.")
flags.DEFINE_boolean("use_truncated_cutouts", False, "generate: also paste objects cut by their "
                     "photo's edge (marked truncated, or a box touching the border): by default "
                     "they are not cutouts (a half object would be labelled as a whole one).")
flags.DEFINE_boolean("use_difficult_cutouts", False, "generate: also paste objects marked difficult "
                     "(by default they are not cutouts; convert keeps them, flagged difficult).")
flags.DEFINE_boolean("report", True, "generate: write OUT/report/ (stats.json, stats.png, "
                     "galleries with boxes and masks drawn, index.html) at the end; --noreport to skip.")
flags.DEFINE_boolean("yolo_output", False, "generate: also write a YOLO NAME.txt beside each image "
                     "and classes.txt in each image folder.")
flags.DEFINE_integer("rendered_tags", 0, "generate: also draw N leg-ring tags with distinct codes "
                     "(spatule_synth.tags) and paste them like the real cutouts; each code is its "
                     "own identity, so no code is in both train and eval.", lower_bound=0)
flags.DEFINE_float("rendered_fraction", None, "generate: share of the labelled placements that use "
                   "rendered tags (default: as any cutout, by number).")
flags.DEFINE_string("tag_class", "tag", "generate: the label-map class of rendered tags.")
flags.DEFINE_string("tag_alphabet", DEFAULT_ALPHABET, "generate: characters of rendered codes (the "
                    "spoonbill rings leave out look-alikes such as E); with --tag_glyph_sheet, in "
                    "the sheet's order.")
flags.DEFINE_integer("tag_length", 4, "generate: characters per rendered code.")
flags.DEFINE_string("tag_font", "", "generate: TrueType/OpenType font of rendered codes (default: "
                    "Pillow's bundled font).")
flags.DEFINE_string("tag_glyph_sheet", "", "generate: an image of --tag_alphabet's characters in a "
                    "row, dark on light, to draw rendered codes with instead of a font.")
flags.DEFINE_string("tag_style", "", "generate: ranges of rendered tags' looks, key=lo:hi,...: "
                    "width (ring diameter px; default: as the real tags), stacked (probability of "
                    "upright stacked characters), turn, direct, dirt, highlight, scratches, tilt "
                    "(degrees), perspective, blur, motion, noise, jpeg.")
flags.DEFINE_list("tag_colours", list(DEFAULT_COLOURS), "generate: ring colours, by name "
                  f"({', '.join(COLOURS)}) or #rrggbb; repeat one to make it more frequent.")
flags.DEFINE_list("scene_outputs", [], "generate: also write per image, in OUT/KIND/SPLIT/NAME.png: "
                  "background (the window before anything was pasted), mask (labelled objects, "
                  "0/255), layers (0 background, k: the k-th placement of the manifest entry), "
                  "depth (16-bit PNG of --depth_model's map of the written image).")
flags.DEFINE_string("depth_model", "", "generate: with --scene_outputs=depth, a SavedModel folder "
                    "or .keras file: RGB image in [0, 1] -> depth map (contract: "
                    "spatule_synth/core/depth.py).")
flags.DEFINE_enum("layout", "random", LAYOUTS, "generate: 'random' draws --num_images images; "
                  "'grid' makes every cutout (and its mirror, unless --no_flip_classes) on every "
                  "background at --grid_positions positions, one object per image, named "
                  "fg{F}_bg{B}_flip{0|1}_{k}.")
flags.DEFINE_integer("grid_positions", 20, "generate --layout=grid: distinct positions per cutout, "
                     "background and mirror.", lower_bound=1)
flags.DEFINE_string("compare_to", "", "report: a convert run of the real photos the detector will "
                    "face: the run's object sizes, positions, brightness, contrast and sharpness "
                    "beside theirs, with a warning (and the flag to change) for each that the "
                    "synthetic data does not cover (OUT/report/domain.json, domain.png).")
flags.DEFINE_string("gan_model", "", "generate: a model folder of python -m spatule_synth.gan train: "
                    "paste instances its generator makes (their alpha is the mask), each its own "
                    "identity, in train only unless --gan_in_eval.")
flags.DEFINE_integer("gan_instances", 200, "generate: how many instances the --gan_model generator "
                     "makes (spread evenly over its classes).", lower_bound=1)
flags.DEFINE_float("gan_fraction", None, "generate: share of the labelled placements that use "
                   "--gan_model instances (default: as any cutout, by number).")
flags.DEFINE_boolean("gan_in_eval", False, "generate: also paste --gan_model instances in eval (by "
                     "default eval measures photographed objects only).")
flags.DEFINE_boolean("tag_crops", False, "generate: the reading dataset: an upright crop of every "
                     "placed tag whose code is known (rendered tags; real ones named by "
                     "--identity=regex) in OUT/tag_crops/SPLIT/, listed in OUT/tag_crops/labels.csv.")
# evaluate
flags.DEFINE_string("detector", "", "evaluate: the detector, a SavedModel exported by the OD API's "
                    "exporter_main_v2.py --input_type=image_tensor (its --output_directory or the "
                    "saved_model/ folder in it).")
flags.DEFINE_string("records", "", "evaluate: the output folder of a --mode=convert run (whole "
                    "photos or --tile_size tiles, scored per photo); every record it lists is read.")
flags.DEFINE_float("score_threshold", 0.5, "evaluate: the score at which the detector is used: "
                   "recall per object size, precision, and the contact sheets of misses and false "
                   "positives (COCO AP uses every score).", lower_bound=0, upper_bound=1)


# Which flags each mode reads (besides absl's own, e.g. --flagfile, --help). A flag given
# explicitly that the chosen mode does not read is a usage error (a warning when it comes from a
# --flagfile): see `unused_flags`. tests/test_cli.py checks that every flag defined above is here.
COMMON_FLAGS = ("mode", "output_dir")
INPUT_FLAGS = ("input_dirs", "annotation_dirs", "label_map", "overwrite", "num_shards", "unlabelled",
               "ignore_classes", "on_error")  # generate and convert
# generate; convert only with --split_from (evaluating RUN's model); all but --pipeline_config
# only with --pipeline_config
PIPELINE_FLAGS = ("pipeline_config", "model_name", "workspace", "fine_tune_checkpoint", "batch_size",
                  "num_steps")
MODE_FLAGS: dict[str, frozenset[str]] = {
    "generate": frozenset(COMMON_FLAGS + INPUT_FLAGS + PIPELINE_FLAGS + (
        "background_dirs", "num_images", "eval_fraction", "canvas_size", "objects_per_image",
        "negative_fraction", "blend", "scale_range", "max_overlap", "allow_truncation", "identity",
        "identity_regex", "share_backgrounds", "seed", "num_workers", "jpeg_quality", "cache_mb",
        "resume", "runner", "beam_pipeline_options", "coco_json", "coco_image_dirs", "yolo_dirs",
        "voc_seg_dirs", "cutout_dirs", "distractor_dirs", "distractors_per_image", "mask",
        "mask_model", "class_balance", "object_augment", "no_flip_classes", "image_augment",
        "max_occlusion", "min_visible", "min_visibility", "instance_masks",
        "use_truncated_cutouts", "use_difficult_cutouts", "report", "yolo_output", "rendered_tags",
        "rendered_fraction", "tag_class", "tag_alphabet", "tag_length", "tag_font", "tag_glyph_sheet",
        "tag_style", "tag_colours", "tag_crops", "gan_model", "gan_instances", "gan_fraction",
        "gan_in_eval", "scene_outputs", "depth_model", "layout", "grid_positions")),
    "convert": frozenset(COMMON_FLAGS + INPUT_FLAGS + PIPELINE_FLAGS + (
        "record_name", "split_from", "keep_negatives", "tile_size", "tile_overlap",
        "tile_min_visible", "tile_negative_fraction")),
    "verify": frozenset(COMMON_FLAGS),
    "report": frozenset(COMMON_FLAGS + ("compare_to",)),
    "evaluate": frozenset(COMMON_FLAGS + ("detector", "records", "score_threshold", "overwrite")),
}
ALL_FLAGS = frozenset().union(*MODE_FLAGS.values())

USAGE_EXIT_STATUS = 2
USAGE_HINT = "see python generate.py --help"

# Flags given on the command line itself (not read from a --flagfile); None: not known (main()
# called without `run`), every flag given counts as typed.
_command_line_flags: set[str] | None = None


def _tiles(value: Callable[[str], object]) -> bool:
    return int(value("tile_size") or 0) > 0


def _renders_tags(value: Callable[[str], object]) -> bool:
    return int(value("rendered_tags") or 0) > 0


def _draws_jpeg_quality(value: Callable[[str], object]) -> bool:
    return re.search(r"(^|,)\s*jpeg_quality\s*=", str(value("image_augment") or "")) is not None


# Flags that a mode reads only when another flag says so: name -> (whether it is read, given the
# value of any flag by name; why not). Given explicitly while not read, they are reported like the
# flags of another mode (`unused_flags`).
DEPENDENT_FLAGS: dict[str, tuple[Callable[[Callable[[str], object]], bool], str]] = {
    "tile_overlap": (_tiles, "is used only with --tile_size"),
    "tile_min_visible": (_tiles, "is used only with --tile_size"),
    "tile_negative_fraction": (_tiles, "is used only with --tile_size"),
    "mask_model": (lambda value: value("mask") == "model", "is used only with --mask=model"),
    "identity_regex": (lambda value: value("identity") == "regex", "is used only with --identity=regex"),
    "distractors_per_image": (lambda value: bool(value("distractor_dirs")),
                              "is used only with --distractor_dirs"),
    "jpeg_quality": (lambda value: not _draws_jpeg_quality(value),
                     "is not used when --image_augment draws jpeg_quality (each image's quality "
                     "comes from that range)"),
    **{name: (_renders_tags, "is used only with --rendered_tags=N")
       for name in ("rendered_fraction", "tag_class", "tag_alphabet", "tag_length", "tag_font",
                    "tag_glyph_sheet", "tag_style", "tag_colours")},
    **{name: (lambda value: bool(value("gan_model")), "is used only with --gan_model")
       for name in ("gan_instances", "gan_fraction", "gan_in_eval")},
    "tag_crops": (lambda value: _renders_tags(value) or value("identity") == "regex",
                  "is used only with --rendered_tags=N or --identity=regex (tags whose code is known)"),
    "depth_model": (lambda value: "depth" in (value("scene_outputs") or ()),
                    "is used only with --scene_outputs=depth"),
    "grid_positions": (lambda value: value("layout") == "grid", "is used only with --layout=grid"),
    "max_overlap": (lambda value: float(value("max_occlusion") or 0) <= 0,
                    "is not used with --max_occlusion (overlap is then bounded by the share of "
                    "each object's mask that later pastes cover)"),
}

# Flags of the random layout that --layout=grid does not read.
GRID_UNUSED = ("num_images", "objects_per_image", "negative_fraction", "max_overlap", "max_occlusion",
               "class_balance", "rendered_fraction", "gan_fraction", "distractor_dirs",
               "distractors_per_image")


def unused_flags(mode: str, given: Mapping[str, object]) -> list[tuple[str, str]]:
    """(flag name, message) for each flag of ``given`` (name -> value of the flags given
    explicitly) that ``--mode=MODE`` does not read, in the order of ``given``: a flag of another
    mode, or one that the other flags make unused (`DEPENDENT_FLAGS`)."""
    def value(name: str) -> object:
        return given[name] if name in given else FLAGS[name].default

    found = []
    for name in given:
        if name not in ALL_FLAGS:
            continue  # absl's own flags
        if mode == "generate" and name in GRID_UNUSED and value("layout") == "grid":
            found.append((name, f"--{name} is not used with --layout=grid (one object per image, "
                                "every cutout on every background)"))
            continue
        if name in MODE_FLAGS[mode] and name in DEPENDENT_FLAGS:
            is_read, why_not = DEPENDENT_FLAGS[name]
            if not is_read(value):
                found.append((name, f"--{name} {why_not}"))
                continue
        if name not in MODE_FLAGS[mode]:
            if name in PIPELINE_FLAGS:
                owner = "it goes with --mode=generate, or --mode=convert --split_from=RUN"
            else:
                readers = [m for m in MODES if name in MODE_FLAGS[m]]
                article = "an" if readers[0][0] in "aeiou" else "a"  # an evaluate flag
                owner = f"it is {article} {' and '.join(readers)} flag"
            found.append((name, f"--{name} is not used by --mode={mode}; {owner}"))
        elif name == "pipeline_config" and mode == "convert" and not given.get("split_from"):
            found.append((name, "--pipeline_config goes with --mode=generate, or with --mode=convert "
                                "--split_from=RUN (to evaluate RUN's model on the converted photos)"))
        elif name in PIPELINE_FLAGS[1:] and mode == "convert" and not given.get("split_from"):
            found.append((name, f"--{name} is used by --mode=convert only with --split_from=RUN and "
                                "--pipeline_config"))
        elif name in PIPELINE_FLAGS[1:] and not given.get("pipeline_config"):
            found.append((name, f"--{name} is used only with --pipeline_config"))
    return found


def _check_mode_flags() -> None:
    """Refuse a typed flag that --mode does not read; warn (one line) about such flags of a
    --flagfile, which may hold settings shared by several modes."""
    given = {name: FLAGS[name].value for name in FLAGS if name in ALL_FLAGS and FLAGS[name].present}
    unused = unused_flags(FLAGS.mode, given)
    typed = [message for name, message in unused if typed_on_command_line(name)]
    if typed:
        raise app.UsageError("; ".join(typed))
    if unused:
        print(f"warning: --mode={FLAGS.mode} ignores these flags of the --flagfile: "
              + ", ".join(f"--{name}" + (f" ({message})" if name in DEPENDENT_FLAGS else "")
                          for name, message in unused), file=sys.stderr)


def _require(name: str) -> None:
    if not FLAGS[name].value:
        raise app.UsageError(f"--{name} is required for --mode={FLAGS.mode}")


def convert_config() -> ConvertConfig:
    """The validated `ConvertConfig` of the parsed flags."""
    _require("input_dirs")
    _require("output_dir")
    if "/" in FLAGS.record_name or not FLAGS.record_name.strip():
        raise app.UsageError(f"--record_name must be a plain file name, got {FLAGS.record_name!r}")
    try:
        return _convert_config()
    except ValueError as error:
        raise app.UsageError(str(error)) from None


def _convert_config() -> ConvertConfig:
    return ConvertConfig(
        input_dirs=tuple(FLAGS.input_dirs), annotation_dirs=tuple(FLAGS.annotation_dirs),
        label_map_path=FLAGS.label_map, output_dir=FLAGS.output_dir,
        record_name=FLAGS.record_name, num_shards=FLAGS.num_shards,
        keep_negatives=FLAGS.keep_negatives, tile_size=FLAGS.tile_size, tile_overlap=FLAGS.tile_overlap,
        tile_min_visible=FLAGS.tile_min_visible, tile_negative_fraction=FLAGS.tile_negative_fraction,
        overwrite=FLAGS.overwrite, on_error=FLAGS.on_error, unlabelled=FLAGS.unlabelled,
        ignore_classes=tuple(FLAGS.ignore_classes), split_from=FLAGS.split_from)


def _pair(name: str, kind: type) -> tuple:
    values = FLAGS[name].value
    try:
        if len(values) != 2:
            raise ValueError
        return tuple(kind(value) for value in values)
    except ValueError:
        raise app.UsageError(f"--{name} takes min,max (two numbers), got {','.join(values)!r}") from None


def input_settings() -> dict:
    """The `InputsConfig` settings of the parsed flags (generate, and ``gan train``)."""
    return dict(
        input_dirs=tuple(FLAGS.input_dirs), annotation_dirs=tuple(FLAGS.annotation_dirs),
        background_dirs=tuple(FLAGS.background_dirs), label_map_path=FLAGS.label_map,
        on_error=FLAGS.on_error, coco_json=tuple(FLAGS.coco_json),
        coco_image_dirs=tuple(FLAGS.coco_image_dirs), yolo_dirs=tuple(FLAGS.yolo_dirs),
        voc_seg_dirs=tuple(FLAGS.voc_seg_dirs), cutout_dirs=tuple(FLAGS.cutout_dirs),
        distractor_dirs=tuple(FLAGS.distractor_dirs), mask=FLAGS.mask, mask_model=FLAGS.mask_model,
        unlabelled=FLAGS.unlabelled, ignore_classes=tuple(FLAGS.ignore_classes),
        use_truncated_cutouts=FLAGS.use_truncated_cutouts,
        use_difficult_cutouts=FLAGS.use_difficult_cutouts,
        rendered_tags=FLAGS.rendered_tags, tag_class=FLAGS.tag_class, tag_alphabet=FLAGS.tag_alphabet,
        tag_length=FLAGS.tag_length, tag_font=FLAGS.tag_font, tag_glyph_sheet=FLAGS.tag_glyph_sheet,
        tag_style=parse_tag_style(FLAGS.tag_style), tag_colours=tuple(FLAGS.tag_colours),
        gan_model=FLAGS.gan_model, gan_instances=FLAGS.gan_instances)


def generate_config() -> GenerateConfig:
    """The validated `GenerateConfig` of the parsed flags."""
    _require("output_dir")
    try:
        return GenerateConfig.from_settings(
            **input_settings(), output_dir=FLAGS.output_dir, num_images=FLAGS.num_images,
            eval_fraction=FLAGS.eval_fraction, canvas_size=FLAGS.canvas_size,
            objects_per_image=_pair("objects_per_image", int),
            negative_fraction=FLAGS.negative_fraction, blend=tuple(FLAGS.blend),
            scale_range=_pair("scale_range", float), max_overlap=FLAGS.max_overlap,
            allow_truncation=FLAGS.allow_truncation, identity=FLAGS.identity,
            identity_regex=FLAGS.identity_regex, share_backgrounds=FLAGS.share_backgrounds,
            seed=FLAGS.seed, num_workers=FLAGS.num_workers, num_shards=FLAGS.num_shards,
            jpeg_quality=FLAGS.jpeg_quality, cache_mb=FLAGS.cache_mb, overwrite=FLAGS.overwrite,
            resume=FLAGS.resume, runner=FLAGS.runner,
            beam_pipeline_options=FLAGS.beam_pipeline_options,
            distractors_per_image=_pair("distractors_per_image", int), class_balance=FLAGS.class_balance,
            object_augment=parse_ranges(FLAGS.object_augment, "object"),
            no_flip_classes=tuple(FLAGS.no_flip_classes),
            image_augment=parse_ranges(FLAGS.image_augment, "image"),
            max_occlusion=FLAGS.max_occlusion, min_visible=FLAGS.min_visible,
            min_visibility=FLAGS.min_visibility,
            instance_masks=FLAGS.instance_masks, yolo_output=FLAGS.yolo_output, report=FLAGS.report,
            rendered_fraction=FLAGS.rendered_fraction, tag_crops=FLAGS.tag_crops,
            gan_fraction=FLAGS.gan_fraction, gan_in_eval=FLAGS.gan_in_eval,
            scene_outputs=tuple(FLAGS.scene_outputs), depth_model=FLAGS.depth_model,
            layout=FLAGS.layout, grid_positions=FLAGS.grid_positions)
    except ValueError as error:
        raise app.UsageError(str(error)) from None


def main(argv: list[str]) -> int:
    """Run the mode chosen by the flags; returns the process exit status."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    _check_mode_flags()
    if FLAGS.mode == "report":
        _require("output_dir")
        from spatule_synth.modes.report import write_report
        warnings: list[str] = []
        try:
            written = write_report(FLAGS.output_dir, compare_to=FLAGS.compare_to, warnings=warnings)
        except (OSError, ValueError, KeyError) as error:
            print(f"error: {FLAGS.output_dir}: cannot report on it: {error}", file=sys.stderr)
            return 1
        print("\n".join(f"report: {path}" for path in written))
        if FLAGS.compare_to:
            print("domain match with " + FLAGS.compare_to + ": " + (
                f"{len(warnings)} measure(s) not covered" if warnings else "every measure covered"))
            if warnings:
                print("\n".join(f"  warning: {w}" for w in warnings))
        return 0
    if FLAGS.mode == "verify":
        _require("output_dir")
        from spatule_synth.modes.verify import verify_output
        report = verify_output(FLAGS.output_dir)
        print(report.table())
        return 1 if report.failed else 0
    if FLAGS.mode == "evaluate":
        return _evaluate()
    config = generate_config() if FLAGS.mode == "generate" else convert_config()
    # Imported here so that --help and flag errors answer without loading TensorFlow.
    from spatule_synth.modes.convert import run_convert
    from spatule_synth.generate.execute import RunnerError
    from spatule_synth.core.images import ImageReadError
    from spatule_synth.formats.label_map import LabelMapError
    from spatule_synth.formats.labelimg import InputDirError
    from spatule_synth.core.masks import MaskModelError
    from spatule_synth.core.depth import DepthModelError
    from spatule_synth.core.output_dir import OutputDirError, OutputWriteError
    from spatule_synth.core.problems import RunStopped
    from spatule_synth.generate.sources import SourceError
    from spatule_synth.generate.split import SplitError
    from spatule_synth.generate.run import run_generate
    run = run_generate if FLAGS.mode == "generate" else run_convert
    # --pipeline_config of a --flagfile, in convert without --split_from: ignored (with a warning)
    wants_config = FLAGS.pipeline_config and (FLAGS.mode == "generate" or FLAGS.split_from)
    model_name = _check_pipeline_flags() if wants_config else None
    try:
        result = run(config)
        result_lines = []
        if model_name is not None:
            try:
                result_lines.append(_write_pipeline_config(config, model_name))
            except ValueError as error:  # e.g. a run without eval images: nothing to evaluate on
                print(result.summary())
                print(f"error: pipeline.config not written: {error}", file=sys.stderr)
                return 1
    except (LabelMapError, InputDirError, OutputDirError, RunStopped, SourceError, SplitError,
            ImageReadError, MaskModelError, DepthModelError, RunnerError, OutputWriteError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        from spatule_synth.generate.progress import is_unfinished_run
        resumable = FLAGS.mode == "generate" and is_unfinished_run(FLAGS.output_dir)
        print("interrupted: no manifest was written" + (
            "; the images finished so far are kept: rerun with --resume to finish" if resumable
            else ""), file=sys.stderr)
        return 130
    print("\n".join([result.summary(), *result_lines]))
    return 0


def _evaluate() -> int:
    """--mode=evaluate: score --detector on --records into --output_dir (see modes/evaluate.py)."""
    for name in ("detector", "records", "output_dir"):
        _require(name)
    from spatule_synth.core.output_dir import OutputDirError, OutputWriteError
    from spatule_synth.modes.detector import DetectorError
    from spatule_synth.modes.evaluate import EvaluateConfig, EvaluateError, run_evaluate
    config = EvaluateConfig(detector=FLAGS.detector, records=FLAGS.records, output_dir=FLAGS.output_dir,
                            score_threshold=FLAGS.score_threshold, overwrite=FLAGS.overwrite)
    try:
        result = run_evaluate(config)
    except (EvaluateError, DetectorError, OutputDirError, OutputWriteError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: {error.filename or FLAGS.output_dir}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def _check_pipeline_flags() -> str:
    """Refuse a bad --pipeline_config, checkpoint or model name before a long run, not after it;
    returns the model name (``models/NAME/``; convert appends ``_real_eval``)."""
    from spatule_synth.modes.pipeline_config import available_templates, check_fine_tune_checkpoint
    if FLAGS.pipeline_config not in available_templates():
        raise app.UsageError(f"--pipeline_config must be one of {', '.join(available_templates())}, "
                             f"got {FLAGS.pipeline_config!r}")
    if FLAGS.fine_tune_checkpoint:
        try:
            check_fine_tune_checkpoint(FLAGS.fine_tune_checkpoint)
        except ValueError as error:
            raise app.UsageError(str(error)) from None
    return _model_name()


def _is_folder_name(name: str) -> bool:
    """The rule of `write_pipeline_config`: one path component, not ``.`` or ``..``."""
    separators = {"/", os.sep, os.altsep} - {None}
    return bool(name) and name not in (".", "..") and not any(sep in name for sep in separators)


def _split_from_run() -> str:
    """--split_from's run folder (the flag names the folder or its manifest.json)."""
    split_from = FLAGS.split_from
    return split_from if storage.is_dir(split_from) else os.path.dirname(split_from)


def _model_name() -> str:
    """--model_name, checked, or the run's folder name: --output_dir's (generate), --split_from's
    (convert: the model being evaluated)."""
    if FLAGS["model_name"].present:
        if not _is_folder_name(FLAGS.model_name):
            raise app.UsageError(f"--model_name must be a plain folder name (no '/'), got "
                                 f"{FLAGS.model_name!r}")
        return FLAGS.model_name
    run = FLAGS.output_dir if FLAGS.mode == "generate" else _split_from_run()
    name = os.path.basename(os.path.normpath(os.path.abspath(run)))
    if not _is_folder_name(name):
        raise app.UsageError(f"cannot name the model after the run folder {run!r}: give --model_name")
    return name


def _write_pipeline_config(config: GenerateConfig | ConvertConfig, model_name: str) -> str:
    """generate: the run's training config, in ``models/MODEL_NAME/``. convert --split_from=RUN:
    RUN's config with the converted photos as its eval input, in ``models/MODEL_NAME_real_eval/``."""
    from spatule_synth.formats.label_map import read_label_map
    from spatule_synth.formats.manifest import read_manifest_head
    from spatule_synth.modes.pipeline_config import write_pipeline_config
    label_map = read_label_map(config.inputs.label_map_path if isinstance(config, GenerateConfig)
                               else config.label_map_path)
    common = (FLAGS.pipeline_config, FLAGS.workspace, label_map, FLAGS.batch_size, FLAGS.num_steps,
              FLAGS.fine_tune_checkpoint or None)
    if isinstance(config, GenerateConfig):
        path = write_pipeline_config(common[0], config.output.output_dir, *common[1:],
                                     model_name=model_name,
                                     no_flip_classes=config.placement.no_flip_classes)
        return f"pipeline.config: {path}"
    run = _split_from_run()
    run_flags = read_manifest_head(run).get("config", {})
    path = write_pipeline_config(common[0], run, *common[1:], model_name=f"{model_name}_real_eval",
                                 eval_output_dir=config.output_dir,
                                 no_flip_classes=tuple(run_flags.get("no_flip_classes", ())))
    trained = os.path.join(os.path.dirname(os.path.dirname(path)), model_name)
    return (f"pipeline.config evaluating {run}'s model on these photos: {path} (model_main_tf2.py "
            f"--pipeline_config_path={path} --model_dir={os.path.dirname(path)} "
            f"--checkpoint_dir=<the trained model's folder, e.g. {trained}>)")


def _flag_error_message(error: flags.Error) -> str:
    """absl's flag parsing error as one clause."""
    if isinstance(error, flags.UnrecognizedFlagError):
        name = error.flagname
        known = [n for n in FLAGS if len(n) > 1]
        known += ["no" + n for n in known if FLAGS[n].boolean]
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.75)
        hint = f"; did you mean {' or '.join('--' + n for n in close)}?" if close else ""
        return f"unknown flag --{name}{hint}"
    return str(error).removeprefix("ERROR:: ")


def _usage_error(message: str) -> NoReturn:
    """One line on stderr, exit status 2: the whole usage text would bury the message."""
    clause = " ".join(line.strip() for line in message.splitlines() if line.strip())
    print(f"error: {clause} ({USAGE_HINT})", file=sys.stderr)
    sys.exit(USAGE_EXIT_STATUS)


def _command_line_flag_names(args: list[str]) -> set[str]:
    """The flags ``args`` (sys.argv[1:]) give themselves, not through a --flagfile; scanned as
    absl parses them (``--name=value``, ``--name value``, ``--noname``; positional arguments
    skipped; stops at ``--``)."""
    names = set()
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            break
        if not arg.startswith("-"):  # a positional argument (gan's "train"): absl reads on
            continue
        name, equals, _ = arg.lstrip("-").partition("=")
        if name == "flagfile":
            if not equals:
                next(rest, None)
            continue
        if name not in FLAGS and name.startswith("no") and name[2:] in FLAGS:
            name = name[2:]
        elif name in FLAGS and not FLAGS[name].boolean and not equals:
            next(rest, None)
        names.add(name)
    return names


def typed_on_command_line(name: str) -> bool:
    """Whether flag ``name`` was given on the command line itself (not by a --flagfile); True
    when that is not known (flags parsed without `parse_flags`)."""
    return _command_line_flags is None or name in _command_line_flags


def parse_flags(argv: list[str]) -> list[str]:
    """app.run's flag parser: a flag error is one usage line, not absl's "FATAL Flags parsing
    error" and exit status 1. --help and --helpfull work as before (they exit while parsing)."""
    global _command_line_flags
    try:
        remaining = FLAGS(argv)
    except flags.Error as error:
        _usage_error(_flag_error_message(error))
    _command_line_flags = _command_line_flag_names(argv[1:])
    return remaining


def _main_with_usage_errors(argv: list[str]) -> NoReturn:
    try:
        status = main(argv)
    except app.UsageError as error:  # absl would print the whole usage text first
        _usage_error(str(error))
    sys.exit(status)


def _make_key_flags(key_flags) -> None:
    """--help lists the flags that are key to the program being run (``sys.argv[0]``): make
    ``key_flags`` key to it, whatever the program's file (generate.py, bin/spatule-synth, a
    ``python -m`` module)."""
    for flag in key_flags:
        FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def run() -> None:
    """Entry point of ``generate.py`` and of the installed ``spatule-synth`` command."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's CUDA/CPU start-up chatter
    _make_key_flags(FLAGS.get_key_flags_for_module(sys.modules[__name__]))
    app.run(_main_with_usage_errors, flags_parser=parse_flags)


def check_command_flags(read_flags: set[str] | frozenset[str], command: str) -> None:
    """For ``python -m spatule_synth.NAME``: a generate/convert flag given that ``command`` (e.g.
    "gan train") does not read is a usage error when typed, and one warning line when it comes
    from a ``--flagfile`` (which may hold other modes' settings)."""
    unused = sorted(name for name in ALL_FLAGS if FLAGS[name].present and name not in read_flags)
    typed = [name for name in unused if typed_on_command_line(name)]
    if typed:
        raise app.UsageError(", ".join(f"--{name}" for name in typed) + f" not used by {command}")
    if unused:
        print(f"warning: {command} ignores these flags of the --flagfile: "
              + ", ".join(f"--{name}" for name in unused), file=sys.stderr)


def run_module(main_function: Callable[[list[str]], int], usage: str,
               read_flags: Iterable[str] = ()) -> NoReturn:
    """Run ``main_function`` as the command ``python -m spatule_synth.NAME`` (``usage`` names it):
    flags parsed as for ``generate.py`` (`parse_flags`), a usage error as one line and status 2,
    TensorFlow's C++ start-up chatter off; ``--help`` lists the command's own flags and the
    ``read_flags`` of this module it reads."""
    _make_key_flags(FLAGS[name] for name in sorted(read_flags))
    def main_with_usage_errors(argv: list[str]) -> NoReturn:
        try:
            status = main_function(argv)
        except app.UsageError as error:
            print(f"error: {error} (see {usage} --help)", file=sys.stderr)
            sys.exit(USAGE_EXIT_STATUS)
        sys.exit(status)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    app.run(main_with_usage_errors, flags_parser=parse_flags)

