"""Depth maps of the written images, from the user's depth model (``--scene_outputs=depth
--depth_model=PATH``).

Model contract (files and loading as `spatule_synth.core.image_models` says):

* Input: one ``float32`` batch ``(1, S_h, S_w, 3)``, **RGB** in **[0, 1]** (pixel / 255): the
  image as written (its JPEG decoded), resized (bilinear, or area when shrinking) to the model's
  input size; a model whose height and width are both dynamic gets the image at its own size (the
  canvas), and one with a single dynamic side gets a square of its fixed side. A model that needs
  sides of a certain multiple (32, 14, ...) must be given a fixed input size or a fitting
  ``--canvas_size``. The model is run once on a grey canvas when it is loaded: an error or an
  output that breaks the contract stops the run before any image is made.
* Output: one tensor ``(1, H, W, 1)`` or ``(1, H, W)`` of finite floats, in the model's own units
  and direction (metres, inverse depth, relative depth: whatever it was trained for); ``H, W`` need
  not equal the input's. The map is resized (bilinear) to the image.
* Written as ``OUT/depth/SPLIT/NAME.png``, 16-bit grey: ``round((d - lo) / (hi - lo) * 65535)``
  with ``lo, hi`` the map's least and greatest value, given in the image's manifest entry as
  ``depth_range: [lo, hi]``, so that ``d = lo + png / 65535 * (hi - lo)`` (a flat map is all 0).

The depth model runs in the parent process, on each image as its chunk is assembled, one image at a
time and in image order, so the maps are the same for any number of workers and either runner;
image workers never import TensorFlow. ``--resume`` computes the maps of the finished chunks again.
The report's depth statistics (manifest ``pixel_stats``) are those of the written PNG values, each
map stretched to its own range: what a pipeline that reads the PNGs normalises, not depth itself.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from spatule_synth.core.image_models import ImageModel, error_reason, load_image_model, one_plane

DEPTH_LEVELS = 65535


class DepthModelError(ValueError):
    """A depth model that cannot be loaded or whose output breaks the contract; says why."""


@dataclasses.dataclass(frozen=True, eq=False)
class DepthModel:
    model: ImageModel

    def depth(self, rgb: np.ndarray) -> np.ndarray:
        """The float32 depth map ``(height, width)`` of the RGB uint8 image (module docstring)."""
        height, width = rgb.shape[:2]
        in_height, in_width = self.model.input_size
        in_height, in_width = in_height or height, in_width or width
        if (in_height, in_width) != (height, width):
            shrinking = in_height * in_width < height * width
            rgb = cv2.resize(rgb, (in_width, in_height),
                             interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        try:
            answer = self.model.call((rgb.astype(np.float32) / 255.0)[np.newaxis])
        except Exception as error:  # pylint: disable=broad-except  (TensorFlow and Keras raise anything)
            raise DepthModelError(f"{self.model.path}: the model failed on a {in_width}x{in_height} "
                                  f"image: {error_reason(error)}") from error
        output = one_plane(answer, self.model.path, "depth", DepthModelError)
        if output.shape != (height, width):
            output = cv2.resize(output, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(output)


def load_depth_model(path: str, canvas_size: int) -> DepthModel:
    """Load a SavedModel folder or a Keras file (contract in the module docstring) and run it once
    on a grey ``canvas_size`` image, so that a model that breaks the contract stops the run before
    any image is made."""
    model = DepthModel(load_image_model(path, "depth model", 0, DepthModelError))
    model.depth(np.full((canvas_size, canvas_size, 3), 128, np.uint8))
    return model


def depth_png_plane(depth: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The uint16 plane written for ``depth``, and its ``lo, hi`` (module docstring)."""
    lo, hi = float(depth.min()), float(depth.max())
    if hi <= lo:
        return np.zeros(depth.shape, np.uint16), lo, hi
    scaled = (depth.astype(np.float64) - lo) / (hi - lo) * DEPTH_LEVELS
    return np.clip(np.round(scaled), 0, DEPTH_LEVELS).astype(np.uint16), lo, hi
