import os

import cv2
import numpy as np
import pytest
from PIL import Image

from spatule_synth.formats.alpha_cutouts import read_alpha_cutouts
from spatule_synth.core.boxes import Box
from spatule_synth.core.images import read_image
from spatule_synth.formats.labelimg import InputDirError
from spatule_synth.core.problems import ProblemLog
from conftest import noise_photo


def soft_disc(width=40, height=30, centre=(20, 14), radius=9):
    """An anti-aliased disc as alpha: 255 inside, soft values on its edge, 0 outside."""
    big = np.zeros((height * 8, width * 8), np.uint8)
    cv2.circle(big, (centre[0] * 8 + 4, centre[1] * 8 + 4), radius * 8, 255, -1)
    return cv2.resize(big, (width, height), interpolation=cv2.INTER_AREA)


def write_cutout(path, alpha, seed=0, extension_format=None):
    """An RGBA image with noise colours and ``alpha``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    height, width = alpha.shape
    rgba = np.dstack([noise_photo(width, height, seed), alpha])
    Image.fromarray(rgba).save(path, format=extension_format)
    return str(path)


def messages(problems):
    return [(p.kind, p.message()) for p in problems.problems]


def expected_box(alpha):
    rows = np.flatnonzero((alpha >= 128).any(axis=1))
    cols = np.flatnonzero((alpha >= 128).any(axis=0))
    return Box(cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)


def test_one_object_per_file_with_soft_alpha_and_folder_class(tmp_path):
    alpha = soft_disc()
    assert len(np.unique(alpha)) > 3  # really soft edges
    bird = write_cutout(tmp_path / "bird" / "b.png", alpha)
    problems = ProblemLog()
    (image,) = read_alpha_cutouts(str(tmp_path), problems)
    assert problems.problems == []
    assert (image.image_path, image.annotation_path, image.declared_size) == (bird, bird, None)
    (obj,) = image.objects
    assert (obj.class_name, obj.object_index) == ("bird", 0)
    box = expected_box(alpha)
    assert obj.box == box
    x0, y0, x1, y1 = box.voc_ints()
    assert obj.mask.dtype == np.uint8
    np.testing.assert_array_equal(obj.mask, alpha[y0:y1, x0:x1])  # soft values kept
    assert ((obj.mask > 0) & (obj.mask < 255)).any() and obj.mask.max() == 255
    assert read_image(bird).pixels.shape[:2] == alpha.shape  # the frame the read stage decodes


def test_sorted_classes_subfolders_and_formats(tmp_path):
    alpha = soft_disc()
    write_cutout(tmp_path / "cat" / "z.png", alpha)
    write_cutout(tmp_path / "cat" / "a.webp", alpha, extension_format="WEBP")
    write_cutout(tmp_path / "bird" / "2024" / "x.png", alpha)
    write_cutout(tmp_path / "bird" / "y.png", alpha)
    write_cutout(tmp_path / ".thumbs" / "t.png", alpha)
    write_cutout(tmp_path / "cat" / ".hidden" / "h.png", alpha)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    problems = ProblemLog()
    found = [(os.path.relpath(i.image_path, tmp_path), i.objects[0].class_name)
             for i in read_alpha_cutouts(str(tmp_path), problems)]
    assert found == [("bird/2024/x.png", "bird"), ("bird/y.png", "bird"), ("cat/a.webp", "cat"),
                     ("cat/z.png", "cat")]
    assert problems.problems == []


def test_palette_png_with_transparent_colour(tmp_path):
    indices = np.zeros((20, 30), np.uint8)
    indices[5:15, 8:20] = 1
    image = Image.fromarray(indices)
    image.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    (tmp_path / "mug").mkdir()
    image.save(tmp_path / "mug" / "m.png", transparency=0)
    (image,) = read_alpha_cutouts(str(tmp_path), ProblemLog())
    assert image.objects[0].box == Box(8, 5, 20, 15) and (image.objects[0].mask == 255).all()


def test_files_directly_in_root_are_reported_unless_flat_is_allowed(tmp_path):
    alpha = soft_disc()
    loose = write_cutout(tmp_path / "distractors" / "leaf.png", alpha)
    root = str(tmp_path / "distractors")
    problems = ProblemLog()
    assert read_alpha_cutouts(root, problems) == []
    assert messages(problems) == [("malformed_annotation", f"{loose}: cutout directly in {root}: put "
                                   "cutouts in a folder named after their class "
                                   f"({os.path.join(root, 'CLASS_NAME', 'leaf.png')}); skipped")]
    problems = ProblemLog()
    (image,) = read_alpha_cutouts(root, problems, allow_flat=True)
    assert image.objects[0].class_name == "distractors" and problems.problems == []


def test_images_without_usable_alpha_are_skipped(tmp_path):
    no_alpha = str(tmp_path / "cat" / "photo.jpg")
    os.makedirs(os.path.dirname(no_alpha))
    Image.fromarray(noise_photo()).save(no_alpha)
    rgb_png = str(tmp_path / "cat" / "rgb.png")
    Image.fromarray(noise_photo()).save(rgb_png)
    clear = write_cutout(tmp_path / "cat" / "clear.png", np.full((30, 40), 100, np.uint8))
    opaque = write_cutout(tmp_path / "cat" / "opaque.png", np.full((30, 40), 255, np.uint8))
    broken = tmp_path / "cat" / "broken.png"
    broken.write_bytes(b"garbage")
    good = write_cutout(tmp_path / "cat" / "good.png", soft_disc())
    problems = ProblemLog()
    assert [i.image_path for i in read_alpha_cutouts(str(tmp_path), problems)] == [good]
    assert messages(problems) == [
        ("unreadable_image", f"{broken}, object #0 ('cat'): cannot decode image: cannot identify image "
                             f"file {str(broken)!r}; skipped"),
        ("mask_invalid", f"{clear}, object #0 ('cat'): alpha channel is transparent everywhere (no pixel "
                         "with alpha >= 128); skipped"),
        ("mask_invalid", f"{opaque}, object #0 ('cat'): alpha channel is opaque everywhere: a photo, not "
                         "a cutout (remove its background first); skipped"),
        ("mask_invalid", f"{no_alpha}, object #0 ('cat'): JPEG in mode RGB has no alpha channel; save the "
                         "cutout as a PNG with transparency; skipped"),
        ("mask_invalid", f"{rgb_png}, object #0 ('cat'): PNG in mode RGB has no alpha channel; save the "
                         "cutout as a PNG with transparency; skipped")]


def test_exif_orientation_is_applied_to_the_alpha(tmp_path):
    alpha = np.zeros((30, 40), np.uint8)
    alpha[2:10, 5:35] = 255  # a wide bar in the stored frame
    path = str(tmp_path / "tag" / "t.png")
    os.makedirs(os.path.dirname(path))
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.dstack([noise_photo(40, 30), alpha])).save(path, exif=exif.tobytes())
    (image,) = read_alpha_cutouts(str(tmp_path), ProblemLog())
    obj = image.objects[0]
    assert read_image(path).pixels.shape[:2] == (40, 30)
    assert (obj.box.width, obj.box.height) == (8, 30)  # the bar is upright once rotated


def test_missing_root(tmp_path):
    with pytest.raises(InputDirError, match="does not exist"):
        read_alpha_cutouts(str(tmp_path / "nope"), ProblemLog())
