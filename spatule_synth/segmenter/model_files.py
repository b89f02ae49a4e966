"""A segmenter's output folder (``--output=MODEL_DIR``) and what state it is in.

    MODEL_DIR/checkpoints/        weights, optimiser and epoch after every epoch; run.json (the
                                  settings and pairs a --resume must match), history.json
    MODEL_DIR/saved_model/        the exported TensorFlow SavedModel: --mask=model --mask_model=THIS
    MODEL_DIR/evaluation_sheet.png   input / truth / model / GrabCut of held-out and unseen objects
    MODEL_DIR/segmenter.json      settings, counts, per-epoch losses, the IoU table; written last

``saved_model/`` appears whole (exported to a temporary folder, then renamed) and
``segmenter.json`` is written after it, so a folder without ``segmenter.json`` is not finished.
"""

from __future__ import annotations

import json
import os

from spatule_synth.core.output_dir import atomic_write_bytes

CHECKPOINTS = "checkpoints"
SAVED_MODEL = "saved_model"
SHEET_FILE = "evaluation_sheet.png"
INFO_FILE = "segmenter.json"
RUN_FILE = "run.json"  # in CHECKPOINTS
HISTORY_FILE = "history.json"  # in CHECKPOINTS
INFO_FORMAT = 1
PARTIAL_SUFFIX = ".partial"  # the SavedModel while it is exported
OURS = frozenset({CHECKPOINTS, SAVED_MODEL, SAVED_MODEL + PARTIAL_SUFFIX, SHEET_FILE, INFO_FILE})


def saved_model_path(folder: str) -> str:
    """What to give ``generate --mask=model --mask_model=``."""
    return os.path.join(folder, SAVED_MODEL)


def folder_state(folder: str) -> str:
    """``"empty"`` (or missing), ``"finished"``, ``"unfinished"`` (checkpoints, no segmenter.json)
    or ``"foreign"`` (files that are not a segmenter's)."""
    if not os.path.isdir(folder) or not os.listdir(folder):
        return "empty"
    if not set(os.listdir(folder)) <= OURS:
        return "foreign"
    if os.path.isfile(os.path.join(folder, INFO_FILE)):
        return "finished"
    return "unfinished"


def saved_epochs(folder: str) -> int:
    """Epochs recorded in the checkpoints' history (0 if none)."""
    try:
        with open(os.path.join(folder, CHECKPOINTS, HISTORY_FILE), encoding="utf-8") as handle:
            return len(json.load(handle))
    except (OSError, ValueError):
        return 0


class ModelFolderError(ValueError):
    """The output folder cannot take this training; the message says what to do."""


def check_folder(folder: str, resume: bool, overwrite: bool) -> None:
    """`ModelFolderError` unless ``folder`` may be trained into with these flags: empty or
    missing; ``resume`` with a segmenter folder; ``overwrite`` with a segmenter folder (which the
    training then deletes). Checked before the inputs are read."""
    state = folder_state(folder)
    if state == "foreign":
        raise ModelFolderError(f"{folder} holds files that are not a segmenter's; give another "
                               "--output (--overwrite only replaces a segmenter folder)")
    if state == "empty" or resume or overwrite:
        return
    if state == "finished":
        raise ModelFolderError(f"{folder} holds a trained segmenter: pass --overwrite to train again, "
                               "or --resume with more --seg_epochs to continue it")
    raise ModelFolderError(f"{folder} holds an unfinished training ({saved_epochs(folder)} epochs saved, "
                           f"no {INFO_FILE}): pass --resume to continue it or --overwrite to start again")


def write_json(path: str, data: object) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=1).encode("utf-8"))
