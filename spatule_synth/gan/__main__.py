"""``python -m spatule_synth.gan train --output=MODEL_DIR [inputs as generate]``.

The inputs are read exactly as ``generate`` reads them (`spatule_synth.generate.sources`: every
format, ``--mask``, ``--ignore_classes``, ...); every labelled cutout becomes a training crop
(`spatule_synth.gan.crops`). Then `spatule_synth.gan.train.train_gan`. A flag that the command
does not read is a usage error when typed, and named in one warning line when it comes from a
``--flagfile`` (which may hold settings of other modes), as in ``generate.py``.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from spatule_synth import cli
from spatule_synth.core.config import InputsConfig, PlacementConfig, SplitConfig

flags.DEFINE_string("output", "", "gan train: the model folder (checkpoints, samples, generator.keras, "
                    "gan.json).")
flags.DEFINE_enum("gan_size", "32", ["32", "64"], "gan train: side of the crops, px.")
flags.DEFINE_integer("gan_epochs", 100, "gan train: epochs.", lower_bound=1)
flags.DEFINE_integer("gan_batch_size", 32, "gan train: crops per step.", lower_bound=1)
flags.DEFINE_integer("gan_eval_every", 5, "gan train: the classifier two-sample test every N epochs "
                     "(and at the last); the nearest-crop check runs every epoch.", lower_bound=1)
FLAGS = flags.FLAGS
COMMAND_FLAGS = {"output", "gan_size", "gan_epochs", "gan_batch_size", "gan_eval_every"}
READ_FLAGS = {"input_dirs", "annotation_dirs", "label_map", "unlabelled", "ignore_classes", "on_error",
              "coco_json", "coco_image_dirs", "yolo_dirs", "voc_seg_dirs", "cutout_dirs", "mask",
              "mask_model", "use_truncated_cutouts", "use_difficult_cutouts", "rendered_tags",
              "tag_class", "tag_alphabet", "tag_length", "tag_font", "tag_glyph_sheet", "tag_style",
              "tag_colours", "seed", "num_workers", "resume", "overwrite", "background_dirs"}


def main(argv: list[str]) -> int:
    if argv[1:] != ["train"]:
        raise app.UsageError("usage: python -m spatule_synth.gan train --output=MODEL_DIR [inputs as "
                             "generate: --input_dirs, --coco_json, --cutout_dirs, ...]")
    cli.check_command_flags(READ_FLAGS, "gan train")
    if not FLAGS.output:
        raise app.UsageError("--output (the model folder) is required")
    try:
        inputs = InputsConfig(**{**cli.input_settings(), "gan_model": ""})
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    # Imported here so that --help and usage errors answer without loading TensorFlow.
    from spatule_synth.core.config import ExecutionConfig
    from spatule_synth.core.problems import ProblemLog
    from spatule_synth.formats.label_map import read_label_map
    from spatule_synth.gan.crops import crop_set
    from spatule_synth.gan.train import GanSettings, GanTrainingError, train_gan
    from spatule_synth.generate.sources import SourceError, read_sources
    try:
        label_map = read_label_map(inputs.label_map_path)
        problems = ProblemLog(inputs.on_error)
        sources = read_sources(inputs, SplitConfig(), PlacementConfig(), label_map, problems,
                               ExecutionConfig(num_workers=FLAGS.num_workers).worker_count, FLAGS.seed,
                               backgrounds_required=False)
        size = int(FLAGS.gan_size)
        data = crop_set(list(sources.cutouts), list(label_map.names), size)
        print(f"training crops: {len(data.crops)} ({', '.join(f'{name}: {int((data.labels == k).sum())}' for k, name in enumerate(data.classes))}); "
              f"inputs skipped or noted: {len(problems.problems)}")
        info = train_gan(data, GanSettings(FLAGS.output, size, FLAGS.gan_epochs, FLAGS.gan_batch_size,
                                           FLAGS.seed, FLAGS.gan_eval_every, FLAGS.resume, FLAGS.overwrite))
    except (SourceError, GanTrainingError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    last = info["evaluation"][-1]
    print(f"model: {os.path.join(FLAGS.output, 'generator.keras')} ({info['epochs']} epochs, "
          f"{info['training_crops']} crops of {', '.join(info['classes'])})")
    print(f"last epoch: nearest training crop median {last['nearest_median']:.3f} (real crops to each "
          f"other: {info['real_nearest_median']:.3f}); two-sample test accuracy "
          f"{last.get('two_sample_accuracy', float('nan')):.2f} (0.5: indistinguishable)")
    print(f"samples: {os.path.join(FLAGS.output, 'samples')}/; gan.json: {os.path.join(FLAGS.output, 'gan.json')}")
    return 0


if __name__ == "__main__":
    cli.run_module(main, "python -m spatule_synth.gan", READ_FLAGS)
