"""Reading photos the way the annotator saw them, and encoding pixels for the outputs.

`read_image` decodes once and returns 8-bit RGB pixels with the EXIF orientation already applied
(labelImg >= 1.8.4 draws boxes on the rotated image), whatever the source: grayscale, palette,
RGBA (alpha dropped), CMYK, 16-bit and 32-bit images all become ``uint8`` arrays of shape
``(height, width, 3)``. Any decoding failure becomes `ImageReadError` with the reason.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps

from spatule_synth.core.boxes import Box
from spatule_synth.core import storage

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                            ".pgm", ".pbm"})
# Image formats people keep photos in that cannot be decoded here: named in messages (an XML
# beside IMG_2041.HEIC must not read as "no image").
UNSUPPORTED_FORMATS = {
    ".heic": "HEIC", ".heif": "HEIF", ".avif": "AVIF", ".jxl": "JPEG XL", ".jp2": "JPEG 2000",
    ".psd": "PSD", ".svg": "SVG", ".raw": "RAW", ".dng": "DNG (RAW)", ".cr2": "Canon RAW (CR2)",
    ".cr3": "Canon RAW (CR3)", ".crw": "Canon RAW (CRW)", ".nef": "Nikon RAW (NEF)",
    ".nrw": "Nikon RAW (NRW)", ".arw": "Sony RAW (ARW)", ".srf": "Sony RAW (SRF)",
    ".sr2": "Sony RAW (SR2)", ".orf": "Olympus RAW (ORF)", ".rw2": "Panasonic RAW (RW2)",
    ".raf": "Fujifilm RAW (RAF)", ".pef": "Pentax RAW (PEF)", ".srw": "Samsung RAW (SRW)",
    ".x3f": "Sigma RAW (X3F)", ".3fr": "Hasselblad RAW (3FR)", ".erf": "Epson RAW (ERF)",
    ".kdc": "Kodak RAW (KDC)", ".mrw": "Minolta RAW (MRW)", ".rwl": "Leica RAW (RWL)",
}
# Formats whose file starts with a plain JPEG stream (MPO: multi-picture JPEG from many cameras).
JPEG_FORMATS = frozenset({"JPEG", "MPO"})
EXIF_ORIENTATION_TAG = 0x0112
# EXIF orientations whose display swaps width and height.
TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
JPEG_QUALITY = 95


class ImageReadError(ValueError):
    """The file is not a decodable image; the message says why."""


@dataclasses.dataclass(frozen=True, eq=False)
class DecodedImage:
    """Pixels as displayed (EXIF orientation applied), with what is needed to reuse the file."""

    pixels: np.ndarray  # (height, width, 3) uint8 RGB
    file_format: str  # Pillow's name: "JPEG", "PNG", ...
    file_mode: str  # Pillow mode of the file before conversion: "RGB", "L", "CMYK", "I;16", ...
    orientation: int  # EXIF orientation of the file, 1 when absent

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def raw_size(self) -> tuple[int, int]:
        """``(width, height)`` as stored in the file, before the EXIF rotation."""
        if self.orientation in TRANSPOSING_ORIENTATIONS:
            return self.height, self.width
        return self.width, self.height

    @property
    def file_decodes_as_is(self) -> bool:
        """True when TensorFlow's decoders read the file's bytes as these very pixels.

        TensorFlow ignores EXIF orientation and alpha, and only JPEG/PNG are safe for every
        OD API decoder, so anything else must be re-encoded from `pixels`.
        """
        return (self.file_format in JPEG_FORMATS | {"PNG"} and self.file_mode in ("RGB", "L")
                and self.orientation == 1)


def is_image_file(path: str) -> bool:
    """An image by its extension (any case), ignoring hidden files such as macOS ``._`` forks."""
    name = os.path.basename(path)
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def unsupported_format(path: str) -> str | None:
    """``"HEIC is not supported; convert it to JPEG"`` for a photo in a format listed in
    `UNSUPPORTED_FORMATS` (by extension, any case), else None."""
    name = os.path.basename(path)
    kind = UNSUPPORTED_FORMATS.get(os.path.splitext(name)[1].lower())
    if kind is None or name.startswith("."):
        return None
    return f"{kind} is not supported; convert it to JPEG"


def read_image(path: str) -> DecodedImage:
    """Decode ``path`` to 8-bit RGB with the EXIF orientation applied; `ImageReadError` if not."""
    return decode_image(_read_bytes(path))


def read_plane(path: str, flags: int) -> np.ndarray | None:
    """``cv2.imread(path, flags)`` for a local path or a URL: the decoded array, or None if the
    file is missing or not an image."""
    try:
        data = storage.read_bytes(path)
    except FileNotFoundError:
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None


def decode_image(data: bytes) -> DecodedImage:
    """Decode encoded image bytes (see `read_image`)."""
    if not data:
        raise ImageReadError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # big photos are fine
            image = Image.open(io.BytesIO(data))
            image.load()
            orientation = int(image.getexif().get(EXIF_ORIENTATION_TAG, 1) or 1)
            file_format, file_mode = image.format or "unknown", image.mode
            if orientation not in range(1, 9):
                orientation = 1
            image = ImageOps.exif_transpose(image) if orientation != 1 else image
            pixels = _to_rgb8(image)
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, TypeError, struct.error,
            Image.DecompressionBombError) as error:
        raise ImageReadError(f"cannot decode image: {error}") from error
    return DecodedImage(pixels=pixels, file_format=file_format, file_mode=file_mode,
                        orientation=orientation)


def _read_bytes(path: str) -> bytes:
    try:
        return storage.read_bytes(path)
    except OSError as error:
        raise ImageReadError(f"cannot read file: {error.strerror or error}") from error


def displayed_size(path: str) -> tuple[int, int]:
    """``(width, height)`` of the image as displayed (EXIF orientation applied), from its header
    only; `ImageReadError` if the header cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(storage.pillow_source(path)) as image:
                width, height = image.size
                orientation = int(image.getexif().get(EXIF_ORIENTATION_TAG, 1) or 1)
    except (OSError, SyntaxError, ValueError, TypeError, struct.error,
            Image.DecompressionBombError) as error:
        raise ImageReadError(f"cannot read image size: {error}") from error
    return (height, width) if orientation in TRANSPOSING_ORIENTATIONS else (width, height)


def check_image(path: str) -> tuple[int, int]:
    """Prove that ``path`` decodes, about four times faster than `read_image` for JPEG; returns
    its displayed ``(width, height)``. JPEGs are decoded at 1/8 scale (Pillow's ``draft``):
    libjpeg still reads every byte of the stream, so truncated or broken files fail here exactly
    as they fail a full decode, only the inverse DCT is cheaper."""
    data = _read_bytes(path)
    if not data:
        raise ImageReadError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            orientation = int(image.getexif().get(EXIF_ORIENTATION_TAG, 1) or 1)
            if image.format in JPEG_FORMATS:
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            image.load()
    except (OSError, SyntaxError, ValueError, TypeError, struct.error,
            Image.DecompressionBombError) as error:
        raise ImageReadError(f"cannot decode image: {error}") from error
    return (height, width) if orientation in TRANSPOSING_ORIENTATIONS else (width, height)


def read_pixels(path: str) -> np.ndarray:
    """``read_image(path).pixels``, decoded by OpenCV when the file is a JPEG (about twice as fast
    as Pillow, and OpenCV applies the EXIF orientation itself; a test checks the pixels are the
    same for all eight orientations). Other files, or any doubt, go through `read_image`."""
    data = _read_bytes(path)
    if data[:2] == b"\xff\xd8":
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
        if pixels is not None and pixels.ndim == 3:
            return pixels
    return decode_image(data).pixels


def _to_rgb8(image: Image.Image) -> np.ndarray:
    """Any Pillow mode to a contiguous ``uint8`` RGB array."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        values = np.asarray(image)
        if image.mode == "F" and values.size and float(np.nanmax(values)) <= 1.0:
            values = values * 255.0  # float images in [0, 1]
        elif image.mode != "F" and values.size and int(values.max()) > 255:
            values = values / 257.0  # 16-bit range onto 8-bit
        gray = np.clip(np.nan_to_num(values), 0, 255).round().astype(np.uint8)
        return np.ascontiguousarray(np.stack([gray] * 3, axis=-1))
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def encode_jpeg(pixels: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """RGB ``uint8`` pixels to baseline JPEG bytes (4:2:0, no EXIF: nothing to mis-rotate)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def encode_png(pixels: np.ndarray) -> bytes:
    """RGB or single-channel ``uint8`` pixels to PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def bytes_for_record(file_bytes: bytes, image: DecodedImage) -> tuple[bytes, str]:
    """Encoded bytes and format (``"jpeg"``/``"png"``) that decode to ``image.pixels``' frame.

    The original file is kept when TensorFlow decodes it to the same pixels (no loss, no work);
    otherwise JPEG sources are re-encoded as JPEG and everything else as lossless PNG.
    """
    if image.file_decodes_as_is:
        return file_bytes, "jpeg" if image.file_format in JPEG_FORMATS else "png"
    if image.file_format in JPEG_FORMATS:
        return encode_jpeg(image.pixels), "jpeg"
    return encode_png(image.pixels), "png"


# EXIF orientation -> the Pillow transpose that displays the stored image (as
# `ImageOps.exif_transpose`); `box_in_display_frame` is the same table for coordinates.
EXIF_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                  4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                  6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                  8: Image.Transpose.ROTATE_90}


def mask_in_display_frame(mask: np.ndarray, orientation: int) -> np.ndarray:
    """A mask drawn over a box of the stored image, turned like the box (`box_in_display_frame`)."""
    if orientation == 1:
        return mask
    return np.ascontiguousarray(np.asarray(Image.fromarray(mask).transpose(EXIF_TRANSPOSE[orientation])))


def box_in_display_frame(box: Box, orientation: int, raw_size: tuple[int, int]) -> Box:
    """Move a box drawn on the stored (un-rotated) image into the EXIF-rotated display frame.

    ``raw_size`` is ``(width, height)`` of the stored image. Orientation numbers follow the EXIF
    standard (the same table as Pillow's `ImageOps.exif_transpose`).
    """
    width, height = raw_size

    def display(x: float, y: float) -> tuple[float, float]:
        return {
            1: (x, y), 2: (width - x, y), 3: (width - x, height - y), 4: (x, height - y),
            5: (y, x), 6: (height - y, x), 7: (height - y, width - x), 8: (y, width - x),
        }[orientation]

    (x0, y0), (x1, y1) = display(box.xmin, box.ymin), display(box.xmax, box.ymax)
    return Box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
