"""``python -m spatule_synth.segmenter train --output=MODEL_DIR [inputs as generate]``.

The inputs are read by generate's readers and validation (`spatule_synth.segmenter.masked_objects`);
every object with a true mask becomes a pair (`spatule_synth.segmenter.pairs`), split into train,
held-out (by identity) and unseen classes; then `spatule_synth.segmenter.train.train_segmenter`,
and the exported model is loaded by `load_mask_model`, as ``generate --mask=model`` loads it, and
scored next to GrabCut and the whole box (`spatule_synth.segmenter.evaluation`). A flag that the
command does not read is a usage error when typed, and named in one warning line when it comes
from a ``--flagfile``, as in ``generate.py``.
"""

from __future__ import annotations

import collections
import os
import sys
import time

from absl import app, flags

from spatule_synth import cli
from spatule_synth.core.config import InputsConfig

flags.DEFINE_string("output", "", "segmenter train: the model folder (checkpoints, saved_model, "
                    "segmenter.json, evaluation_sheet.png).")
flags.DEFINE_integer("seg_size", 128, "segmenter train: side of the model's input crops, px (a "
                     "multiple of 8).", lower_bound=16)
flags.DEFINE_integer("seg_epochs", 30, "segmenter train: epochs.", lower_bound=1)
flags.DEFINE_integer("seg_batch_size", 16, "segmenter train: crops per step.", lower_bound=1)
flags.DEFINE_float("seg_holdout_fraction", 0.2, "segmenter train: share of the identities held out "
                   "of training for the evaluation (0: none).", lower_bound=0.0, upper_bound=0.95)
flags.DEFINE_list("seg_unseen_classes", [], "segmenter train: classes kept out of training "
                  "entirely, to measure the model on classes it never saw.")
FLAGS = flags.FLAGS
READ_FLAGS = {"input_dirs", "annotation_dirs", "label_map", "unlabelled", "ignore_classes", "on_error",
              "coco_json", "coco_image_dirs", "yolo_dirs", "voc_seg_dirs", "cutout_dirs", "background_dirs",
              "rendered_tags", "tag_class", "tag_alphabet", "tag_length", "tag_font", "tag_glyph_sheet",
              "tag_style", "tag_colours", "seed", "resume", "overwrite"}
USAGE = ("usage: python -m spatule_synth.segmenter train --output=MODEL_DIR [inputs as generate: "
         "--coco_json, --voc_seg_dirs, --cutout_dirs, --rendered_tags, --background_dirs, ...]")
NO_MASK = ("no object with a true mask in the inputs, left out: {left_out}. The segmenter learns from COCO "
           "polygons or RLE (--coco_json), VOC segmentation (--voc_seg_dirs), alpha cutouts "
           "(--cutout_dirs) or rendered tags (--rendered_tags=N); a box, or GrabCut's guess, is never "
           "training truth")


def _check_flags(argv: list[str]) -> None:
    if argv[1:] != ["train"]:
        raise app.UsageError(USAGE)
    cli.check_command_flags(READ_FLAGS, "segmenter train")
    if not FLAGS.output:
        raise app.UsageError("--output (the model folder) is required")
    if FLAGS.seed < 0:
        raise app.UsageError(f"--seed must be >= 0 for segmenter train, got {FLAGS.seed}")
    if FLAGS.seg_size % 8:
        raise app.UsageError(f"--seg_size must be a multiple of 8 (the U-Net halves it 3 times), got {FLAGS.seg_size}")


def main(argv: list[str]) -> int:
    _check_flags(argv)
    try:
        inputs = InputsConfig(**cli.input_settings())
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    # Imported here so that --help and usage errors answer without loading TensorFlow.
    from spatule_synth.core.problems import ProblemLog, RunStopped
    from spatule_synth.formats.label_map import read_label_map
    from spatule_synth.generate.sources import SourceError
    from spatule_synth.segmenter.masked_objects import Tally, describe_left_out, masked_objects
    from spatule_synth.segmenter.model_files import ModelFolderError, check_folder
    from spatule_synth.segmenter.pairs import PairError, build_pairs, split_pairs
    try:
        label_map = read_label_map(inputs.label_map_path)
        unknown = [name for name in FLAGS.seg_unseen_classes if label_map.id_of(name) is None]
        if unknown:
            raise app.UsageError(f"--seg_unseen_classes names {', '.join(map(repr, unknown))}, not a class "
                                 f"of the label map ({', '.join(label_map.names)})")
        check_folder(FLAGS.output, FLAGS.resume, FLAGS.overwrite)
        problems = ProblemLog(inputs.on_error)
        tally = Tally()
        pairs, left_out = build_pairs(masked_objects(inputs, label_map, problems, tally, FLAGS.seed),
                                      tally, problems, FLAGS.seed)
        if not pairs:
            raise PairError(NO_MASK.format(left_out=describe_left_out(left_out)))
        split = split_pairs(pairs, FLAGS.seg_holdout_fraction, tuple(FLAGS.seg_unseen_classes), FLAGS.seed)
        print(_counts_line(pairs, left_out, len(problems.problems)))
        print(_split_line(split))
        return _train_and_evaluate(split, pairs, left_out)
    except (SourceError, PairError, ModelFolderError, RunStopped, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _train_and_evaluate(split, pairs, left_out) -> int:
    """Train (TensorFlow is imported here), export, evaluate; segmenter.json last."""
    from spatule_synth.core.masks import load_mask_model
    from spatule_synth.core.output_dir import atomic_write_bytes
    from spatule_synth.segmenter import model_files
    from spatule_synth.segmenter.evaluation import evaluate_split, table
    from spatule_synth.segmenter.train import SegmenterSettings, train_segmenter
    import cv2
    settings = SegmenterSettings(FLAGS.output, FLAGS.seg_size, FLAGS.seg_epochs, FLAGS.seg_batch_size,
                                 FLAGS.seed, FLAGS.seg_holdout_fraction, tuple(FLAGS.seg_unseen_classes),
                                 FLAGS.resume, FLAGS.overwrite)
    start = time.perf_counter()
    history = train_segmenter(split, settings)
    seconds = time.perf_counter() - start
    saved = model_files.saved_model_path(settings.output_dir)
    sections, scores, sheet = evaluate_split(split.held_out, split.unseen, load_mask_model(saved))
    sheet_path = os.path.join(settings.output_dir, model_files.SHEET_FILE)
    if sheet is not None:
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        if ok:
            atomic_write_bytes(sheet_path, encoded.tobytes())
    info = {"format": model_files.INFO_FORMAT, "saved_model": model_files.SAVED_MODEL,
            "size": settings.size, "width": settings.width, "epochs": settings.epochs,
            "batch_size": settings.batch_size, "seed": settings.seed,
            "holdout_fraction": settings.holdout_fraction, "unseen_classes": list(settings.unseen_classes),
            "counts": _counts(pairs, split, left_out), "training_seconds": round(seconds, 1),
            "history": history, "evaluation": sections, "objects": [s.as_dict() for s in scores]}
    model_files.write_json(os.path.join(settings.output_dir, model_files.INFO_FILE), info)
    print(table(sections))
    if sheet is not None:
        print(f"sheet: {sheet_path}")
    print(f"segmenter.json: {os.path.join(settings.output_dir, model_files.INFO_FILE)} "
          f"({len(history)} epochs, {seconds:.0f} s)")
    print(f"model: --mask=model --mask_model={saved}")
    return 0


def _by_class(pairs) -> dict[str, int]:
    return dict(sorted(collections.Counter(p.class_name for p in pairs).items()))


def _counts(pairs, split, left_out) -> dict:
    return {"objects_with_true_mask": len(pairs), "by_class": _by_class(pairs),
            "pasted_on_backgrounds": sum(p.pasted for p in pairs),
            "train": len(split.train), "held_out": len(split.held_out), "unseen": len(split.unseen),
            "identities": {"train": len({p.identity for p in split.train}),
                           "held_out": len({p.identity for p in split.held_out})},
            "left_out": left_out}


def _counts_line(pairs, left_out, problems: int) -> str:
    from spatule_synth.segmenter.masked_objects import describe_left_out
    classes = ", ".join(f"{name}: {count}" for name, count in _by_class(pairs).items())
    pasted = sum(p.pasted for p in pairs)
    return (f"objects with a true mask: {len(pairs)} ({classes}; {pasted} pasted on object-free photos); "
            f"left out: {describe_left_out(left_out)}; inputs skipped or noted: {problems}")


def _split_line(split) -> str:
    unseen = (f"{len(split.unseen)} objects of {', '.join(_by_class(split.unseen))}" if split.unseen else "none")
    return (f"train: {len(split.train)} objects of {len({p.identity for p in split.train})} identities; "
            f"held out: {len(split.held_out)} objects of {len({p.identity for p in split.held_out})} "
            f"identities; unseen classes: {unseen}")


if __name__ == "__main__":
    cli.run_module(main, "python -m spatule_synth.segmenter", READ_FLAGS)
