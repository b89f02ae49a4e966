"""Training of the segmenter (``python -m spatule_synth.segmenter train``).

Seeded: the order of the pairs and every augmentation come from numpy generators of
``(seed, epoch)``; the initial weights from ``keras.utils.set_random_seed(seed)``, with op
determinism on, so the same inputs and flags give the same weights. Each epoch is followed by the
loss and the mask IoU (at the model's size, threshold 0.5) on the held-out pairs, a checkpoint and
``checkpoints/history.json``; ``--resume`` continues after the last saved epoch (refused, with the
differences named, if the settings or the training pairs changed). At the end the model is
exported as a TensorFlow SavedModel (``saved_model/``, `spatule_synth.segmenter.model_files`) whose
``serving_default`` signature takes ``(batch, size, size, 3)`` float32 RGB in [0, 1] and returns
``(batch, size, size, 1)`` probabilities: the ``--mask=model`` contract.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import time
from typing import Callable, Iterator

import numpy as np
import tensorflow as tf
from absl import logging
from tqdm import tqdm

from spatule_synth.segmenter import model_files
from spatule_synth.segmenter.model import augment, build_unet, dice_bce_loss
from spatule_synth.segmenter.pairs import PairSplit, training_arrays

EVAL_BATCH = 32


class SegmenterTrainingError(ValueError):
    """The training cannot start as asked; the message says why."""


@dataclasses.dataclass(frozen=True)
class SegmenterSettings:
    output_dir: str
    size: int = 128
    epochs: int = 30
    batch_size: int = 16
    seed: int = 0
    holdout_fraction: float = 0.2
    unseen_classes: tuple[str, ...] = ()
    resume: bool = False
    overwrite: bool = False
    width: int = 12  # the U-Net's first number of channels
    learning_rate: float = 1e-3

    def __post_init__(self) -> None:
        if self.size < 16 or self.size % 8:
            raise SegmenterTrainingError(f"the size must be a multiple of 8, at least 16; got {self.size}")
        if self.epochs < 1 or self.batch_size < 1:
            raise SegmenterTrainingError("epochs and batch size must be at least 1")
        if not 0 <= self.holdout_fraction < 1:
            raise SegmenterTrainingError(f"the held-out fraction must lie in [0, 1), got {self.holdout_fraction}")

    def run_record(self, split: PairSplit) -> dict:
        """What a --resume must find unchanged (everything but the number of epochs)."""
        return {"size": self.size, "batch_size": self.batch_size, "seed": self.seed, "width": self.width,
                "learning_rate": self.learning_rate, "holdout_fraction": self.holdout_fraction,
                "unseen_classes": list(self.unseen_classes), "training_pairs": _fingerprint(split)}


def _fingerprint(split: PairSplit) -> str:
    digest = hashlib.sha256()
    for side in (split.train, split.held_out):
        for pair in side:
            digest.update(pair.name.encode("utf-8", "surrogateescape") + b"\0")
            digest.update(pair.crop.tobytes() + np.packbits(pair.truth).tobytes())
        digest.update(b"\1")
    return digest.hexdigest()[:16]


def prepare_folder(settings: SegmenterSettings, record: dict) -> None:
    """Check the output folder against --resume/--overwrite (`model_files.check_folder`; a resume
    must find the settings and pairs it was trained with), empty it for --overwrite, create it."""
    folder = settings.output_dir
    try:
        model_files.check_folder(folder, settings.resume, settings.overwrite)
    except model_files.ModelFolderError as error:
        raise SegmenterTrainingError(str(error)) from None
    state = model_files.folder_state(folder)
    if state != "empty" and settings.resume:
        _check_resume(folder, record)
        if state == "finished":  # unfinished again until this run ends
            os.remove(os.path.join(folder, model_files.INFO_FILE))
    elif state != "empty":  # --overwrite
        shutil.rmtree(folder)
    os.makedirs(os.path.join(folder, model_files.CHECKPOINTS), exist_ok=True)
    model_files.write_json(os.path.join(folder, model_files.CHECKPOINTS, model_files.RUN_FILE), record)


def _check_resume(folder: str, record: dict) -> None:
    try:
        with open(os.path.join(folder, model_files.CHECKPOINTS, model_files.RUN_FILE), encoding="utf-8") as handle:
            saved = json.load(handle)
    except (OSError, ValueError):
        raise SegmenterTrainingError(f"{folder}: no {model_files.CHECKPOINTS}/{model_files.RUN_FILE} to "
                                     "resume from; pass --overwrite to start again") from None
    changed = [f"{key} {saved.get(key)!r} -> {value!r}" for key, value in record.items() if saved.get(key) != value]
    if changed:
        raise SegmenterTrainingError(f"--resume with other settings or inputs than {folder} was trained "
                                     f"with ({'; '.join(changed)}); pass --overwrite to start again")


def train_segmenter(split: PairSplit, settings: SegmenterSettings,
                    say: Callable[[str], None] = print) -> list[dict]:
    """Train on ``split.train`` and export the SavedModel (module docstring); returns the
    per-epoch history (loss, seconds of training steps; held-out loss and IoU when there is a
    held-out side)."""
    record = settings.run_record(split)
    prepare_folder(settings, record)
    tf.keras.utils.set_random_seed(settings.seed)
    tf.config.experimental.enable_op_determinism()
    images, targets = training_arrays(split.train, settings.size)
    held = training_arrays(split.held_out, settings.size) if split.held_out else None
    model = build_unet(settings.size, settings.width)
    optimizer = tf.keras.optimizers.Adam(settings.learning_rate)
    epoch = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
    folder = os.path.join(settings.output_dir, model_files.CHECKPOINTS)
    manager = tf.train.CheckpointManager(checkpoint, folder, max_to_keep=2)
    history_path = os.path.join(folder, model_files.HISTORY_FILE)
    history: list[dict] = []
    if settings.resume and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).expect_partial()
        saved = int(epoch.numpy())
        if saved > settings.epochs:
            raise SegmenterTrainingError(
                f"{settings.output_dir}: {saved} epochs are already trained, more than "
                f"--seg_epochs={settings.epochs}; pass --seg_epochs={saved} or more to go on, or "
                "--overwrite to start again")
        with open(history_path, encoding="utf-8") as handle:
            history = json.load(handle)[:saved]
        say(f"resuming {settings.output_dir} after epoch {saved}")

    @tf.function
    def step(batch_images, batch_targets):
        with tf.GradientTape() as tape:
            loss = dice_bce_loss(batch_targets, model(batch_images, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    first = int(epoch.numpy())
    bar = tqdm(range(first, settings.epochs), initial=first, total=settings.epochs, unit="epoch", disable=None)
    for number in bar:
        started = time.perf_counter()
        rng = np.random.default_rng([settings.seed, 3, number])
        order = rng.permutation(len(images))
        losses = []
        for start in range(0, len(order), settings.batch_size):
            batch = order[start:start + settings.batch_size]
            batch_images, batch_targets = augment(images[batch], targets[batch], rng)
            losses.append(float(step(batch_images, batch_targets)))
        epoch.assign(number + 1)
        entry = {"epoch": number + 1, "loss": float(np.mean(losses)),
                 "seconds": round(time.perf_counter() - started, 3)}  # training steps only
        if held is not None:
            entry.update(_held_out_scores(model, *held))
        history.append(entry)
        with _quiet():  # TensorFlow logs a line per checkpoint file
            manager.save(checkpoint_number=number + 1)
        model_files.write_json(history_path, history)
        bar.set_postfix({key: f"{value:.3f}" for key, value in entry.items() if key not in ("epoch", "seconds")})
    bar.close()
    export_saved_model(model, settings.output_dir)
    return history


def _held_out_scores(model: tf.keras.Model, images: np.ndarray, targets: np.ndarray) -> dict:
    """Loss and mean IoU (at the model's size, threshold 0.5) on the held-out pairs."""
    probabilities = np.concatenate([model(images[start:start + EVAL_BATCH], training=False).numpy()
                                    for start in range(0, len(images), EVAL_BATCH)])
    loss = float(dice_bce_loss(tf.constant(targets), tf.constant(probabilities)))
    predicted, truth = probabilities >= 0.5, targets >= 0.5
    intersection = (predicted & truth).sum(axis=(1, 2, 3))
    union = (predicted | truth).sum(axis=(1, 2, 3))
    iou = np.where(union > 0, intersection / np.maximum(union, 1), 1.0)
    return {"held_out_loss": loss, "held_out_iou": float(iou.mean())}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """absl logging at WARNING and above only (TensorFlow's INFO lines about every file it writes)."""
    verbosity = logging.get_verbosity()
    logging.set_verbosity(min(verbosity, logging.WARNING))
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)


def export_saved_model(model: tf.keras.Model, output_dir: str) -> str:
    """``model`` as ``OUTPUT/saved_model`` (a temporary folder renamed when complete)."""
    final = model_files.saved_model_path(output_dir)
    temporary = final + model_files.PARTIAL_SUFFIX
    shutil.rmtree(temporary, ignore_errors=True)
    with _quiet():
        model.export(temporary, verbose=False)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(temporary, final)
    return final
