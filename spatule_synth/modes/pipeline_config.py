"""``WORKSPACE/models/NAME/pipeline.config``: a TF2 Object Detection API training config for a run.

`write_pipeline_config` takes one of the TF2 Detection Model Zoo configs in
``spatule_synth/pipeline_templates/`` (verbatim copies of tensorflow/models
``research/object_detection/configs/tf2/*.config``, Apache-2.0) and fills in what depends on the
run and on the user:

* ``num_classes``: the largest id of the label map;
* ``train_input_reader`` / ``eval_input_reader``: ``label_map_path`` (the run's
  ``annotations/label_map.pbtxt``) and ``tf_record_input_reader.input_path``, an absolute path or
  glob that matches exactly the split's shards (`spatule_synth.formats.tfrecord.shard_glob`);
* ``train_config``: ``batch_size``; ``num_steps`` together with the cosine schedule's
  ``total_steps`` and ``warmup_steps`` (scaled with it, always below ``total_steps``);
  ``fine_tune_checkpoint`` with ``fine_tune_checkpoint_type: "detection"`` when a checkpoint is
  given, otherwise the template's ``fine_tune_checkpoint*`` lines are removed (training starts
  from scratch, and a comment says so); ``use_bfloat16: false`` (the zoo configs were written for
  TPUs; the TF OD API tutorial sets it to false elsewhere); ``max_number_of_boxes`` >= the most
  objects any image of the run has (the OD API pads the ground truth to it);
* ``eval_input_reader.max_number_of_boxes``: the same bound, which evaluation pads to;
* ``train_config.data_augmentation_options``: with ``no_flip_classes`` (generate's
  ``--no_flip_classes``, e.g. text tags), every option holding a ``random_horizontal_flip`` is
  removed, with a comment in its place: those objects must never be mirrored, and the OD API would
  mirror whole training images. The other options stay.

How: the OD API's own protos (``object_detection.protos.pipeline_pb2``) are not installed with
tf-models-official, and parsing the template against a partial schema and printing it back would
drop every field the schema does not declare. So the template is edited as text, but not with
blind regular expressions: `spatule_synth.formats.pbtxt_edit` finds each field by its path
(``train_config.optimizer.*.learning_rate.cosine_decay_learning_rate.total_steps``), an edit
fails unless exactly one field matches, and only that field's value or line changes; comments,
order and every other field stay as in the template. The result is then parsed by protobuf's
``text_format`` against a partial OD API schema declared here (`_PIPELINE_SCHEMA`; unknown fields
and messages are skipped) and every filled-in value is read back and compared before the file is
written.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re

from absl import logging
from google.protobuf import text_encoding, text_format

from spatule_synth.formats import pbtxt_edit
from spatule_synth.formats.label_map import LabelMap, read_label_map
from spatule_synth.formats.manifest import MANIFEST_NAME, read_manifest
from spatule_synth.core import storage
from spatule_synth.core.output_dir import atomic_write_bytes
from spatule_synth.formats.proto_schema import message_classes
from spatule_synth.formats.tfrecord import shard_glob, shard_paths

TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "pipeline_templates")

# Template name -> the TF2 Detection Model Zoo model whose config and checkpoint it belongs to.
TEMPLATES = {
    "ssd_mobilenet_v2_fpnlite_320x320": "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8",
    "ssd_resnet50_v1_fpn_640x640": "ssd_resnet50_v1_fpn_640x640_coco17_tpu-8",
}
ZOO_URL = "http://download.tensorflow.org/models/object_detection/tf2/20200711/{model}.tar.gz"
PIPELINE_CONFIG_NAME = "pipeline.config"
NOTE = "spatule_synth:"  # starts the comment of every line this module wrote
_GLOB_SPECIAL = set("*?[]\\")  # TensorFlow globs every input_path (tf.io.gfile.glob)


def available_templates() -> list[str]:
    return sorted(TEMPLATES)


def template_path(name: str) -> str:
    """The template file of ``name``; `ValueError` listing the available names otherwise."""
    if name not in TEMPLATES:
        raise ValueError(f"unknown pipeline config {name!r}; available: "
                         + ", ".join(available_templates()))
    return os.path.join(TEMPLATE_DIR, f"{name}.config")


def zoo_checkpoint_url(name: str) -> str:
    """Where the model zoo's ``.tar.gz`` (``checkpoint/ckpt-0``, ``saved_model/``) of ``name`` is."""
    template_path(name)
    return ZOO_URL.format(model=TEMPLATES[name])


def check_fine_tune_checkpoint(path: str) -> str:
    """The absolute checkpoint prefix ``path`` (``.../checkpoint/ckpt-0``); `ValueError` unless
    ``PATH.index`` exists. Cheap: call it before a long run."""
    absolute = os.path.abspath(path)
    if os.path.isfile(absolute + ".index"):
        return absolute
    hint = ""
    if os.path.isdir(absolute):
        prefixes = sorted(f[:-len(".index")] for f in os.listdir(absolute) if f.endswith(".index"))
        if prefixes:
            hint = f"; it is a folder: pass {os.path.join(path, prefixes[-1])}"
    raise ValueError(f"fine-tune checkpoint {path}: no {path}.index; pass the prefix of a TF2 "
                     "checkpoint, e.g. pre-trained-models/MODEL/checkpoint/ckpt-0 of an untarred "
                     f"model zoo download{hint}")


@dataclasses.dataclass(frozen=True)
class RecordSet:
    """The shards of one split of a run, and what ``input_path`` reads them with."""

    paths: tuple[str, ...]  # absolute
    input_path: str  # the absolute path (one shard) or the shard_glob pattern (several)
    label_map_path: str  # absolute
    max_objects: int  # the most objects of any image of the run


def write_pipeline_config(name: str, output_dir: str, workspace: str, label_map: LabelMap,
                          batch_size: int | None, num_steps: int | None,
                          fine_tune_checkpoint: str | None, *, model_name: str | None = None,
                          eval_output_dir: str | None = None,
                          no_flip_classes: tuple[str, ...] = ()) -> str:
    """Write ``WORKSPACE/models/MODEL_NAME/pipeline.config`` (``MODEL_NAME`` defaults to ``name``)
    for the finished run ``output_dir`` (generate or convert); returns its path.

    ``name``: a template of `available_templates`. ``label_map`` must be the run's. ``batch_size``
    and ``num_steps`` None keep the template's. ``fine_tune_checkpoint`` None trains from scratch.
    The eval reader reads the run's eval split, or ``eval_output_dir``'s (its eval split, or all
    its records for a convert run) when given, e.g. real labelled photos converted with
    ``--mode=convert``. ``no_flip_classes`` (the run's ``--no_flip_classes``) not empty removes
    the ``random_horizontal_flip`` augmentation. `ValueError` when there is nothing to evaluate on,
    or for bad arguments.
    """
    path = template_path(name)
    model_name = name if model_name is None else model_name
    if not model_name or model_name in (".", "..") or os.sep in model_name or "/" in model_name:
        raise ValueError(f"model name {model_name!r} must be a plain folder name")
    for label, value in (("batch_size", batch_size), ("num_steps", num_steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    checkpoint = None if fine_tune_checkpoint is None else check_fine_tune_checkpoint(fine_tune_checkpoint)
    if checkpoint is not None and TEMPLATES[name] not in checkpoint:
        logging.warning("fine-tune checkpoint %s is not under a %s folder; the checkpoint of "
                        "another architecture restores nothing useful (download %s)",
                        fine_tune_checkpoint, TEMPLATES[name], zoo_checkpoint_url(name))

    train = run_records(output_dir, "train", label_map)
    if eval_output_dir is None:
        evaluation = run_records(output_dir, "eval", label_map)
    else:
        evaluation = run_records(eval_output_dir, "eval", label_map, whole_convert_run=True)
    with open(path, encoding="utf-8") as handle:
        template = handle.read()
    model_dir = os.path.abspath(os.path.join(workspace, "models", model_name))
    header = _header(name, path, model_dir, output_dir, eval_output_dir)
    try:
        text = header + fill_template(template, label_map.num_classes, train, evaluation,
                                      batch_size, num_steps, checkpoint, tuple(no_flip_classes))
    except pbtxt_edit.PbtxtError as error:  # the template lacks a field, or has it twice
        raise ValueError(f"template: {error}") from error
    os.makedirs(model_dir, exist_ok=True)
    if any(f == "checkpoint" or re.fullmatch(r"ckpt-\d+\.index", f) for f in os.listdir(model_dir)):
        logging.warning("%s already holds training checkpoints: model_main_tf2.py resumes from "
                        "the latest one; use another model name to start afresh", model_dir)
    target = os.path.join(model_dir, PIPELINE_CONFIG_NAME)
    atomic_write_bytes(target, text.encode("utf-8"))
    return target


def run_records(output_dir: str, split: str, label_map: LabelMap,
                whole_convert_run: bool = False) -> RecordSet:
    """The ``split`` shards of the finished run ``output_dir``, checked: the manifest lists them,
    they exist, they are named as `shard_paths` names them, the split has images, and the run's
    label map equals ``label_map``. A convert run has one set of records and no split: it serves as
    ``train``, or as ``eval`` when ``whole_convert_run``."""
    if not storage.is_file(storage.join(output_dir, MANIFEST_NAME)):
        raise ValueError(f"{output_dir} is not a finished spatule_synth run (no {MANIFEST_NAME})")
    manifest = read_manifest(output_dir)
    if "splits" in manifest:
        entry = manifest["splits"].get(split) or {}
        records, images = entry.get("records") or [], entry.get("images", 0)
        empty = (f"the {split} split of {output_dir} has no images (generated with "
                 f"--eval_fraction=0?); generate with --eval_fraction > 0" if split == "eval" else
                 f"the {split} split of {output_dir} has no images")
    elif "records" in manifest:
        if split == "eval" and not whole_convert_run:
            raise ValueError(f"{output_dir} is a {manifest.get('mode', 'convert')} run: its records "
                             "are one set, with no eval split; evaluate on another run "
                             "(eval_output_dir) or generate one with train and eval splits")
        records = manifest["records"]
        images = manifest.get("counts", {}).get("examples", len(manifest.get("examples", [])))
        empty = f"{output_dir} has no examples"
    else:
        raise ValueError(f"{output_dir}/{MANIFEST_NAME} lists no records")
    if not records or not images:
        raise ValueError(empty)

    run_label_map = read_label_map(storage.join(output_dir, "annotations", "label_map.pbtxt"))
    if [(i.id, i.name) for i in run_label_map.items] != [(i.id, i.name) for i in label_map.items]:
        raise ValueError(f"the label map of {output_dir} ("
                         + ", ".join(f"{i.id}: {i.name}" for i in run_label_map.items)
                         + ") differs from the one given (" + ", ".join(
                             f"{i.id}: {i.name}" for i in label_map.items) + ")")
    paths = tuple(storage.absolute(storage.join(output_dir, record)) for record in records)
    return RecordSet(paths, _input_path(paths),
                     storage.absolute(storage.join(output_dir, "annotations", "label_map.pbtxt")),
                     _max_objects(manifest))


def _input_path(paths: tuple[str, ...]) -> str:
    missing = [p for p in paths if not storage.is_file(p)]
    if missing:
        raise ValueError(f"record shards listed in the manifest are missing: {', '.join(missing)}")
    special = sorted({c for path in paths for c in path if c in _GLOB_SPECIAL})
    if special:
        raise ValueError(f"{paths[0]} contains {' '.join(special)}, which TensorFlow reads as "
                         "glob patterns in input_path; move or rename the run so that its path "
                         "has none of them")
    if len(paths) == 1:
        pattern = paths[0]
    else:
        match = re.fullmatch(r"(.+)\.record-\d{5}-of-\d{5}", paths[0])
        prefix = match.group(1) if match else None
        if prefix is None or sorted(paths) != shard_paths(prefix, len(paths)):
            raise ValueError("record shards are not one complete set named "
                             f"PREFIX.record-SSSSS-of-NNNNN: {', '.join(paths)}")
        pattern = shard_glob(prefix, len(paths))
    matched = storage.glob(pattern)
    if matched != sorted(paths):
        raise ValueError(f"input_path {pattern} would read {matched}, not exactly {sorted(paths)}")
    return pattern


def _max_objects(manifest: dict) -> int:
    images = [image for split_images in (manifest.get("images") or {}).values()
              for image in split_images]
    images += manifest.get("examples") or []
    return max((len(image.get("objects") or ()) for image in images), default=0)


def _header(name: str, path: str, model_dir: str, output_dir: str, eval_output_dir: str | None) -> str:
    from spatule_synth import __version__
    data = storage.absolute(output_dir)
    if eval_output_dir is not None:
        data += f" (eval: {storage.absolute(eval_output_dir)})"
    template = os.path.relpath(path, os.path.dirname(TEMPLATE_DIR))
    return (f"# {NOTE} pipeline.config of the run {data},\n"
            f"# written by spatule_synth {__version__} from {template}.\n"
            f"# Lines with a \"{NOTE}\" comment were filled in; the rest is the template, the TF2\n"
            f"# Detection Model Zoo config of {TEMPLATES[name]} (Apache-2.0).\n"
            f"# Train:    python model_main_tf2.py --model_dir={model_dir} \\\n"
            f"#               --pipeline_config_path={os.path.join(model_dir, PIPELINE_CONFIG_NAME)}\n"
            f"# Evaluate: the same plus --checkpoint_dir={model_dir}\n\n")


# --- filling in the template --------------------------------------------------------------------

_SCHEDULE = ("train_config", "optimizer", "*", "learning_rate", "cosine_decay_learning_rate")


def fill_template(template: str, num_classes: int, train: RecordSet, evaluation: RecordSet,
                  batch_size: int | None, num_steps: int | None,
                  fine_tune_checkpoint: str | None, no_flip_classes: tuple[str, ...] = ()) -> str:
    """The template text with the fields of the module docstring filled in, checked by parsing;
    `pbtxt_edit.PbtxtError` when the template lacks a field to edit or has it more than once."""
    text = template
    text = _set(text, ("model", "*", "num_classes"), str(num_classes),
                "the largest id of the run's label_map.pbtxt")
    if batch_size is not None:
        text = _set(text, ("train_config", "batch_size"), str(batch_size), "--batch_size")
    total = int(pbtxt_edit.value_of(text, _SCHEDULE + ("total_steps",)))
    warmup = int(pbtxt_edit.value_of(text, _SCHEDULE + ("warmup_steps",)))
    if int(pbtxt_edit.value_of(text, ("train_config", "num_steps"))) != total:
        raise ValueError("template: train_config.num_steps differs from the schedule's total_steps")
    if num_steps is not None:
        new_warmup = min(warmup * num_steps // total, num_steps - 1)
        text = _set(text, ("train_config", "num_steps"), str(num_steps), "--num_steps")
        text = _set(text, _SCHEDULE + ("total_steps",), str(num_steps), "= num_steps")
        text = _set(text, _SCHEDULE + ("warmup_steps",), str(new_warmup),
                    f"the template's {warmup} of {total} steps, scaled to {num_steps}")
        total, warmup = num_steps, new_warmup
    if not warmup < total:
        raise ValueError(f"template: warmup_steps {warmup} is not below total_steps {total}")

    if fine_tune_checkpoint is not None:
        text = _set(text, ("train_config", "fine_tune_checkpoint"), _quote(fine_tune_checkpoint),
                    "--fine_tune_checkpoint (model zoo detection checkpoint)")
        text = _set(text, ("train_config", "fine_tune_checkpoint_type"), _quote("detection"),
                    "restore the whole detector except its class head")
    else:
        text = pbtxt_edit.delete(text, ("train_config", "fine_tune_checkpoint_version"), (
            f"{NOTE} no fine_tune_checkpoint given: training starts from scratch (random weights).",
            "To fine-tune the model zoo detector instead, pass generate.py",
            "--fine_tune_checkpoint=WORKSPACE/pre-trained-models/MODEL/checkpoint/ckpt-0."))
        text = pbtxt_edit.delete(text, ("train_config", "fine_tune_checkpoint"))
        text = pbtxt_edit.delete(text, ("train_config", "fine_tune_checkpoint_type"))
    if pbtxt_edit.find(pbtxt_edit.parse(text), ("train_config", "use_bfloat16")):
        text = _set(text, ("train_config", "use_bfloat16"), "false",
                    "bfloat16 is for TPUs; set true only when training on one")
    boxes = max(train.max_objects, evaluation.max_objects,
                int(pbtxt_edit.value_of(text, ("train_config", "max_number_of_boxes"))))
    text = _set(text, ("train_config", "max_number_of_boxes"), str(boxes),
                "at least the most objects of any image of the run")

    for reader, records in (("train_input_reader", train), ("eval_input_reader", evaluation)):
        text = _set(text, (reader, "label_map_path"), _quote(records.label_map_path),
                    "the run's label map")
        note = ("the split's shard" if len(records.paths) == 1
                else f"exactly the split's {len(records.paths)} shards")
        text = _set(text, (reader, "tf_record_input_reader", "input_path"),
                    _quote(records.input_path), note)
    if pbtxt_edit.find(pbtxt_edit.parse(text), ("eval_input_reader", "max_number_of_boxes")):
        text = _set(text, ("eval_input_reader", "max_number_of_boxes"), str(boxes), "as in train_config")
    else:
        text = pbtxt_edit.insert(text, ("eval_input_reader",), f"max_number_of_boxes: {boxes}",
                                 f"{NOTE} evaluation pads the ground truth to this (default 100)")
    if no_flip_classes:
        text = _remove_horizontal_flips(text, no_flip_classes)

    _check(text, num_classes, train, evaluation, batch_size, num_steps, fine_tune_checkpoint, boxes,
           bool(no_flip_classes))
    return text


def _set(text: str, path: tuple[str, ...], value: str, note: str) -> str:
    """`pbtxt_edit.set_value`, the field's line ending with a ``NOTE`` comment (one only)."""
    return pbtxt_edit.set_value(text, path, value, f"{NOTE} {note}", marker=NOTE)


def _remove_horizontal_flips(text: str, no_flip_classes: tuple[str, ...]) -> str:
    """Remove each ``train_config.data_augmentation_options`` that holds a
    ``random_horizontal_flip`` (whatever its options), a ``NOTE`` comment in its place."""
    note = (f"{NOTE} random_horizontal_flip removed: --no_flip_classes={','.join(no_flip_classes)} "
            "must never be mirrored")
    path = ("train_config", "data_augmentation_options")
    flips = [option for option in pbtxt_edit.find(pbtxt_edit.parse(text), path)
             if any(child.name == "random_horizontal_flip" for child in option.children)]
    for option in reversed(flips):  # from the end: the offsets of the earlier ones stay valid
        text = pbtxt_edit.delete_field(text, option, (note,))
    return text


def _quote(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{value!r} is not valid UTF-8; rename it") from error
    return '"' + text_encoding.CEscape(value, as_utf8=True) + '"'


def _check(text: str, num_classes: int, train: RecordSet, evaluation: RecordSet,
           batch_size: int | None, num_steps: int | None, checkpoint: str | None, boxes: int,
           flips_removed: bool = False) -> None:
    """Parse ``text`` with protobuf against the partial OD API schema and compare what was filled."""
    if any("PATH_TO_BE_CONFIGURED" in string for string in pbtxt_edit.string_literals(text)):
        raise ValueError("pipeline config: a PATH_TO_BE_CONFIGURED placeholder is left")
    config = _pipeline_class()()
    try:
        text_format.Parse(text, config, allow_unknown_field=True)
    except text_format.ParseError as error:
        raise ValueError(f"pipeline config does not parse: {error}") from error
    (eval_reader,) = config.eval_input_reader
    schedule = config.train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate
    actual = {
        "num_classes": config.model.ssd.num_classes,
        "train input_path": list(config.train_input_reader.tf_record_input_reader.input_path),
        "eval input_path": list(eval_reader.tf_record_input_reader.input_path),
        "train label_map_path": config.train_input_reader.label_map_path,
        "eval label_map_path": eval_reader.label_map_path,
        "fine_tune_checkpoint": config.train_config.fine_tune_checkpoint or None,
        "fine_tune_checkpoint_type": config.train_config.fine_tune_checkpoint_type or None,
        "max_number_of_boxes": (config.train_config.max_number_of_boxes, eval_reader.max_number_of_boxes),
        "metrics_set": list(config.eval_config.metrics_set),
    }
    expected = {
        "num_classes": num_classes,
        "train input_path": [train.input_path], "eval input_path": [evaluation.input_path],
        "train label_map_path": train.label_map_path, "eval label_map_path": evaluation.label_map_path,
        "fine_tune_checkpoint": checkpoint,
        "fine_tune_checkpoint_type": "detection" if checkpoint else None,
        "max_number_of_boxes": (boxes, boxes),
        "metrics_set": ["coco_detection_metrics"],
    }
    if batch_size is not None:
        actual["batch_size"], expected["batch_size"] = config.train_config.batch_size, batch_size
    if num_steps is not None:
        actual["steps"] = (config.train_config.num_steps, schedule.total_steps)
        expected["steps"] = (num_steps, num_steps)
    if flips_removed:
        options = config.train_config.data_augmentation_options
        actual["random_horizontal_flip"] = any(o.HasField("random_horizontal_flip") for o in options)
        expected["random_horizontal_flip"] = False
    wrong = [f"{key}: {actual[key]!r}, expected {expected[key]!r}"
             for key in expected if actual[key] != expected[key]]
    if not schedule.warmup_steps < schedule.total_steps:
        wrong.append(f"warmup_steps {schedule.warmup_steps} >= total_steps {schedule.total_steps}")
    if wrong:
        raise ValueError("pipeline config check failed: " + "; ".join(wrong))


# object_detection.protos.TrainEvalPipelineConfig, only the fields `_check` reads (names, numbers
# and types as in tensorflow/models research/object_detection/protos/*.proto).
_PIPELINE_SCHEMA = {
    "TrainEvalPipelineConfig": [
        ("model", 1, "message", "optional", "DetectionModel"),
        ("train_config", 2, "message", "optional", "TrainConfig"),
        ("train_input_reader", 3, "message", "optional", "InputReader"),
        ("eval_config", 4, "message", "optional", "EvalConfig"),
        ("eval_input_reader", 5, "message", "repeated", "InputReader")],
    "DetectionModel": [("ssd", 2, "message", "optional", "Ssd")],
    "Ssd": [("num_classes", 1, "int32", "optional")],
    "TrainConfig": [
        ("batch_size", 1, "uint32", "optional"),
        ("data_augmentation_options", 2, "message", "repeated", "PreprocessingStep"),
        ("optimizer", 5, "message", "optional", "Optimizer"),
        ("fine_tune_checkpoint", 7, "string", "optional"), ("num_steps", 9, "uint32", "optional"),
        ("max_number_of_boxes", 20, "int32", "optional"),
        ("fine_tune_checkpoint_type", 22, "string", "optional")],
    "PreprocessingStep": [("random_horizontal_flip", 2, "message", "optional", "RandomHorizontalFlip")],
    "RandomHorizontalFlip": [],
    "Optimizer": [("momentum_optimizer", 2, "message", "optional", "MomentumOptimizer")],
    "MomentumOptimizer": [("learning_rate", 1, "message", "optional", "LearningRate")],
    "LearningRate": [("cosine_decay_learning_rate", 4, "message", "optional", "CosineDecayLearningRate")],
    "CosineDecayLearningRate": [("total_steps", 2, "uint32", "optional"),
                                ("warmup_steps", 4, "uint32", "optional")],
    "InputReader": [("label_map_path", 1, "string", "optional"),
                    ("tf_record_input_reader", 8, "message", "optional", "TFRecordInputReader"),
                    ("max_number_of_boxes", 21, "int32", "optional")],
    "TFRecordInputReader": [("input_path", 1, "string", "repeated")],
    "EvalConfig": [("metrics_set", 8, "string", "repeated")],
}


@functools.cache
def _pipeline_class():
    """``object_detection.protos.TrainEvalPipelineConfig`` of `_PIPELINE_SCHEMA`."""
    return message_classes("object_detection.protos", _PIPELINE_SCHEMA)["TrainEvalPipelineConfig"]
