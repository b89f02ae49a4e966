"""Loading the user's image models: a TensorFlow SavedModel folder or a Keras file that maps one
RGB image batch to one output (the mask model of `spatule_synth.core.masks`, the depth model of
`spatule_synth.core.depth`).

* A SavedModel folder: its ``serving_default`` signature is called; it must have one input, a
  ``float32`` tensor, and one output.
* A Keras model file ``.keras``, ``.h5`` or ``.hdf5``, loaded with ``compile=False`` by Keras 3
  (``tf.keras``), then by ``tf_keras`` (Keras 2) when Keras 3 cannot read it. Keras' safe mode is
  kept on: a model with ``Lambda`` layers must be saved without them.
* The input size ``(S_h, S_w)`` comes from the model's input shape ``(batch, S_h, S_w, 3)``; a
  dynamic dimension takes the other one's size, and the caller's default when both are dynamic.

Every problem raises the caller's error type with a message that starts with the model's path.
TensorFlow is imported inside `load_image_model` only (importing it costs seconds).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import numpy as np

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclasses.dataclass(frozen=True, eq=False)
class ImageModel:
    """A loaded model: ``call(batch)`` gives its one output as a NumPy array."""

    path: str
    kind: str  # "saved_model" or "keras"
    input_size: tuple[int, int]  # (S_h, S_w)
    call: Callable[[np.ndarray], Any] = dataclasses.field(repr=False)


def load_image_model(path: str, what: str, default_size: int, error: type[Exception]) -> ImageModel:
    """Load a SavedModel folder or a Keras file; ``what`` names the model in messages (e.g.
    "mask model"), and ``error`` is raised for anything that breaks the module's rules."""
    if os.path.isdir(path):
        return _load_saved_model(path, default_size, error)
    if not os.path.isfile(path):
        raise error(f"{path}: no such {what} file or SavedModel folder")
    if not path.lower().endswith(KERAS_SUFFIXES):
        raise error(f"{path}: not a {what}; give a SavedModel folder or a Keras "
                    f"{'/'.join(KERAS_SUFFIXES)} file")
    return _load_keras(path, default_size, error)


def _load_saved_model(path: str, default_size: int, error: type[Exception]) -> ImageModel:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  (slow import)

    try:
        loaded = tf.saved_model.load(path)
    except (OSError, ValueError, tf.errors.OpError) as problem:
        raise error(f"{path}: cannot load SavedModel: {problem}") from problem
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise error(f"{path}: SavedModel has no 'serving_default' signature "
                    f"(it has {sorted(loaded.signatures) or 'none'})")
    inputs = signature.structured_input_signature[1]
    if len(inputs) != 1 or len(signature.structured_outputs) != 1:
        raise error(f"{path}: 'serving_default' must have one input and one output, it has "
                    f"inputs {sorted(inputs)} and outputs {sorted(signature.structured_outputs)}")
    (name, spec), = inputs.items()
    if spec.dtype != tf.float32:
        raise error(f"{path}: input {name!r} is {spec.dtype.name}; the contract is float32 RGB "
                    "in [0, 1]")
    (output_name,) = signature.structured_outputs

    def call(batch: np.ndarray) -> np.ndarray:
        return signature(**{name: tf.constant(batch)})[output_name].numpy()

    shape = spec.shape.as_list() if spec.shape.rank is not None else None
    return ImageModel(path, "saved_model", _input_size(path, shape, default_size, error), call)


def _load_keras(path: str, default_size: int, error: type[Exception]) -> ImageModel:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  (slow import)

    loaders = [tf.keras.models.load_model]
    try:
        import tf_keras  # pylint: disable=import-outside-toplevel  (Keras 2 files)
        loaders.append(tf_keras.models.load_model)
    except ImportError:
        pass
    errors = []
    for load in loaders:
        try:
            model = load(path, compile=False)
            break
        except Exception as problem:  # pylint: disable=broad-except  (Keras raises anything)
            errors.append(problem)
    else:
        raise error(f"{path}: cannot load Keras model: {errors[0]}") from errors[0]
    outputs, inputs = _static_tensors(model, "outputs"), _static_tensors(model, "inputs")
    for role, tensors in (("outputs", outputs), ("inputs", inputs)):
        if tensors is not None and len(tensors) != 1:
            raise error(f"{path}: Keras model has {len(tensors)} {role}; the contract is one")
    shape = list(inputs[0].shape) if inputs else None

    def call(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model(batch, training=False))

    return ImageModel(path, "keras", _input_size(path, shape, default_size, error), call)


def _static_tensors(model: Any, name: str) -> list | None:
    """``model.inputs``/``model.outputs``, or None for a subclassed model that has none yet."""
    try:
        return getattr(model, name) or None
    except (AttributeError, ValueError):
        return None


def _input_size(path: str, shape: list | None, default_size: int, error: type[Exception]) -> tuple[int, int]:
    """``(S_h, S_w)`` from a model input shape ``[batch, height, width, channels]``."""
    if shape is None:
        return default_size, default_size
    if len(shape) != 4 or shape[3] not in (3, None):
        raise error(f"{path}: model input shape is {tuple(shape)}; expected "
                    "(batch, height, width, 3) RGB")
    height, width = (int(v) if v is not None else None for v in shape[1:3])
    return height or width or default_size, width or height or default_size


def one_plane(output: Any, path: str, what: str, error: type[Exception]) -> np.ndarray:
    """A model's output ``(1, H, W, 1)`` or ``(1, H, W)`` as a float32 ``(H, W)`` plane of finite
    values; ``what`` says what the plane holds (e.g. "depth") in the message of ``error``."""
    plane = np.asarray(output, dtype=np.float32)
    if plane.ndim == 4 and plane.shape[0] == 1 and plane.shape[3] == 1:
        plane = plane[0, :, :, 0]
    elif plane.ndim == 3 and plane.shape[0] == 1:
        plane = plane[0]
    else:
        raise error(f"{path}: model output has shape {plane.shape}; expected (1, H, W, 1) or "
                    f"(1, H, W) {what}")
    if not np.isfinite(plane).all():
        raise error(f"{path}: model output contains NaN or infinite values")
    return plane


_TENSORFLOW_PREAMBLE = ("Graph execution error", "Detected at node", "<stack traces", "File ", "[[")


def error_reason(error: BaseException) -> str:
    """The line of a model's error that says why: TensorFlow wraps the reason in lines about the
    graph ("Graph execution error:", "Detected at node ...", "[[{{node ...}}]]"), which are skipped."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith(_TENSORFLOW_PREAMBLE)
               and not line.endswith("(most recent call last):")]
    return (reasons or lines or [type(error).__name__])[0][:300]

