import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from spatule_synth.core.boxes import Box
from spatule_synth.core.images import ImageReadError, box_in_display_frame, bytes_for_record, check_image, \
    decode_image, is_image_file, read_image, read_pixels
from conftest import noise_photo


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def with_orientation(pixels: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(Image.fromarray(pixels), "PNG", exif=exif.tobytes())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_and_boxes_follow(orientation):
    raw = np.zeros((40, 60, 3), np.uint8)
    raw[5:15, 30:50] = 255  # a white patch at columns 30..49, rows 5..14 of the stored pixels
    image = decode_image(with_orientation(raw, orientation))
    assert image.orientation == orientation and image.raw_size == (60, 40)
    rows, cols = np.nonzero(image.pixels[:, :, 0])
    displayed = Box(cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    assert box_in_display_frame(Box(30, 5, 50, 15), orientation, image.raw_size) == displayed
    expected_shape = (60, 40, 3) if orientation >= 5 else (40, 60, 3)
    assert image.pixels.shape == expected_shape


@pytest.mark.parametrize("mode, make", [
    ("L", lambda p: Image.fromarray(p[:, :, 0])),
    ("P", lambda p: Image.fromarray(p).convert("P")),
    ("RGBA", lambda p: Image.fromarray(np.dstack([p, np.full(p.shape[:2], 7, np.uint8)]))),
    ("LA", lambda p: Image.fromarray(p[:, :, 0]).convert("LA")),
    ("1", lambda p: Image.fromarray(p[:, :, 0]).convert("1")),
    ("I;16", lambda p: Image.fromarray(p[:, :, 0].astype(np.uint16) * 257)),
    ("I", lambda p: Image.fromarray(p[:, :, 0].astype(np.int32) * 257)),
])
def test_any_mode_becomes_8_bit_rgb(mode, make):
    pixels = noise_photo(32, 24)
    image = make(pixels)
    assert image.mode == mode
    decoded = decode_image(encoded(image, "PNG" if mode != "I" else "TIFF"))
    assert decoded.pixels.dtype == np.uint8 and decoded.pixels.shape == (24, 32, 3)
    if mode in ("L", "I;16", "I"):  # grey levels survive, 16-bit scaled down, not clipped
        np.testing.assert_array_equal(decoded.pixels[:, :, 1], pixels[:, :, 0])
    if mode == "RGBA":
        np.testing.assert_array_equal(decoded.pixels, pixels)


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.fromarray(noise_photo(32, 24)).convert("CMYK")
    decoded = decode_image(encoded(cmyk, "JPEG"))
    assert decoded.file_mode == "CMYK" and decoded.pixels.shape == (24, 32, 3)
    assert not decoded.file_decodes_as_is


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"not an image at all", "cannot decode image: cannot identify image file"),
    (encoded(Image.fromarray(noise_photo()), "JPEG")[:300], "(?i)cannot decode image: .*truncated"),
    (encoded(Image.fromarray(noise_photo()), "PNG")[:-40], "cannot decode image"),
])
def test_undecodable_data_raises_with_a_reason(data, reason):
    with pytest.raises(ImageReadError, match=reason):
        decode_image(data)


def test_missing_file_raises_image_read_error(tmp_path):
    with pytest.raises(ImageReadError, match="cannot read file: No such file"):
        read_image(str(tmp_path / "nope.jpg"))


def test_image_files_are_recognised_by_extension_in_any_case():
    assert is_image_file("a/IMAG0488 (2).JPG") and is_image_file("b.PnG") and is_image_file("c.tiff")
    assert not is_image_file("a/IMAG0488.xml") and not is_image_file("a/._IMAG0488.JPG")


def tf_decoded(data: bytes) -> np.ndarray:
    return tf.io.decode_image(data, channels=3).numpy()


def test_record_bytes_keep_plain_jpeg_and_decode_to_the_same_pixels():
    data = encoded(Image.fromarray(noise_photo()), "JPEG", quality=90)
    image = decode_image(data)
    record_bytes, fmt = bytes_for_record(data, image)
    assert record_bytes is data and fmt == "jpeg"
    assert tf_decoded(record_bytes).shape == image.pixels.shape


@pytest.mark.parametrize("data, fmt", [
    (with_orientation(noise_photo(), 6), "png"),  # TensorFlow would ignore the EXIF rotation
    (encoded(Image.fromarray(noise_photo()).convert("RGBA"), "PNG"), "png"),
    (encoded(Image.fromarray(noise_photo()), "BMP"), "png"),
    (encoded(Image.fromarray(noise_photo()).convert("CMYK"), "JPEG"), "jpeg"),
])
def test_record_bytes_are_re_encoded_when_tensorflow_would_see_other_pixels(data, fmt):
    image = decode_image(data)
    record_bytes, record_format = bytes_for_record(data, image)
    assert record_format == fmt and record_bytes is not data
    assert tf_decoded(record_bytes).shape == image.pixels.shape
    if fmt == "png":
        np.testing.assert_array_equal(tf_decoded(record_bytes), image.pixels)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_fast_jpeg_pixels_and_cheap_check_agree_with_read_image(tmp_path, orientation):
    """The background cache's OpenCV decode and the cheap check must see the photo as labelImg and
    `read_image` do, for every EXIF orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    Image.fromarray(noise_photo(72, 40)).save(path, quality=90, exif=exif.tobytes())
    expected = read_image(str(path))
    np.testing.assert_array_equal(read_pixels(str(path)), expected.pixels)
    assert check_image(str(path)) == (expected.width, expected.height)


def test_cheap_check_fails_on_a_truncated_jpeg_like_a_full_decode(tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(encoded(Image.fromarray(noise_photo(200, 160)), "JPEG")[:3000])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(str(path))
    with pytest.raises(ImageReadError, match="truncated"):
        check_image(str(path))
