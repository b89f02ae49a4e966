"""Is a pasted object still itself? A score in [0, 1] comparing the written pixels with the cutout's.

Seamless cloning takes its colours from the destination: a white tag cloned onto a white bird or a
bright sky can come out as a faint smear, and ``MIXED`` gradients can let the background's texture
win over the object's. Such a paste must not be labelled. Over the object's mask (grayscale):

* **structure**: the normalised cross-correlation of the written pixels with the cutout's,
  times their contrast ratio (standard deviation written / cutout, at most 1). A tag whose
  characters came through keeps a high correlation; one whose characters faded to a few levels
  keeps the correlation but loses the contrast: both terms are needed.
* **fidelity**: ``1 - mean |written - cutout| / FIDELITY_LEVELS`` (RGB): an object pasted as it is
  (``paste``, ``alpha``, the opaque core of ``feather``) scores 1 even when it is flat, where the
  correlation says nothing.

The score is the larger of the two. A flat object under seamless cloning takes the colour of what
it lands on and scores near 0: it has vanished, whatever its box says. Objects with fewer than
`MIN_PIXELS` written pixels are not judged (``--min_visible`` decides about them).
"""

from __future__ import annotations

import numpy as np

FIDELITY_LEVELS = 64.0  # a mean error of 64 levels (of 255) or more: nothing of the colours is left
FLAT_STD = 4.0  # a cutout whose gray levels vary less than this has no structure to correlate
MIN_PIXELS = 16
_GRAY = np.array([0.299, 0.587, 0.114], np.float64)


def visibility(written: np.ndarray, cutout: np.ndarray, mask: np.ndarray) -> float:
    """Score of ``written`` against ``cutout`` (both (h, w, 3) uint8, aligned) over the bool
    ``mask``; 1.0 when fewer than `MIN_PIXELS` pixels are to be judged."""
    if np.count_nonzero(mask) < MIN_PIXELS:
        return 1.0
    out = written[mask].astype(np.float64)
    src = cutout[mask].astype(np.float64)
    fidelity = max(0.0, 1.0 - float(np.abs(out - src).mean()) / FIDELITY_LEVELS)
    gray_out, gray_src = out @ _GRAY, src @ _GRAY
    std_out, std_src = float(gray_out.std()), float(gray_src.std())
    structure = 0.0
    if std_src >= FLAT_STD and std_out > 0:
        correlation = float(((gray_out - gray_out.mean()) * (gray_src - gray_src.mean())).mean()
                            / (std_out * std_src))
        structure = max(0.0, correlation) * min(1.0, std_out / std_src)
    return max(fidelity, structure)
