"""Camera-like 3264x2448 photos for the benchmarks: a smooth scene plus sensor noise (~2 MB JPEG)."""

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 3264, 2448


def camera_photo(rng: np.random.Generator) -> np.ndarray:
    small = rng.integers(40, 200, size=(HEIGHT // 64, WIDTH // 64, 3)).astype(np.uint8)
    scene = np.asarray(Image.fromarray(small).resize((WIDTH, HEIGHT), Image.BICUBIC), np.int16)
    noise = rng.standard_normal(scene.shape, dtype=np.float32) * 6
    return np.clip(scene + noise, 0, 255).astype(np.uint8)
