"""spatule_synth's own seamless clone: the discrete Poisson equation really solved, its known
solutions reproduced, close to OpenCV's inside the object, and safe at the canvas edge."""

import cv2
import numpy as np
import pytest

from spatule_synth.generate.blends import blend_into
from spatule_synth.generate.poisson import poisson_clone, with_ring


def textured(height=40, width=60, seed=0):
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3)).astype(np.float32), (0, 0), 2)
    return np.clip(base * 0.6 + 50, 0, 255).astype(np.uint8)


def laplacian(image):
    """4 u_p - sum of its 4 neighbours, on the interior of ``image`` (float)."""
    u = image.astype(np.float64)
    return 4 * u[1:-1, 1:-1] - u[:-2, 1:-1] - u[2:, 1:-1] - u[1:-1, :-2] - u[1:-1, 2:]


def test_a_brightness_offset_is_taken_from_the_destination_exactly():
    source = textured()
    shifted = np.pad(source.astype(int) + 40, ((1, 1), (1, 1), (0, 0)), mode="edge").clip(0, 255)
    assert (poisson_clone(source, shifted.astype(np.uint8)) == np.clip(source.astype(int) + 40, 0, 255)).all()


def test_the_solution_satisfies_the_poisson_equation_with_the_ring_as_boundary():
    source, ring = textured(seed=1), textured(42, 62, seed=2)
    solved = poisson_clone(source, ring).astype(np.float64)
    whole = ring.astype(np.float64).copy()
    whole[1:-1, 1:-1] = solved
    padded_source = np.pad(source.astype(np.float64), ((1, 1), (1, 1), (0, 0)), mode="edge")
    residual = laplacian(whole) - laplacian(padded_source)
    assert np.abs(residual).max() <= 4.0  # rounding the solution to integers: 5 terms of <= 0.5
    assert np.abs(residual).mean() < 1.0


def test_mixed_equals_normal_over_a_flat_destination_and_keeps_strong_background_texture():
    source = textured(seed=3)
    flat = np.full((42, 62, 3), 120, np.uint8)
    assert (poisson_clone(source, flat, "mixed") == poisson_clone(source, flat, "normal")).all()
    stripes = flat.copy()
    stripes[:, ::4] = 250  # background texture stronger than the object's
    mixed = poisson_clone(np.full((40, 60, 3), 90, np.uint8), stripes, "mixed").astype(float)
    assert mixed[:, 3::4].mean() - mixed[:, 1::4].mean() > 60  # the stripes show through


def test_close_to_opencv_inside_the_object():
    """On a tag-like object pasted with an 8 px margin, the mean difference from cv2.seamlessClone
    inside the object stays small (OpenCV ignores source gradients within 4 px of its mask's edge
    and solves iteratively: they are not equal)."""
    rng = np.random.default_rng(4)
    canvas = cv2.GaussianBlur(rng.integers(0, 256, (160, 160, 3)).astype(np.float32), (0, 0), 6)
    canvas = np.clip(canvas * 0.5 + 60, 0, 255).astype(np.uint8)
    source = np.full((46, 66, 3), 70, np.uint8)  # a white tag with dark characters, 8 px context
    source[8:38, 8:58] = 235
    source[14:32, 12:54:5] = 20
    x, y = 40, 50
    ours = poisson_clone(source, with_ring(canvas, x, y, 66, 46)).astype(int)
    mask = np.full(source.shape[:2], 255, np.uint8)
    center = (x + 33, y + 23)
    theirs = cv2.seamlessClone(source, canvas.copy(), mask, center, cv2.NORMAL_CLONE)[y:y + 46, x:x + 66]
    inside = (slice(8, 38), slice(8, 58))
    assert np.abs(ours[inside] - theirs[inside].astype(int)).mean() < 12


@pytest.mark.parametrize("blend", ["seamless_normal", "seamless_mixed"])
def test_an_object_at_the_canvas_edge_is_cloned_to_the_edge(blend):
    """The canvas reflected beyond its edge is the ring there: the object does not fade out toward
    the canvas edge (as with OpenCV, whose ring would lie on it)."""
    source = np.full((30, 40, 3), 60, np.uint8)
    source[8:22, 8:32] = 230
    alpha = np.zeros((30, 40), np.uint8)
    alpha[8:22, 8:32] = 255
    canvas = np.full((64, 64, 3), 50, np.uint8)
    written = blend_into(canvas, source, alpha, -12, 10, blend)  # the object starts 4 px off-canvas
    assert written is not None and written[:, 0].any()
    assert canvas[20:30, 0].mean() > 200  # the object's pixels at the canvas edge are bright


def test_deterministic():
    source, ring = textured(seed=5), textured(42, 62, seed=6)
    assert (poisson_clone(source, ring, "mixed") == poisson_clone(source.copy(), ring.copy(), "mixed")).all()
