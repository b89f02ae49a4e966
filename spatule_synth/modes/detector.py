"""A detector exported by the TF2 Object Detection API, run on one image at a time.

``exporter_main_v2.py --input_type=image_tensor`` writes ``OUTPUT/saved_model/`` whose
``serving_default`` signature takes ``input_tensor``: uint8 ``[1, H, W, 3]`` (batch size 1 only:
``DetectionFromImageModule`` declares ``shape=[1, None, None, 3]``; ``float_image_tensor`` is the
same in float32) and returns, all as float32 (``DetectionInferenceModule`` casts every output):
``detection_boxes`` ``[1, N, 4]`` normalised ``ymin, xmin, ymax, xmax`` of the image given,
``detection_scores`` ``[1, N]``, ``detection_classes`` ``[1, N]`` (label-map ids: the model's
0-based classes plus ``label_id_offset`` 1) and ``num_detections`` ``[1]`` (the first
``num_detections`` of the N rows are real, the rest padding), besides raw outputs we do not read.

`Detector` accepts ``OUTPUT`` or ``OUTPUT/saved_model``, checks that signature before any image is
read, and returns `Detections` in pixels (`spatule_synth.core.boxes` convention). Imports TensorFlow.
"""

from __future__ import annotations

import os

import numpy as np

from spatule_synth.core.image_models import error_reason
from spatule_synth.modes.stitch import Detections

OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")


class DetectorError(ValueError):
    """The detector cannot be used; the message starts with its path."""


def saved_model_dir(path: str) -> str:
    """``path`` or its ``saved_model/`` folder, whichever holds ``saved_model.pb``."""
    if not os.path.exists(path):
        raise DetectorError(f"{path}: no such folder")
    for folder in (path, os.path.join(path, "saved_model")):
        if os.path.isfile(os.path.join(folder, "saved_model.pb")):
            return folder
    raise DetectorError(f"{path}: not a SavedModel folder (no saved_model.pb in it or in its "
                        "saved_model/ folder); give exporter_main_v2.py's --output_directory")


class Detector:
    """The ``serving_default`` signature of an exported detector, checked on loading."""

    def __init__(self, path: str) -> None:
        import tensorflow as tf

        self.path = path
        folder = saved_model_dir(path)
        try:
            model = tf.saved_model.load(folder)
        except Exception as error:  # TensorFlow raises many kinds; the message is what matters
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DetectorError(f"{path}: cannot load the SavedModel: {first}") from None
        signatures = getattr(model, "signatures", {})
        if "serving_default" not in signatures:
            raise DetectorError(f"{path}: no serving_default signature (it has: "
                                f"{', '.join(signatures) or 'none'}); export it with exporter_main_v2.py")
        self._model = model  # keeps the signature's variables alive
        self._function = signatures["serving_default"]
        self._input_name, self._dtype = self._check_input()
        missing = [name for name in OUTPUTS if name not in self._function.structured_outputs]
        if missing:
            raise DetectorError(f"{path}: its serving_default signature lacks the output(s) "
                                f"{', '.join(missing)} (it returns "
                                f"{', '.join(sorted(self._function.structured_outputs)) or 'nothing'}); "
                                "export it with exporter_main_v2.py --input_type=image_tensor")

    def _check_input(self):
        import tensorflow as tf

        _, inputs = self._function.structured_input_signature
        if len(inputs) != 1:
            raise DetectorError(f"{self.path}: serving_default takes {len(inputs)} inputs "
                                f"({', '.join(sorted(inputs))}); expected one image tensor")
        [(name, spec)] = inputs.items()
        shape = spec.shape.as_list() if spec.shape.rank is not None else None
        if (spec.dtype not in (tf.uint8, tf.float32) or shape is None or len(shape) != 4
                or shape[0] not in (1, None) or shape[3] not in (3, None)):
            raise DetectorError(f"{self.path}: serving_default takes {name} {spec.dtype.name} "
                                f"{shape}; expected an image tensor, uint8 [1, height, width, 3] "
                                "(exporter_main_v2.py --input_type=image_tensor)")
        return name, spec.dtype

    def __call__(self, pixels: np.ndarray) -> Detections:
        """The detections of one RGB uint8 image (H, W, 3), in its pixels."""
        import tensorflow as tf

        height, width = pixels.shape[:2]
        batch = tf.cast(tf.constant(pixels[np.newaxis]), self._dtype)
        try:
            outputs = self._function(**{self._input_name: batch})
        except Exception as error:  # pylint: disable=broad-except  (TensorFlow raises anything)
            raise DetectorError(f"{self.path}: the detector failed on a {width}x{height} image: "
                                f"{error_reason(error)}") from None
        try:
            count = int(np.asarray(outputs["num_detections"]).reshape(-1)[0])
            boxes = np.asarray(outputs["detection_boxes"], np.float64).reshape(-1, 4)[:count]
            scores = np.asarray(outputs["detection_scores"], np.float64).reshape(-1)[:count]
            classes = np.asarray(outputs["detection_classes"], np.float64).reshape(-1)[:count]
        except (IndexError, ValueError) as error:
            raise DetectorError(f"{self.path}: its outputs do not have the OD API's shapes "
                                f"({error})") from None
        if not len(boxes) == len(scores) == len(classes) == count:
            raise DetectorError(f"{self.path}: num_detections is {count} but it returned "
                                f"{len(boxes)} boxes, {len(scores)} scores, {len(classes)} classes")
        ymin, xmin, ymax, xmax = np.clip(boxes, 0.0, 1.0).T
        pixel_boxes = np.stack([xmin * width, ymin * height, xmax * width, ymax * height], axis=1)
        return Detections(pixel_boxes, scores, np.rint(classes).astype(np.int64))


def decode_image(encoded: bytes) -> np.ndarray:
    """The RGB uint8 pixels of a record's image, decoded by TensorFlow as the OD API's input
    pipeline decodes them."""
    import tensorflow as tf

    return tf.io.decode_image(encoded, channels=3, expand_animations=False).numpy()
