"""The command line: absl flags, validated, turned into one frozen config per mode.

This is the only module of the package that imports ``absl.flags``. ``generate.py`` calls `main`.
Errors a user can fix (bad flags, unreadable label map, missing input folder, an existing output
directory, a bad input under ``--on_error=fail``) end the run with one ``error:`` line and exit
status 1, never a traceback.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from spatule_synth.config import DEFAULT_LABEL_MAP, ConvertConfig
from spatule_synth.problems import ON_ERROR_CHOICES

MODES = ("convert",)

FLAGS = flags.FLAGS

flags.DEFINE_enum("mode", "convert", MODES,
                  "What to run. convert: labelImg folders -> TFRecords + label_map.pbtxt.")
flags.DEFINE_list("input_dirs", [], "labelImg folders (images, with their XML beside them unless "
                  "--annotation_dirs is given). Not searched recursively.")
flags.DEFINE_list("annotation_dirs", [], "Optional: one folder of XML files per --input_dirs entry "
                  "(labelImg's 'Change Save Dir'). XML is matched to images by file stem.")
flags.DEFINE_string("label_map", DEFAULT_LABEL_MAP, "label_map.pbtxt whose names the VOC <name> "
                    "values must match.")
flags.DEFINE_string("output_dir", None, "Directory to create for the outputs.")
flags.DEFINE_boolean("overwrite", False, "Replace an existing output directory (only one that "
                     "spatule_synth created).")
flags.DEFINE_string("record_name", "real", "convert: TFRecord name, giving "
                    "OUT/annotations/NAME.record[-SSSSS-of-NNNNN].")
flags.DEFINE_integer("num_shards", 1, "Number of TFRecord shards per record file.", lower_bound=1)
flags.DEFINE_boolean("keep_negatives", True, "convert: keep images without objects (XML with no "
                     "<object>, or no XML) as negative examples.")
flags.DEFINE_enum("on_error", "skip", ON_ERROR_CHOICES, "Bad input: 'skip' warns, skips the "
                  "image or object and counts it in the summary; 'fail' stops at the first one.")


def _require(name: str) -> None:
    if not FLAGS[name].value:
        raise app.UsageError(f"--{name} is required for --mode={FLAGS.mode}")


def convert_config() -> ConvertConfig:
    """The validated `ConvertConfig` of the parsed flags."""
    _require("input_dirs")
    _require("output_dir")
    if "/" in FLAGS.record_name or not FLAGS.record_name.strip():
        raise app.UsageError(f"--record_name must be a plain file name, got {FLAGS.record_name!r}")
    return ConvertConfig(
        input_dirs=tuple(FLAGS.input_dirs), annotation_dirs=tuple(FLAGS.annotation_dirs),
        label_map_path=FLAGS.label_map, output_dir=FLAGS.output_dir,
        record_name=FLAGS.record_name, num_shards=FLAGS.num_shards,
        keep_negatives=FLAGS.keep_negatives, overwrite=FLAGS.overwrite, on_error=FLAGS.on_error)


def main(argv: list[str]) -> int:
    """Run the mode chosen by the flags; returns the process exit status."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = convert_config()
    # Imported here so that --help and flag errors answer without loading TensorFlow.
    from spatule_synth.convert import run_convert
    from spatule_synth.label_map import LabelMapError
    from spatule_synth.labelimg import InputDirError
    from spatule_synth.output_dir import OutputDirError
    from spatule_synth.problems import RunStopped
    try:
        result = run_convert(config)
    except (LabelMapError, InputDirError, OutputDirError, RunStopped, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def run() -> None:
    """Entry point used by ``generate.py``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's CUDA/CPU start-up chatter
    app.run(lambda argv: sys.exit(main(argv)))
