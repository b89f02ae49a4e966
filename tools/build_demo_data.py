"""Build spatule_synth's embedded demo data set: synthetic field-camera photos of ringed spoonbills.

Run ``python tools/build_demo_data.py`` from the repository root (``--output DIR`` writes
elsewhere: `tests/test_demo_data.py` rebuilds into a temporary folder and compares every byte). Everything is drawn
procedurally from one seeded numpy generator, passed from function to function (no photo, no
download, no global state), so every run writes the same bytes:

* ``labelled/``: a labelImg folder (images and XML side by side): 6 photos with 1-3 ringed birds
  (``IMAG0517.JPG`` is stored portrait with EXIF orientation 6, its XML describes the displayed
  landscape frame), 3 verified photos without any ring (XML with no ``<object>``) and one XML whose
  image is missing (``IMAG0399.xml``), like real annotation folders;
* ``backgrounds/``: 3 ring-free photos without XML.

A scene is a lagoon seen by a field camera: sky, clouds and a far shore of bushes when the horizon
is in the frame; mud flat, salicornia patches and shallow rippled water textured with fractal
noise in ground coordinates (detail shrinks with distance), with sky reflections and haze;
out-of-focus grass in the foreground. Spoonbills are white shaded bodies with neck, head, crest,
a long black bill ending in a spatula and long black legs, with a shadow or a reflection. Some wear
a Darvic ring on a tibia: a white or pale yellow cylinder carrying 4 black characters drawn with
Pillow's bundled font (Aileron), wrapped around the leg by the library's `spatule_synth.tags.ring`. The XML box of a ring is computed from its
visible pixel mask (pixel-edge convention of `spatule_synth.core.boxes`) and each edge is moved by at
most 1 px, like a careful annotator. The camera adds defocus, light falloff, vignetting, sensor
noise and JPEG compression (quality 88, with EXIF).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import math
import os
import sys
import types

import cv2
import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spatule_synth.core.boxes import Box  # noqa: E402
from spatule_synth.core.output_dir import atomic_write_bytes  # noqa: E402
from spatule_synth.formats.voc import VocAnnotation, VocObject, read_voc, write_voc  # noqa: E402
from spatule_synth.tags.glyphs import FontGlyphs  # noqa: E402
from spatule_synth.tags.ring import PALE_YELLOW, WHITE, RingLook, smoothstep, value_noise  # noqa: E402
from spatule_synth.tags.ring import ring_patch as draw_ring  # noqa: E402

SEED = 20230514
WIDTH, HEIGHT = 1600, 1200
JPEG_QUALITY = 88
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_DIR = os.path.join(REPO, "spatule_synth", "demo_data")
HERE = DEMO_DIR  # where main() writes: the embedded demo data, or --output
MAX_TOTAL_BYTES = 3_000_000
TAG_SIDE_RANGE = (50, 150)  # longest side of a ring box, pixels

FOCAL_PX = 1500.0
BIRD_METRES = 0.85  # standing height of a spoonbill
NEAREST_BIRD_PX = 470.0  # apparent height of a bird standing on the bottom row of the frame
TEXTURE_SIZE = 512
SUPERSAMPLE = 2  # birds are drawn at twice the final resolution
RING_SUPERSAMPLE = 4  # rings at four times
CODE_CHARACTERS = "ACEFHJKLMNPTUVXY0123456789"
LEG_BLACK = 0.06


@dataclasses.dataclass(frozen=True)
class Light:
    """Colours and strength of the light of a scene (display-referred RGB in 0..1)."""

    zenith: tuple[float, float, float]
    horizon: tuple[float, float, float]
    sun: tuple[float, float, float]
    shadow: tuple[float, float, float]
    direct: float  # 0: flat overcast light, 1: full sun
    exposure: float


LIGHTS = types.MappingProxyType({
    "morning": Light((0.52, 0.64, 0.80), (0.87, 0.85, 0.80), (1.0, 0.94, 0.84), (0.56, 0.61, 0.72),
                     0.8, 0.98),
    "noon": Light((0.44, 0.61, 0.85), (0.80, 0.86, 0.91), (1.0, 0.99, 0.96), (0.60, 0.65, 0.74),
                  1.0, 1.0),
    "overcast": Light((0.70, 0.72, 0.75), (0.85, 0.86, 0.87), (0.95, 0.96, 0.97),
                      (0.78, 0.80, 0.83), 0.25, 0.96),
    "evening": Light((0.47, 0.53, 0.72), (0.92, 0.80, 0.66), (1.0, 0.86, 0.68), (0.52, 0.54, 0.67),
                     0.75, 0.93),
})


@dataclasses.dataclass(frozen=True)
class SceneSpec:
    """What one photo shows; the details are drawn from the generator."""

    name: str
    folder: str  # "labelled" or "backgrounds"
    horizon: float  # horizon row / image height; negative: above the frame (camera tilted down)
    water: float  # -1: almost only mud ... 1: almost only water
    light: str
    sun_left: bool
    birds: int
    tagged: int
    annotated: bool
    taken: str
    rotated: bool = False
    windows_path: bool = False


SCENES = (
    SceneSpec("IMAG0412.JPG", "labelled", 0.27, 0.2, "morning", True, 3, 1, True,
              "2023:04:18 07:12:44"),
    SceneSpec("IMAG0488 (2).JPG", "labelled", 0.17, 0.6, "noon", False, 4, 2, True,
              "2023:04:21 12:41:05", windows_path=True),
    SceneSpec("IMAG0501.JPG", "labelled", -0.35, -0.4, "overcast", True, 2, 1, True,
              "2023:04:24 10:03:52"),
    SceneSpec("IMAG0517.JPG", "labelled", 0.34, 0.0, "evening", False, 3, 2, True,
              "2023:04:27 19:22:17", rotated=True, windows_path=True),
    SceneSpec("IMAG0530 (1).JPG", "labelled", 0.21, 0.8, "noon", True, 5, 3, True,
              "2023:05:02 13:15:30", windows_path=True),
    SceneSpec("IMAG0533.JPG", "labelled", 0.09, -0.1, "overcast", False, 2, 1, True,
              "2023:05:02 16:48:09"),
    SceneSpec("IMAG0420.JPG", "labelled", 0.24, 0.4, "morning", False, 2, 0, True,
              "2023:04:19 08:30:21"),
    SceneSpec("IMAG0455.JPG", "labelled", -0.12, -0.6, "noon", True, 0, 0, True,
              "2023:04:20 11:57:40"),
    SceneSpec("IMAG0502 (3).JPG", "labelled", 0.31, 0.3, "evening", True, 1, 0, True,
              "2023:04:24 18:40:02", windows_path=True),
    SceneSpec("IMAG0601.JPG", "backgrounds", 0.19, 0.9, "overcast", True, 0, 0, False,
              "2023:05:09 09:14:55"),
    SceneSpec("IMAG0602.JPG", "backgrounds", 0.40, -0.7, "morning", False, 1, 0, False,
              "2023:05:09 07:05:36"),
    SceneSpec("IMAG0610.JPG", "backgrounds", 0.13, 0.3, "noon", False, 0, 0, False,
              "2023:05:11 14:22:48"),
)
MISSING_IMAGE_XML = "IMAG0399.xml"  # an annotation whose photo was never copied


# ----------------------------------------------------------------------------------------------
# Noise


def spectral_texture(rng: np.random.Generator, size: int = TEXTURE_SIZE, beta: float = 2.0,
                     stretch: float = 1.0, wavelengths: tuple[float, float] = (6.0, 128.0)
                     ) -> np.ndarray:
    """Tileable band-limited 1/f^beta noise, zero mean, unit std; ``stretch`` > 1 elongates in x."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    freq = np.sqrt((fx * stretch) ** 2 + fy ** 2)
    band = np.exp(-(freq * wavelengths[0]) ** 2) * (1.0 - np.exp(-(freq * wavelengths[1]) ** 2))
    amplitude = np.where(freq > 0, freq, 1.0) ** (-beta / 2.0) * band
    spectrum = (rng.normal(size=freq.shape) + 1j * rng.normal(size=freq.shape)) * amplitude
    texture = np.fft.irfft2(spectrum, s=(size, size))
    return ((texture - texture.mean()) / texture.std()).astype(np.float32)


def lerp(a, b, t):
    return a + (b - a) * t


# ----------------------------------------------------------------------------------------------
# Camera and ground plane


@dataclasses.dataclass(frozen=True)
class Camera:
    """A level pinhole camera above flat ground; ``horizon`` is a (possibly negative) row."""

    horizon: float
    height_m: float

    @classmethod
    def for_horizon(cls, horizon: float) -> Camera:
        # Chosen so that a bird standing on the bottom row is NEAREST_BIRD_PX tall.
        return cls(horizon, BIRD_METRES * (HEIGHT - horizon) / NEAREST_BIRD_PX)

    def foot_row(self, bird_px: float) -> float:
        return self.horizon + bird_px * self.height_m / BIRD_METRES


@dataclasses.dataclass(frozen=True)
class Ground:
    """Ground-plane coordinates (metres) of every pixel below the horizon."""

    x: np.ndarray  # (H, W) lateral
    z: np.ndarray  # (H, W) depth
    metres_per_px: np.ndarray  # (H, 1) depth footprint of a pixel
    distance_px: np.ndarray  # (H, 1) rows below the horizon (>= 0.75)


def ground_coords(cam: Camera) -> Ground:
    rows = np.arange(HEIGHT, dtype=np.float64)[:, None] + 0.5
    cols = np.arange(WIDTH, dtype=np.float64)[None, :] + 0.5
    d = np.maximum(rows - cam.horizon, 0.75)
    z = np.broadcast_to(FOCAL_PX * cam.height_m / d, (HEIGHT, WIDTH))
    x = (cols - WIDTH / 2.0) * cam.height_m / d
    return Ground(x, z, FOCAL_PX * cam.height_m / d ** 2, d)


def ground_fbm(rng: np.random.Generator, texture: np.ndarray, ground: Ground, per_metre: float,
               octaves: int, gain: float = 0.5, rotate: bool = True) -> np.ndarray:
    """Fractal noise painted on the ground plane; octaves finer than a pixel fade out."""
    total = np.zeros((HEIGHT, WIDTH), np.float32)
    norm = 0.0
    for octave in range(octaves):
        scale = per_metre * 2.0 ** octave
        angle = rng.uniform(0.0, 2.0 * math.pi) if rotate else rng.uniform(-0.08, 0.08)
        offset = rng.uniform(0.0, TEXTURE_SIZE, 2)
        c, s = math.cos(angle), math.sin(angle)
        u = np.mod((ground.x * c - ground.z * s) * scale + offset[0], TEXTURE_SIZE)
        v = np.mod((ground.x * s + ground.z * c) * scale + offset[1], TEXTURE_SIZE)
        sample = cv2.remap(texture, u.astype(np.float32), v.astype(np.float32), cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_WRAP)
        fade = np.clip((4.0 - ground.metres_per_px * scale) / 2.0, 0.0, 1.0).astype(np.float32)
        total += np.float32(gain ** octave) * fade * sample
        norm += gain ** octave
    return total / np.float32(norm)


# ----------------------------------------------------------------------------------------------
# Sky, far shore, mud and water


def render_sky(rng: np.random.Generator, cam: Camera, light: Light, top: int, bottom: int
               ) -> np.ndarray:
    """Sky for image rows ``top..bottom-1`` (may lie outside the frame: used for reflections)."""
    rows = np.arange(top, bottom, dtype=np.float32)[:, None] + 0.5
    elevation = np.clip((cam.horizon - rows) / FOCAL_PX, 0.0, None)
    t = (np.clip(elevation / 0.5, 0.0, 1.0) ** 0.6)[..., None]
    sky = lerp(np.array(light.horizon, np.float32), np.array(light.zenith, np.float32), t)
    sky = np.broadcast_to(sky, (bottom - top, WIDTH, 3)).copy()
    texture = spectral_texture(rng, 256, beta=3.2, stretch=3.0, wavelengths=(3.0, 200.0))
    clouds = cv2.resize(np.tile(texture, (1, 2)), (WIDTH, bottom - top),
                        interpolation=cv2.INTER_CUBIC)
    cover = 0.85 if light.direct < 0.5 else rng.uniform(0.25, 0.6)
    amount = smoothstep(0.9 - 2.0 * cover, 2.6 - 2.0 * cover, clouds)[..., None]
    body = smoothstep(0.0, 1.0, amount) * (1.0 - 0.12 * np.clip(clouds[..., None] - 1.0, 0, 1))
    cloud_colour = np.array(light.sun, np.float32) * (0.93 - 0.12 * (1.0 - light.direct))
    return lerp(sky, cloud_colour * body + sky * (1 - body), amount * 0.8)


def add_far_shore(rng: np.random.Generator, sky: np.ndarray, top: int, cam: Camera,
                  light: Light) -> None:
    """Paint a low band of far reeds and bushes on the horizon, hazy like distant vegetation."""
    profile = rng.uniform(3.0, 8.0) + sum(
        value_noise(rng, 1, WIDTH, cell)[0] * amp
        for cell, amp in ((300.0, 2.0), (40.0, 1.5), (9.0, 1.2), (3.0, 0.8)))
    cols = np.arange(WIDTH, dtype=np.float32)
    for _ in range(int(rng.integers(2, 7))):  # clumps of tamarisk
        centre, width = rng.uniform(0, WIDTH), rng.uniform(15.0, 70.0)
        profile += rng.uniform(4.0, 14.0) * np.exp(-((cols - centre) / width) ** 4)
    band_top = cam.horizon - np.maximum(profile, 1.5)
    rows = np.arange(top, top + sky.shape[0], dtype=np.float32)[:, None] + 0.5
    inside = np.clip(rows - band_top[None, :], 0.0, 1.0) * np.clip(cam.horizon - rows + 1.0, 0, 1)
    texture = 0.82 + 0.15 * value_noise(rng, sky.shape[0], WIDTH, 2.5)
    green = np.array((0.20, 0.23, 0.15), np.float32) * np.array(light.sun, np.float32)
    colour = lerp(green * texture[..., None], np.array(light.horizon, np.float32), 0.5)
    sky[:] = lerp(sky, colour, inside[..., None])


def shore_field(rng: np.random.Generator, ground: Ground, spec: SceneSpec) -> np.ndarray:
    """Positive on mud, negative under water; the zero line is the water's edge."""
    texture = spectral_texture(rng, beta=2.6)
    field = ground_fbm(rng, texture, ground, per_metre=1.5, octaves=7, gain=0.55)
    tilt = rng.uniform(-1.0, 1.0, 2)
    trend = tilt[0] * ground.x / 25.0 + tilt[1] * np.clip(ground.z - 12.0, -12.0, 40.0) / 30.0
    field = field + 0.25 * trend
    visible = field[(ground.distance_px[:, 0] > 1.0), ::4]
    water_fraction = float(np.clip(0.5 + 0.45 * spec.water, 0.04, 0.96))
    return (field - np.quantile(visible, water_fraction)).astype(np.float32)


def mud_colour(rng: np.random.Generator, ground: Ground, light: Light, shore: np.ndarray
               ) -> np.ndarray:
    """Grey-brown mud with fine texture and shell specks, darker and shinier near the water."""
    base = np.array(((0.47, 0.43, 0.36), (0.42, 0.40, 0.35), (0.50, 0.46, 0.39))[
        int(rng.integers(3))], np.float32) * np.array(light.sun, np.float32)
    texture = spectral_texture(rng, beta=1.6)
    grain = ground_fbm(rng, texture, ground, per_metre=6.0, octaves=8, gain=0.72)
    fine = ground_fbm(rng, texture, ground, per_metre=150.0, octaves=3, gain=0.7)
    mud = base * (1.0 + 0.2 * grain + 0.1 * fine)[..., None]
    specks = smoothstep(1.7, 2.3, fine)[..., None] * 0.12
    wet = np.exp(-np.clip(shore, 0.0, None) / 0.07)[..., None]
    mud = mud * (1.0 - 0.33 * wet) + 0.07 * wet * np.array(light.zenith, np.float32) + specks
    return add_salicornia(rng, ground, light, shore, mud, fine)


def add_salicornia(rng: np.random.Generator, ground: Ground, light: Light, shore: np.ndarray,
                   mud: np.ndarray, fine: np.ndarray) -> np.ndarray:
    """Low tufts of glasswort, dull green to purplish, on the drier mud."""
    field = ground_fbm(rng, spectral_texture(rng, beta=2.0), ground, per_metre=2.5, octaves=6)
    clumps = ground_fbm(rng, spectral_texture(rng, beta=1.4), ground, per_metre=25.0, octaves=4)
    threshold = rng.uniform(0.42, 0.6)
    cover = smoothstep(threshold, threshold + 0.12, field + 0.12 * clumps)
    cover = (cover * smoothstep(0.1, 0.25, shore))[..., None]
    hue = smoothstep(-0.8, 0.8, value_noise(rng, HEIGHT, WIDTH, 90.0))[..., None]
    green = np.array((0.33, 0.37, 0.23), np.float32)
    purple = np.array((0.42, 0.31, 0.28), np.float32)
    colour = lerp(green, purple, hue * rng.uniform(0.3, 1.0)) * np.array(light.sun, np.float32)
    colour = colour * (0.72 + 0.22 * np.clip(clumps + 0.5 * fine, -1.5, 1.5))[..., None]
    return lerp(mud, colour, cover * 0.85)


def water_colour(rng: np.random.Generator, ground: Ground, cam: Camera, light: Light,
                 shore: np.ndarray, mud: np.ndarray, sky: np.ndarray, sky_top: int) -> np.ndarray:
    """Turbid shallow water: the bottom near the shore, the rippled sky reflection further."""
    ripple = ground_fbm(rng, spectral_texture(rng, beta=2.0, stretch=5.0, wavelengths=(4.0, 64.0)),
                        ground, per_metre=5.0, octaves=5, rotate=False)
    wind = ground_fbm(rng, spectral_texture(rng, beta=2.4), ground, per_metre=0.3, octaves=3)
    wind = smoothstep(-0.5, 0.5, wind + rng.uniform(-0.4, 0.5))[..., None]
    rows = np.arange(HEIGHT, dtype=np.float32)[:, None] + 0.5
    distance = ground.distance_px.astype(np.float32)
    reflections = [sky_reflection(sky, 2.0 * cam.horizon - rows - sky_top + ripple * scale)
                   for scale in (1.5 + distance * 0.02, 4.0 + distance * 0.1)]
    rough = cv2.GaussianBlur(reflections[1], (0, 0), 6.0)
    reflection = lerp(reflections[0], rough, wind)
    view = np.arctan(ground.distance_px / FOCAL_PX)
    fresnel = 0.02 + 0.98 * (1.0 - np.sin(view)) ** 5
    strength = np.clip(0.2 + 0.8 * fresnel, 0.0, 1.0).astype(np.float32)[..., None]
    depth = np.clip(-shore / 0.4, 0.0, 1.0)[..., None]
    turbid = np.array((0.30, 0.33, 0.29), np.float32) * np.array(light.sun, np.float32)
    water = lerp(lerp(mud * 0.75, turbid, depth), reflection, strength * (1.0 - 0.2 * wind))
    water = water * (1.0 + (0.04 + 0.1 * wind) * ripple[..., None])
    glint = np.clip(ripple[..., None] - 1.6, 0.0, 0.6) * 0.2 * light.direct * wind
    return water + glint * np.array(light.sun, np.float32)


def sky_reflection(sky: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """The sky image sampled at the given (mirrored) rows, column by column."""
    map_x = np.broadcast_to(np.arange(WIDTH, dtype=np.float32)[None, :], map_y.shape)
    return cv2.remap(sky, np.ascontiguousarray(map_x), map_y.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def render_background(rng: np.random.Generator, cam: Camera, light: Light, spec: SceneSpec
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The empty lagoon as float RGB, and how much of each pixel is water (0..1)."""
    sky_top = int(math.floor(min(0.0, 2.0 * cam.horizon - HEIGHT))) - 16
    sky_bottom = max(int(math.ceil(cam.horizon)) + 2, sky_top + 4)
    sky = render_sky(rng, cam, light, sky_top, sky_bottom)
    add_far_shore(rng, sky, sky_top, cam, light)
    ground = ground_coords(cam)
    shore = shore_field(rng, ground, spec)
    mud = mud_colour(rng, ground, light, shore)
    water = water_colour(rng, ground, cam, light, shore, mud, sky, sky_top)
    wet = smoothstep(0.015, -0.015, shore)
    image = lerp(mud, water, wet[..., None])
    haze = (1.0 - np.exp(-ground.z / 220.0)).astype(np.float32)[..., None]
    image = lerp(image, np.array(light.horizon, np.float32), haze * 0.9)
    rows = np.arange(HEIGHT, dtype=np.float32)[:, None] + 0.5
    below = np.clip(rows - cam.horizon + 0.5, 0.0, 1.0)[..., None]
    visible_sky = np.zeros_like(image)
    first = max(0, -sky_top)
    count = min(HEIGHT, sky.shape[0] - first)
    if count > 0:
        visible_sky[:count] = sky[first:first + count]
    image = lerp(visible_sky, image, below)
    return image.astype(np.float32), (wet * below[..., 0]).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Drawing helpers (float masks drawn with OpenCV's anti-aliased primitives)


def fill_polygon(mask: np.ndarray, points: np.ndarray) -> None:
    pts = np.round(np.asarray(points, np.float64) * 16.0).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA, shift=4)


def fill_disc(mask: np.ndarray, centre: np.ndarray, radius: float) -> None:
    c = tuple(int(round(v * 16.0)) for v in centre)
    cv2.circle(mask, c, max(1, int(round(radius * 16.0))), 255, -1, cv2.LINE_AA, shift=4)


def tube(mask: np.ndarray, points: np.ndarray, radii: np.ndarray) -> None:
    """A round-ended tube of varying radius along a polyline."""
    p = np.asarray(points, np.float64)
    r = np.asarray(radii, np.float64)
    d = np.gradient(p, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
    fill_polygon(mask, np.concatenate([p + normal * r[:, None], (p - normal * r[:, None])[::-1]]))
    fill_disc(mask, p[0], r[0])
    fill_disc(mask, p[-1], r[-1])


def bezier(p0, p1, p2, count: int = 24) -> np.ndarray:
    t = np.linspace(0.0, 1.0, count)[:, None]
    p0, p1, p2 = (np.asarray(p, np.float64) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


class Layer:
    """Premultiplied RGBA accumulator that tracks how much of each registered mask stays visible."""

    def __init__(self, height: int, width: int) -> None:
        self.rgb = np.zeros((height, width, 3), np.float32)
        self.alpha = np.zeros((height, width), np.float32)
        self.tracked: list[np.ndarray] = []

    def over(self, colour, mask: np.ndarray) -> None:
        """Paint opaque ``colour`` (RGB or image) with coverage ``mask`` on top."""
        self.over_premultiplied(np.asarray(colour, np.float32) * mask[..., None], mask)

    def over_premultiplied(self, rgb: np.ndarray, alpha: np.ndarray) -> None:
        self.rgb = self.rgb * (1.0 - alpha[..., None]) + rgb
        self.alpha = self.alpha * (1.0 - alpha) + alpha
        for mask in self.tracked:
            mask *= 1.0 - alpha


def as_mask(canvas: np.ndarray) -> np.ndarray:
    return canvas.astype(np.float32) / 255.0


# ----------------------------------------------------------------------------------------------
# Darvic rings


@dataclasses.dataclass(frozen=True)
class TagSpec:
    code: str
    style: str  # "along": characters rotated, reading along the leg; "stacked": upright, stacked
    reads_up: bool
    yellow: bool
    width_px: float  # ring diameter in final pixels


def ring_patch(rng: np.random.Generator, tag: TagSpec, light: Light, sun_left: bool
               ) -> tuple[np.ndarray, np.ndarray]:
    """A ring seen slightly from above, axis vertical, at RING_SUPERSAMPLE: (premult RGB, alpha),
    drawn by the library's tag renderer (`spatule_synth.tags.ring`) with Pillow's bundled font."""
    look = RingLook(tag.code, tag.style, tag.reads_up, PALE_YELLOW if tag.yellow else WHITE,
                    tag.width_px, light.direct, sun_left)
    return draw_ring(rng, look, FontGlyphs(), RING_SUPERSAMPLE)


def place_ring(layer: Layer, ring: tuple[np.ndarray, np.ndarray], centre: np.ndarray,
               axis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw the ring on ``layer`` with its axis along ``axis``; return its visible-mask handle."""
    scale = SUPERSAMPLE / RING_SUPERSAMPLE
    rgb, alpha = (cv2.resize(a, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                  for a in ring)
    angle = math.degrees(math.atan2(axis[0], axis[1])) + rng.uniform(-4.0, 4.0)
    h, w = alpha.shape
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    matrix[:, 2] += np.asarray(centre) - (w / 2.0, h / 2.0)
    size = (layer.alpha.shape[1], layer.alpha.shape[0])
    rgb = cv2.warpAffine(rgb, matrix, size, flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(alpha, matrix, size, flags=cv2.INTER_LINEAR)
    layer.over_premultiplied(rgb, alpha)
    visible = alpha.copy()
    layer.tracked.append(visible)
    return visible


# ----------------------------------------------------------------------------------------------
# Spoonbills


@dataclasses.dataclass(frozen=True)
class BirdPlan:
    foot: tuple[float, float]  # image position of the point between the feet
    size: float  # standing height in pixels
    facing: int  # 1: looking right, -1: looking left
    pose: str
    breeding: bool
    tag: TagSpec | None


# Bird units: x forward, y up, 1 = standing height. Legs are (hip, joint, foot), far leg first.
STANDARD_LEGS = (((-0.03, 0.47), (-0.06, 0.225), (-0.035, 0.0)),
                 ((0.03, 0.47), (0.01, 0.22), (0.045, 0.0)))
POSES = types.MappingProxyType({
    "standing": dict(tilt=8.0, body_y=0.575, neck=((0.15, 0.63), (0.27, 0.80), (0.19, 0.925)),
                     bill=(-62.0, 0.26), legs=STANDARD_LEGS),
    "alert": dict(tilt=12.0, body_y=0.58, neck=((0.15, 0.64), (0.17, 0.84), (0.23, 0.95)),
                  bill=(-14.0, 0.26), legs=STANDARD_LEGS),
    "walking": dict(tilt=2.0, body_y=0.575, neck=((0.17, 0.62), (0.32, 0.74), (0.37, 0.82)),
                    bill=(-40.0, 0.26),
                    legs=(((-0.03, 0.47), (-0.10, 0.235), (-0.15, 0.015)),
                          ((0.03, 0.47), (0.085, 0.23), (0.15, 0.0)))),
    "feeding": dict(tilt=-12.0, body_y=0.56, neck=((0.17, 0.56), (0.40, 0.56), (0.42, 0.26)),
                    bill=(-80.0, 0.25), legs=STANDARD_LEGS),
    "resting": dict(tilt=4.0, body_y=0.575, neck=((0.12, 0.63), (0.15, 0.70), (0.08, 0.71)),
                    bill=(188.0, 0.10), legs=(((0.0, 0.47), (-0.03, 0.225), (0.0, 0.0)),)),
})


def jitter(rng: np.random.Generator, point, amount: float = 0.012) -> np.ndarray:
    return np.asarray(point, np.float64) + rng.uniform(-amount, amount, 2)


class BirdFrame:
    """Maps bird units to the pixels of a supersampled sprite."""

    def __init__(self, plan: BirdPlan, left: int, top: int) -> None:
        self.unit = plan.size * SUPERSAMPLE
        self.foot = np.array([(plan.foot[0] - left) * SUPERSAMPLE,
                              (plan.foot[1] - top) * SUPERSAMPLE])
        self.facing = plan.facing

    def __call__(self, points) -> np.ndarray:
        p = np.atleast_2d(np.asarray(points, np.float64))
        return np.stack([self.foot[0] + self.facing * p[:, 0] * self.unit,
                         self.foot[1] - p[:, 1] * self.unit], axis=1)


def body_outline(rng: np.random.Generator, pose: dict, angle: float) -> np.ndarray:
    """Egg-shaped body (deep round chest in front, slimmer drooping tail), bird units."""
    a, b = 0.235 * rng.uniform(0.95, 1.05), 0.128 * rng.uniform(0.94, 1.06)
    t = np.linspace(0.0, 2.0 * math.pi, 120, endpoint=False)
    x = a * np.cos(t)
    y = b * np.sin(t) * (0.82 + 0.18 * np.cos(t)) - 0.35 * b * np.clip(-x / a - 0.5, 0.0, None) ** 2
    return body_to_bird(np.stack([x, y], axis=1), pose, angle)


def body_to_bird(points: np.ndarray, pose: dict, angle: float) -> np.ndarray:
    """Body-centred coordinates (x along the body) to bird units."""
    c, s = math.cos(angle), math.sin(angle)
    x, y = points[:, 0], points[:, 1]
    return np.stack([x * c - y * s, x * s + y * c + pose["body_y"]], axis=1)


def wing_creases(rng: np.random.Generator, frame: BirdFrame, pose: dict, angle: float,
                 shape: tuple[int, int]) -> np.ndarray:
    """Soft shadow lines of the folded wing: its lower edge and the tips of the long feathers."""
    canvas = np.zeros(shape, np.uint8)
    lines = [((0.15, -0.01), (-0.02, -0.085), (-0.27, -0.03))]
    for k in range(4):
        start = (-0.06 - 0.03 * k, 0.03 - 0.02 * k + rng.uniform(-0.01, 0.01))
        lines.append((start, (-0.17, 0.0 - 0.012 * k), (-0.28 + 0.008 * k, -0.025 - 0.004 * k)))
    for p0, p1, p2 in lines:
        points = body_to_bird(bezier(p0, p1, p2, 16), pose, angle)
        tube(canvas, frame(points), np.full(16, 0.0035) * frame.unit)
    return cv2.GaussianBlur(as_mask(canvas), (0, 0), 0.006 * frame.unit)


def feather_mask(rng: np.random.Generator, plan: BirdPlan, frame: BirdFrame, pose: dict,
                 shape: tuple[int, int]) -> tuple[np.ndarray, dict]:
    """White plumage (body, neck, head, crest); returns its mask, key points and wing creases."""
    canvas = np.zeros(shape, np.uint8)
    angle = math.radians(pose["tilt"] + rng.uniform(-3.0, 3.0))
    fill_polygon(canvas, frame(body_outline(rng, pose, angle)))
    base, control, head = (jitter(rng, p) for p in pose["neck"])
    neck = bezier(base, control, head)
    tube(canvas, frame(neck), np.linspace(0.062, 0.038, len(neck)) * frame.unit)
    fill_disc(canvas, frame(head)[0], 0.047 * frame.unit)
    if plan.breeding:
        draw_crest(rng, canvas, frame, head, pose["bill"][0])
    creases = wing_creases(rng, frame, pose, angle, shape)
    return as_mask(canvas), {"neck_base": base, "head": head, "creases": creases}


def draw_crest(rng: np.random.Generator, canvas: np.ndarray, frame: BirdFrame, head: np.ndarray,
               bill_angle: float) -> None:
    """The breeding crest: a tuft of long feathers hanging from the back of the head."""
    a = math.radians(bill_angle)
    back = -np.array([math.cos(a), math.sin(a)]) + (0.0, -0.6)
    back /= np.linalg.norm(back)
    for _ in range(7):
        turn = rng.uniform(-0.35, 0.35)
        direction = np.array([back[0] * math.cos(turn) - back[1] * math.sin(turn),
                              back[0] * math.sin(turn) + back[1] * math.cos(turn)])
        start = head + 0.025 * back
        end = start + direction * rng.uniform(0.055, 0.085) + (0.0, -0.012)
        strand = bezier(start, (start + end) / 2 + (0.0, 0.008), end, 8)
        tube(canvas, frame(strand), np.linspace(0.01, 0.0025, 8) * frame.unit)


def ellipse_points(centre, a: float, b: float, count: int = 48) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * math.pi, count, endpoint=False)
    return np.stack([centre[0] + a * np.cos(t), centre[1] + b * np.sin(t)], axis=1)


def bill_polygon(head: np.ndarray, angle_deg: float, length: float) -> np.ndarray:
    """A long flat bill, narrowing then widening into the spatula, slightly drooping at the tip."""
    angle = math.radians(angle_deg)
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    t = np.linspace(0.0, 1.0, 48)
    half = np.interp(t, [0.0, 0.12, 0.62, 0.8, 0.9, 0.97, 1.0],
                     [0.02, 0.013, 0.0075, 0.0135, 0.0155, 0.011, 0.003])
    droop = -0.014 * t ** 3 * (1.0 if math.cos(angle) >= 0 else -1.0)
    centre = head + 0.03 * direction + np.outer(t * length, direction) + np.outer(droop, normal)
    offset = normal * half[:, None]
    return np.concatenate([centre + offset, (centre - offset)[::-1]])


def leg_masks(rng: np.random.Generator, frame: BirdFrame, pose: dict, shape: tuple[int, int]
              ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One mask per leg (far leg first) and the jittered (hip, joint, foot) points of each."""
    masks, joints = [], []
    for hip, joint, foot in pose["legs"]:
        hip, joint = jitter(rng, hip, 0.006), jitter(rng, joint, 0.01)
        foot = jitter(rng, foot, 0.01)
        canvas = np.zeros(shape, np.uint8)
        tube(canvas, frame([hip, joint]), np.array([0.0165, 0.0145]) * frame.unit)
        tube(canvas, frame([joint, foot]), np.array([0.0135, 0.012]) * frame.unit)
        fill_disc(canvas, frame(joint)[0], 0.017 * frame.unit)
        for toe in ((0.075, 0.0), (0.055, -0.012), (-0.03, 0.004)):
            tube(canvas, frame([foot, foot + np.array(toe)]), np.array([0.006, 0.004]) * frame.unit)
        masks.append(as_mask(canvas))
        joints.append(np.array([hip, joint, foot]))
    return masks, joints


def shade_feathers(rng: np.random.Generator, white: np.ndarray, light: Light, sun_left: bool,
                   unit: float, breast: np.ndarray | None, creases: np.ndarray) -> np.ndarray:
    """White plumage lit from the sun's side and from above, bluish grey in the shade."""
    edge, form = (cv2.GaussianBlur(white, (0, 0), f * unit) for f in (0.02, 0.06))
    height = 0.4 * edge + 0.6 * form
    gy, gx = np.gradient(height)
    k = 0.12 * unit
    nx, ny, nz = -gx * k, -gy * k, np.ones_like(gx)
    lx, ly, lz = (-0.5 if sun_left else 0.5), -0.7, 0.5
    norm = np.sqrt(nx ** 2 + ny ** 2 + nz ** 2)
    sun = np.clip(((nx * lx + ny * ly + nz * lz) / norm + 0.15) / 1.15, 0.0, 1.0)
    sky = np.clip(0.8 - 0.5 * ny / norm, 0.0, 1.0)  # the sky dome lights what faces up
    diffuse = light.direct * sun + (1.0 - light.direct) * sky
    lit = np.array((0.95, 0.94, 0.92), np.float32) * np.array(light.sun, np.float32)
    colour = lerp(np.array(light.shadow, np.float32), lit, np.clip(diffuse, 0.0, 1.0)[..., None])
    grain = cv2.resize(rng.normal(size=(int(white.shape[0] / (0.005 * unit)) + 2,
                                         int(white.shape[1] / (0.03 * unit)) + 2)).astype(np.float32),
                       (white.shape[1], white.shape[0]), interpolation=cv2.INTER_CUBIC)
    shading = (1.0 + 0.02 * grain) * np.clip(0.84 + 0.25 * edge, 0.0, 1.0) * (1.0 - 0.22 * creases)
    colour = colour * shading[..., None]
    if breast is not None:
        tint = np.array((1.0, 0.88, 0.62), np.float32)
        colour = colour * lerp(np.ones(3, np.float32), tint, breast[..., None] * 0.45)
    return colour.astype(np.float32)


def breast_band(frame: BirdFrame, base: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The ochre patch at the base of the neck of breeding adults."""
    canvas = np.zeros(shape, np.uint8)
    fill_polygon(canvas, frame(ellipse_points(base + (0.05, -0.05), 0.05, 0.035)))
    return cv2.GaussianBlur(as_mask(canvas), (0, 0), 0.02 * frame.unit)


def draw_head_details(layer: Layer, frame: BirdFrame, plan: BirdPlan, pose: dict,
                      head: np.ndarray, shape: tuple[int, int]) -> None:
    """Bill (yellow spatula tip on breeding adults), eye and the black line from eye to bill."""
    angle, length = pose["bill"]
    bill = np.zeros(shape, np.uint8)
    fill_polygon(bill, frame(bill_polygon(head, angle, length)))
    layer.over((0.07, 0.07, 0.075), as_mask(bill))
    if plan.breeding and angle < 90.0:
        tip = np.zeros(shape, np.uint8)
        a = math.radians(angle)
        spatula = head + (0.03 + 0.93 * length) * np.array([math.cos(a), math.sin(a)])
        fill_disc(tip, frame(spatula)[0], 0.013 * frame.unit)
        layer.over((0.78, 0.62, 0.22), as_mask(tip) * as_mask(bill) * 0.85)
    details = np.zeros(shape, np.uint8)
    eye = head + (0.012, 0.01)
    fill_disc(details, frame(eye)[0], 0.0065 * frame.unit)
    start = head + 0.03 * np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
    tube(details, frame([eye, start]), np.array([0.0025, 0.005]) * frame.unit)
    layer.over((0.08, 0.06, 0.06), as_mask(details))


def bare_tibia(white: np.ndarray, frame: BirdFrame, leg: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, float]:
    """Joint position, unit axis (hip to joint) and length of the featherless part of a tibia."""
    hip, joint = frame(leg[0])[0], frame(leg[1])[0]
    axis = (joint - hip) / np.linalg.norm(joint - hip)
    bare = 0.0
    for t in np.linspace(0.0, 1.0, 200):
        p = joint + (hip - joint) * t
        if white[int(p[1]), int(p[0])] > 0.05:
            break
        bare = t * np.linalg.norm(hip - joint)
    return joint, axis, bare


def add_ring(rng: np.random.Generator, layer: Layer, white: np.ndarray, frame: BirdFrame,
             leg: np.ndarray, tag: TagSpec, light: Light, sun_left: bool) -> np.ndarray:
    """A ring resting just above the joint, below the belly feathers (narrower if need be)."""
    joint, axis, bare = bare_tibia(white, frame, leg)
    while True:
        patch = ring_patch(rng, tag, light, sun_left)
        ring_len = patch[1].shape[0] * SUPERSAMPLE / RING_SUPERSAMPLE
        if ring_len <= 0.9 * bare:
            break
        tag = dataclasses.replace(tag, width_px=tag.width_px * 0.93)
    lift = min(0.025 * frame.unit + ring_len / 2.0, bare - ring_len / 2.0 - 0.04 * bare)
    return place_ring(layer, patch, joint - axis * lift, axis, rng)


def render_bird(rng: np.random.Generator, plan: BirdPlan, light: Light, sun_left: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int, int]:
    """The bird as a sprite: premultiplied RGB, alpha, visible ring mask, top-left position."""
    left = int(math.floor(plan.foot[0] - 0.78 * plan.size))
    top = int(math.floor(plan.foot[1] - 1.06 * plan.size))
    size_px = (int(math.ceil(1.56 * plan.size)) + 2, int(math.ceil(1.14 * plan.size)) + 2)
    shape = (size_px[1] * SUPERSAMPLE, size_px[0] * SUPERSAMPLE)
    frame = BirdFrame(plan, left, top)
    pose = POSES[plan.pose]
    layer = Layer(*shape)
    legs, leg_points = leg_masks(rng, frame, pose, shape)
    for index, mask in enumerate(legs):
        layer.over((LEG_BLACK * (0.7 if index < len(legs) - 1 else 1.0),) * 3, mask)
    white, points = feather_mask(rng, plan, frame, pose, shape)
    ring = None
    if plan.tag is not None:
        ring = add_ring(rng, layer, white, frame, leg_points[-1], plan.tag, light, sun_left)
    breast = breast_band(frame, points["neck_base"], shape) * white if plan.breeding else None
    feathers = shade_feathers(rng, white, light, sun_left, frame.unit, breast, points["creases"])
    layer.over(feathers, white)
    draw_head_details(layer, frame, plan, pose, points["head"], shape)
    down = (size_px[0], size_px[1])
    rgb = cv2.resize(layer.rgb, down, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(layer.alpha, down, interpolation=cv2.INTER_AREA)
    if ring is not None:
        ring = cv2.resize(ring, down, interpolation=cv2.INTER_AREA)
    return rgb, alpha, ring, left, top


# ----------------------------------------------------------------------------------------------
# Placing birds in the scene


def new_code(rng: np.random.Generator, used: set[str]) -> str:
    while True:
        code = "".join(CODE_CHARACTERS[int(i)] for i in rng.integers(len(CODE_CHARACTERS), size=4))
        if code not in used and any(c.isalpha() for c in code) and any(c.isdigit() for c in code):
            used.add(code)
            return code


def plan_birds(rng: np.random.Generator, spec: SceneSpec, cam: Camera, used_codes: set[str]
               ) -> list[BirdPlan]:
    """Birds that do not overlap much, ringed ones large enough for a readable ring."""
    plans: list[BirdPlan] = []
    boxes: list[tuple[float, float, float, float]] = []
    for index in range(spec.birds):
        tagged = index < spec.tagged
        for _ in range(1000):
            size = rng.uniform(345.0, 450.0) if tagged else rng.uniform(150.0, 420.0)
            foot = (rng.uniform(0.04, 0.96) * WIDTH, cam.foot_row(size))
            facing = int(rng.choice([-1, 1]))
            back, front = foot[0] - facing * 0.3 * size, foot[0] + facing * 0.62 * size
            box = (min(back, front), foot[1] - 1.0 * size, max(back, front), foot[1])
            if box[0] >= 4 and box[2] <= WIDTH - 4 and box[1] >= 6 and not any(
                    box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                    for b in boxes):
                break
        else:
            raise RuntimeError(f"{spec.name}: no room for bird #{index}")
        boxes.append(box)
        plans.append(BirdPlan(foot, size, facing, pick_pose(rng, tagged),
                              bool(rng.random() < 0.6),
                              new_tag(rng, size, used_codes) if tagged else None))
    return sorted(plans, key=lambda p: p.foot[1])


def pick_pose(rng: np.random.Generator, tagged: bool) -> str:
    poses = ["standing", "alert", "walking", "feeding"] + ([] if tagged else ["resting"] * 2)
    return poses[int(rng.integers(len(poses)))]


def new_tag(rng: np.random.Generator, size: float, used_codes: set[str]) -> TagSpec:
    stacked = len(used_codes) % 4 == 2  # every fourth ring has upright stacked characters
    return TagSpec(code=new_code(rng, used_codes), style="stacked" if stacked else "along",
                   reads_up=bool(rng.random() < 0.5), yellow=bool(rng.random() < 0.25),
                   width_px=size * rng.uniform(0.05, 0.058) * (0.85 if stacked else 1.0))


def paste(image: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, left: int, top: int,
          tags: list[np.ndarray]) -> tuple[slice, slice, slice, slice]:
    """Composite a premultiplied sprite (clipped to the frame); hide what it covers of the tags."""
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + alpha.shape[0], HEIGHT), min(left + alpha.shape[1], WIDTH)
    y1, x1 = max(y1, y0), max(x1, x0)  # an empty intersection stays empty
    dst = (slice(y0, y1), slice(x0, x1))
    src = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    a = alpha[src]
    image[dst] = image[dst] * (1.0 - a[..., None]) + rgb[src]
    for mask in tags:
        mask[dst] *= 1.0 - a
    return dst + src


def add_reflection(rng: np.random.Generator, image: np.ndarray, water: np.ndarray,
                   sprite: tuple, foot: tuple[float, float], tags: list[np.ndarray]) -> None:
    """Mirror the bird in the water below its feet, wobbled by ripples and darkened."""
    rgb, alpha, _, left, top = sprite
    foot_row = foot[1] - top
    start = int(math.ceil(foot[1]))
    count = min(HEIGHT - start, int(foot_row) - 2)
    if count <= 2:
        return
    rows = np.arange(count, dtype=np.float32)[:, None] + (start - top) + 0.5
    depth = rows - foot_row
    wobble = (0.8 * np.sin(depth * 0.23 + rng.uniform(0, 6.3))
              + 0.5 * np.sin(depth * 0.61 + rng.uniform(0, 6.3))) * (0.5 + depth / 80.0)
    map_x = (np.arange(alpha.shape[1], dtype=np.float32)[None, :] + wobble).astype(np.float32)
    map_y = np.broadcast_to(2.0 * foot_row - rows - 0.5, map_x.shape).astype(np.float32)
    mirrored = [cv2.remap(a, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
                for a in (rgb, alpha)]
    mirrored = [cv2.GaussianBlur(a, (0, 0), 1.3) for a in mirrored]
    fade = 0.55 * water[start:start + count, max(left, 0):left + alpha.shape[1]]
    fade = np.pad(fade, ((0, 0), (max(0, -left), max(0, left + alpha.shape[1] - WIDTH))))
    paste(image, mirrored[0] * (0.62 * fade)[..., None], mirrored[1] * fade, left, start, tags)


def add_shadow(image: np.ndarray, water: np.ndarray, plan: BirdPlan, light: Light,
               sun_left: bool) -> None:
    """A soft contact shadow on the mud, cast away from the sun."""
    size = plan.size
    canvas = np.zeros((HEIGHT, WIDTH), np.uint8)
    shift = (0.12 if sun_left else -0.12) * size
    centre = (int(round(plan.foot[0] + shift)), int(round(plan.foot[1] + 0.01 * size)))
    axes = (int(0.26 * size), max(2, int(0.03 * size)))
    cv2.ellipse(canvas, centre, axes, 0.0, 0.0, 360.0, 255, -1, cv2.LINE_AA)
    shadow = cv2.GaussianBlur(as_mask(canvas), (0, 0), 0.025 * size)
    strength = 0.2 + 0.25 * light.direct
    image *= (1.0 - strength * shadow * (1.0 - water))[..., None]


def add_birds(rng: np.random.Generator, image: np.ndarray, water: np.ndarray,
              plans: list[BirdPlan], light: Light, sun_left: bool) -> list[np.ndarray]:
    """Draw birds far to near; return one full-frame visible mask per ring."""
    tags: list[np.ndarray] = []
    for plan in plans:
        sprite = render_bird(rng, plan, light, sun_left)
        x, y = int(plan.foot[0]), min(int(plan.foot[1]), HEIGHT - 1)
        if water[y, x] > 0.5:
            add_reflection(rng, image, water, sprite, plan.foot, tags)
        else:
            add_shadow(image, water, plan, light, sun_left)
        rgb, alpha, ring, left, top = sprite
        y_dst, x_dst, y_src, x_src = paste(image, rgb, alpha, left, top, tags)
        if ring is not None:
            mask = np.zeros((HEIGHT, WIDTH), np.float32)
            mask[y_dst, x_dst] = ring[y_src, x_src]
            tags.append(mask)
    return tags


# ----------------------------------------------------------------------------------------------
# Foreground grass


def grass_tuft(rng: np.random.Generator, height: float, light: Light
               ) -> tuple[np.ndarray, np.ndarray]:
    """An out-of-focus tuft of grass and dry stems rooted at the bottom centre of its sprite."""
    h, w = int(height * 1.1), int(height * 1.2)
    rgb = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)
    palette = np.array(((0.60, 0.54, 0.36), (0.45, 0.47, 0.27), (0.33, 0.38, 0.20),
                        (0.70, 0.64, 0.45)), np.float32) * np.array(light.sun, np.float32)
    for _ in range(int(rng.integers(35, 80))):
        base = np.array([w / 2 + rng.normal(0, w * 0.08), h + 2.0])
        length = height * rng.uniform(0.35, 1.0)
        lean = rng.normal(0.0, 0.35)
        tip = base + length * np.array([math.sin(lean), -math.cos(lean)])
        bend = base + 0.55 * (tip - base) + (rng.normal(0, 0.08 * length), 0.0)
        points = bezier(base, bend, tip, 12)
        colour = palette[int(rng.integers(len(palette)))] * rng.uniform(0.7, 1.1)
        width = rng.uniform(2.0, 5.0)
        for i in range(len(points) - 1):
            thickness = max(1, int(round(width * (1.0 - i / len(points)))))
            p, q = (tuple(int(round(v)) for v in points[j]) for j in (i, i + 1))
            cv2.line(rgb, p, q, tuple(float(c) for c in colour), thickness, cv2.LINE_AA)
            cv2.line(alpha, p, q, 1.0, thickness, cv2.LINE_AA)
    sigma = rng.uniform(1.5, 3.0)
    alpha = np.clip(cv2.GaussianBlur(alpha, (0, 0), sigma), 0.0, 1.0)
    rgb = cv2.GaussianBlur(rgb, (0, 0), sigma)
    return rgb, alpha


def add_grass(rng: np.random.Generator, image: np.ndarray, light: Light, tags: list[np.ndarray]
              ) -> None:
    """0-3 grass tufts along the bottom edge, never in front of a ring."""
    for _ in range(int(rng.integers(0, 4))):
        height = rng.uniform(120.0, 320.0)
        rgb, alpha = grass_tuft(rng, height, light)
        side = rng.choice([rng.uniform(-0.08, 0.18), rng.uniform(0.82, 1.08)])
        left = int(side * WIDTH - alpha.shape[1] / 2)
        top = HEIGHT - alpha.shape[0] + int(rng.uniform(0, 0.25) * height)
        ys, xs = slice(max(top, 0), HEIGHT), slice(max(left, 0), min(left + alpha.shape[1], WIDTH))
        if any(mask[ys, xs].max(initial=0.0) > 0.0 for mask in tags):
            continue
        paste(image, rgb, alpha, left, top, tags)


# ----------------------------------------------------------------------------------------------
# Camera


def camera_effects(rng: np.random.Generator, image: np.ndarray, light: Light, sun_left: bool
                   ) -> np.ndarray:
    """Defocus, light falloff, vignetting, tone curve and sensor noise; returns uint8 RGB."""
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.7, 0.9))
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    u, v = xs / WIDTH - 0.5, ys / HEIGHT - 0.5
    falloff = 1.0 + rng.uniform(0.06, 0.14) * (-u if sun_left else u) + rng.uniform(-0.05, 0.05) * v
    vignette = 1.0 - 0.3 * (np.sqrt(u ** 2 + v ** 2) / math.sqrt(0.5)) ** 2.4
    image = image * (falloff * vignette * light.exposure)[..., None]
    image = np.clip(image, 0.0, None)
    image = 1.08 * image / (1.0 + 0.08 * image)  # soft shoulder on the highlights
    grey = image.mean(axis=2, keepdims=True)
    image = lerp(grey, image, 0.92)  # field cameras are not very saturated
    noise = rng.normal(0.0, 1.0, (HEIGHT, WIDTH, 1)).astype(np.float32) * 0.006
    noise = noise + rng.normal(0.0, 1.0, (HEIGHT, WIDTH, 3)).astype(np.float32) * 0.002
    image = image + noise * np.sqrt(np.clip(image, 0.02, 1.0))
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Scenes, files and checks


def render_scene(rng: np.random.Generator, spec: SceneSpec, used_codes: set[str]
                 ) -> tuple[np.ndarray, list[Box]]:
    """The displayed (landscape) pixels of one photo and the annotator's ring boxes."""
    cam = Camera.for_horizon(spec.horizon * HEIGHT)
    light = LIGHTS[spec.light]
    image, water = render_background(rng, cam, light, spec)
    plans = plan_birds(rng, spec, cam, used_codes)
    tags = add_birds(rng, image, water, plans, light, spec.sun_left)
    add_grass(rng, image, light, tags)
    pixels = camera_effects(rng, image, light, spec.sun_left)
    return pixels, [annotated_box(rng, mask) for mask in tags]


def annotated_box(rng: np.random.Generator, visible: np.ndarray) -> Box:
    """Tight pixel-edge box of the visible ring, each edge moved by at most 1 px, in the frame."""
    ys, xs = np.nonzero(visible >= 0.5)
    moves = rng.integers(-1, 2, size=4)
    xmin = int(np.clip(xs.min() + moves[0], 0, WIDTH - 1))
    ymin = int(np.clip(ys.min() + moves[1], 0, HEIGHT - 1))
    xmax = int(np.clip(xs.max() + 1 + moves[2], xmin + 1, WIDTH))
    ymax = int(np.clip(ys.max() + 1 + moves[3], ymin + 1, HEIGHT))
    return Box(xmin, ymin, xmax, ymax)


def jpeg_bytes(pixels: np.ndarray, spec: SceneSpec) -> bytes:
    """The camera file: JPEG with EXIF; a rotated photo is stored portrait with orientation 6."""
    exif = Image.Exif()
    exif[0x010F] = "spatule_synth"  # Make
    exif[0x0110] = "synthetic field camera"  # Model
    exif[0x0131] = "spatule_synth/demo_data/build.py"  # Software
    exif[0x0132] = spec.taken  # DateTime
    exif[0x0112] = 6 if spec.rotated else 1  # Orientation
    exif.get_ifd(0x8769)[0x9003] = spec.taken  # DateTimeOriginal
    # Orientation 6 means "rotate 90 degrees clockwise to display": store the scene turned
    # 90 degrees counter-clockwise.
    stored = np.ascontiguousarray(np.rot90(pixels, 1)) if spec.rotated else pixels
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "JPEG", quality=JPEG_QUALITY, exif=exif.tobytes(),
                                 optimize=True)
    return buffer.getvalue()


def annotation(name: str, boxes: list[Box], windows_path: bool) -> VocAnnotation:
    if windows_path:
        path = "C:\\Users\\marie\\Documents\\spatules\\photos_2023\\" + name
    else:
        path = "/home/marie/spatules/photos_2023/" + name
    objects = tuple(VocObject(name="tag", box=box) for box in boxes)
    return VocAnnotation(filename=name, width=WIDTH, height=HEIGHT, depth=3, objects=objects,
                         folder="photos_2023", path=path, verified=True)


def xml_path(folder: str, image_name: str) -> str:
    return os.path.join(folder, os.path.splitext(image_name)[0] + ".xml")


def write_scene(rng: np.random.Generator, spec: SceneSpec, used_codes: set[str]) -> np.ndarray:
    pixels, boxes = render_scene(rng, spec, used_codes)
    if len(boxes) != spec.tagged:
        raise RuntimeError(f"{spec.name}: {len(boxes)} ring boxes, expected {spec.tagged}")
    folder = os.path.join(HERE, spec.folder)
    os.makedirs(folder, exist_ok=True)
    atomic_write_bytes(os.path.join(folder, spec.name), jpeg_bytes(pixels, spec))
    if spec.annotated:
        write_voc(annotation(spec.name, boxes, spec.windows_path), xml_path(folder, spec.name))
    return pixels


def write_missing_image_xml(rng: np.random.Generator) -> None:
    """An XML whose photo is absent, with one plausible ring box."""
    x, y = int(rng.integers(300, 1300)), int(rng.integers(650, 1000))
    box = Box(x, y, x + int(rng.integers(20, 27)), y + int(rng.integers(54, 68)))
    write_voc(annotation("IMAG0399.JPG", [box], windows_path=False),
              os.path.join(HERE, "labelled", MISSING_IMAGE_XML))


def check_outputs(rendered: dict[str, np.ndarray]) -> int:
    """Re-read what was written; raise AssertionError on any inconsistency; return total bytes."""
    labelled = os.path.join(HERE, "labelled")
    for spec in SCENES:
        image_path = os.path.join(HERE, spec.folder, spec.name)
        with Image.open(image_path) as image:
            stored_size = image.size
            shown = ImageOps.exif_transpose(image)
            assert shown.size == (WIDTH, HEIGHT), (spec.name, shown.size)
            difference = np.abs(np.asarray(shown, np.float32) - rendered[spec.name]).mean()
        assert difference < 4.0, f"{spec.name}: displayed pixels differ from the scene"
        expected = (HEIGHT, WIDTH) if spec.rotated else (WIDTH, HEIGHT)
        assert stored_size == expected, (spec.name, stored_size)
        xml = xml_path(os.path.join(HERE, spec.folder), spec.name)
        assert os.path.exists(xml) == spec.annotated, xml
        if spec.annotated:
            check_annotation(xml, spec.name, spec.tagged)
    assert not any(name.startswith("IMAG0399.") and not name.endswith(".xml")
                   for name in os.listdir(labelled))
    check_annotation(os.path.join(labelled, MISSING_IMAGE_XML), "IMAG0399.JPG", 1)
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(HERE) for name in names
               if os.path.basename(root) in ("labelled", "backgrounds"))


def check_annotation(path: str, image_name: str, count: int) -> None:
    voc = read_voc(path)
    assert voc.filename == image_name and (voc.width, voc.height) == (WIDTH, HEIGHT), path
    assert voc.verified and len(voc.objects) == count, path
    for obj in voc.objects:
        side = max(obj.box.width, obj.box.height)
        assert obj.name == "tag" and obj.box.is_inside(WIDTH, HEIGHT), (path, obj.box)
        assert TAG_SIDE_RANGE[0] <= side <= TAG_SIDE_RANGE[1], (path, obj.box)


def main(argv: list[str] | None = None) -> None:
    global HERE
    parser = argparse.ArgumentParser(description="Draw the embedded demo data again.")
    parser.add_argument("--output", default=DEMO_DIR, help="folder to write into (default: the "
                        "embedded spatule_synth/demo_data; give another to compare)")
    HERE = parser.parse_args(argv).output
    rng = np.random.default_rng(SEED)
    used_codes: set[str] = set()
    rendered = {}
    for spec in SCENES:
        rendered[spec.name] = write_scene(rng, spec, used_codes)
        print(f"{spec.folder}/{spec.name}")
    write_missing_image_xml(rng)
    total = check_outputs(rendered)
    assert total < MAX_TOTAL_BYTES, f"demo data is {total} bytes, over {MAX_TOTAL_BYTES}"
    print(f"demo data: {total} bytes")


if __name__ == "__main__":
    main()
