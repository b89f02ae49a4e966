import os

import cv2
import numpy as np
import pytest
from PIL import Image

from spatule_synth.core.annotations import mask_bounds
from spatule_synth.core.boxes import Box
from spatule_synth.generate.cutouts import PhotoObject, cut_group, overlapping_groups
from spatule_synth.formats.labelimg import InputDirError
from spatule_synth.core.problems import ProblemLog
from spatule_synth.core.transform import CUTOUT_MARGIN
from spatule_synth.formats.voc_segmentation import bndbox_pixels, read_instance_png, read_voc_segmentation, \
    voc_palette
from conftest import noise_photo

WIDTH, HEIGHT = 64, 48


def object_xml(name, box=(1, 1, 10, 10), truncated=0, difficult=0):
    name_tag = f"\t\t<name>{name}</name>\n" if name is not None else ""
    bndbox = "".join(f"\t\t\t<{k}>{v}</{k}>\n" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
    return (f"\t<object>\n{name_tag}\t\t<pose>Unspecified</pose>\n\t\t<truncated>{truncated}</truncated>\n"
            f"\t\t<difficult>{difficult}</difficult>\n\t\t<bndbox>\n{bndbox}\t\t</bndbox>\n\t</object>\n")


def voc_xml(filename, objects, size=(WIDTH, HEIGHT)):
    return (f"<annotation>\n\t<folder>VOC2012</folder>\n\t<filename>{filename}</filename>\n"
            f"\t<size>\n\t\t<width>{size[0]}</width>\n\t\t<height>{size[1]}</height>\n"
            "\t\t<depth>3</depth>\n\t</size>\n\t<segmented>1</segmented>\n"
            + "".join(objects) + "</annotation>\n")


def save_instances(path, indices, mode="P"):
    """Write instance numbers as VOC does: a palette PNG with the VOC colours (or RGB / L)."""
    if mode == "RGB":
        Image.fromarray(voc_palette()[indices]).save(path)
    elif mode == "L":
        Image.fromarray(indices).save(path)
    else:
        image = Image.fromarray(indices)
        image.putpalette(voc_palette().ravel().tolist())  # turns the L image into mode P
        assert image.mode == "P"
        image.save(path)


def shapes():
    """Instance numbers with two objects outlined by a 2-px void band; (indices, true masks)."""
    cat = np.zeros((HEIGHT, WIDTH), bool)
    cat[8:30, 6:28] = True
    dog = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.circle(dog, (46, 28), 12, 1, -1)
    dog = dog.astype(bool)
    indices = np.zeros((HEIGHT, WIDTH), np.uint8)
    indices[cat], indices[dog] = 1, 2
    kernel = np.ones((3, 3), np.uint8)
    for truth in (cat, dog):
        grown = cv2.dilate(truth.astype(np.uint8), kernel).astype(bool)
        shrunk = cv2.erode(truth.astype(np.uint8), kernel).astype(bool)
        indices[grown & ~shrunk] = 255  # void straddles the outline, as in VOC
    return indices, cat, dog


def tight_bounds(truth):
    """(c0, r0, c1, r1): first and last column and row (0-based, inclusive) of ``truth``."""
    rows, cols = np.flatnonzero(truth.any(axis=1)), np.flatnonzero(truth.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def voc_bndbox(truth):
    """The ``<bndbox>`` Pascal VOC writes for ``truth``: 1-based inclusive pixel indices."""
    c0, r0, c1, r1 = tight_bounds(truth)
    return c0 + 1, r0 + 1, c1 + 1, r1 + 1


def in_bounds(truth):
    """Bool image: the pixels of the bounding rectangle of ``truth``."""
    c0, r0, c1, r1 = tight_bounds(truth)
    inside = np.zeros(truth.shape, bool)
    inside[r0:r1 + 1, c0:c1 + 1] = True
    return inside


def shape_objects(**cat_flags):
    """``<object>``s for `shapes`: cat and dog with the boxes VOC would write."""
    _, cat, dog = shapes()
    return [object_xml("cat", voc_bndbox(cat), **cat_flags), object_xml("dog", voc_bndbox(dog))]


def make_root(tmp_path, photos=("a",), objects=None, indices=None, png_mode="P"):
    root = tmp_path / "VOC"
    for folder in ("JPEGImages", "Annotations", "SegmentationObject", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    default_indices = shapes()[0]
    for seed, stem in enumerate(photos):
        Image.fromarray(noise_photo(WIDTH, HEIGHT, seed)).save(root / "JPEGImages" / f"{stem}.jpg")
        xml_objects = objects if objects is not None else shape_objects()
        (root / "Annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.jpg", xml_objects))
        save_instances(root / "SegmentationObject" / f"{stem}.png",
                       default_indices if indices is None else indices, png_mode)
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(photos[:1]) + "\n")
    return root


def paths(root, stem="a"):
    return (str(root / "JPEGImages" / f"{stem}.jpg"), str(root / "Annotations" / f"{stem}.xml"),
            str(root / "SegmentationObject" / f"{stem}.png"))


def usable(images):
    """The photos whose annotation can be used (the others are returned marked ``usable=False``:
    skipped, and never object-free for another input)."""
    return [image for image in images if image.usable]


def messages(problems):
    return [(p.kind, p.message()) for p in problems.problems]


def test_palette_png_is_read_as_indices_not_colours(tmp_path):
    indices = shapes()[0]
    save_instances(tmp_path / "p.png", indices)
    with Image.open(tmp_path / "p.png") as image:
        assert image.mode == "P"
    np.testing.assert_array_equal(read_instance_png(str(tmp_path / "p.png")), indices)
    assert tuple(voc_palette()[1]) == (128, 0, 0) and tuple(voc_palette()[255]) == (224, 224, 192)


@pytest.mark.parametrize("png_mode", ["P", "L", "RGB"])
def test_masks_and_classes(tmp_path, png_mode):
    _, cat, dog = shapes()
    root = make_root(tmp_path, objects=[object_xml("cat", voc_bndbox(cat), truncated=1),
                                        object_xml("dog", voc_bndbox(dog), difficult=1)],
                     png_mode=png_mode)
    problems = ProblemLog()
    (image,) = read_voc_segmentation(str(root), problems)
    assert problems.problems == []
    image_path, xml, _ = paths(root)
    # the PNG, checked to cover the decoded photo, is the frame of the masks
    assert (image.image_path, image.annotation_path, image.declared_size) == (image_path, xml, (64, 48))
    indices = shapes()[0]
    void = indices == 255
    assert [(o.class_name, o.object_index, o.truncated, o.difficult) for o in image.objects] == \
        [("cat", 0, True, False), ("dog", 1, False, True)]
    for obj, truth, value in zip(image.objects, (cat, dog), (1, 2)):
        inside = indices == value  # the object without its void band: short of its true edge
        assert (inside != truth).any() and not (inside & ~truth).any()
        expected = inside | (void & in_bounds(truth))  # + the void inside its box
        assert not (truth & ~expected).any()  # the whole object, to its real edge
        c0, r0, c1, r1 = tight_bounds(truth)
        assert obj.box == Box(c0, r0, c1 + 1, r1 + 1)  # the true box, as its <bndbox> says
        assert obj.mask.dtype == np.uint8 and obj.mask.shape == (r1 + 1 - r0, c1 + 1 - c0)
        np.testing.assert_array_equal(obj.mask, np.where(expected[r0:r1 + 1, c0:c1 + 1], 255, 0))
    cat_mask = image.objects[0].mask
    np.testing.assert_array_equal(cat_mask, 255)  # a filled rectangle: exactly the true cat
    outside = void & ~in_bounds(cat) & ~in_bounds(dog)
    assert outside.sum() > 0  # the outer half of the band, outside both boxes, is nobody's
    for obj in image.objects:
        x0, y0, x1, y1 = obj.box.voc_ints()
        assert not obj.mask[outside[y0:y1, x0:x1]].any()


def test_void_in_the_box_joins_the_object_void_beyond_it_does_not(tmp_path):
    """A square object (0-based columns and rows 10..19) whose outer 2 px VOC painted void, with
    the band going 2 px beyond the object, and a void blob away from every box."""
    indices = np.zeros((HEIGHT, WIDTH), np.uint8)
    indices[8:22, 8:22] = 255  # the band: 2 px outside to 2 px inside the edge
    indices[12:18, 12:18] = 1  # what VOC left to the object
    indices[35:40, 45:55] = 255  # a region the annotator could not decide, in no box
    root = make_root(tmp_path, objects=[object_xml("tag", (11, 11, 20, 20))], indices=indices)
    problems = ProblemLog()
    (image,) = read_voc_segmentation(str(root), problems)
    assert problems.problems == [] and image.lost == ()
    (tag,) = image.objects
    assert tag.box == Box(10, 10, 20, 20)  # columns and rows 10..19, the <bndbox> 11..20 of VOC
    np.testing.assert_array_equal(tag.mask, np.full((10, 10), 255))


def test_void_in_two_boxes_goes_to_both_then_to_the_smaller_cutout_part(tmp_path):
    """Two squares whose boxes overlap on a void strip: both masks hold it, and cut out together
    the strip belongs to the smaller one only."""
    indices = np.zeros((HEIGHT, WIDTH), np.uint8)
    indices[10:30, 10:30] = 1  # big: columns 10..29 (30..31 void, shared)
    indices[14:24, 32:42] = 2  # small: columns 32..41
    indices[14:24, 30:32] = 255
    indices[5:8, 40:45] = 255  # void in no box
    objects = [object_xml("big", (11, 11, 32, 30)), object_xml("small", (31, 15, 42, 24))]
    root = make_root(tmp_path, objects=objects, indices=indices)
    problems = ProblemLog()
    (image,) = read_voc_segmentation(str(root), problems)
    assert problems.problems == []
    big, small = image.objects
    shared = np.zeros((HEIGHT, WIDTH), bool)
    shared[14:24, 30:32] = True
    assert big.box == Box(10, 10, 32, 30) and small.box == Box(30, 14, 42, 24)
    for obj, own in ((big, indices == 1), (small, indices == 2)):
        x0, y0, x1, y1 = obj.box.voc_ints()
        np.testing.assert_array_equal(obj.mask, np.where((own | shared)[y0:y1, x0:x1], 255, 0))
    parts = [PhotoObject(o.class_name, i + 1, o.box.voc_ints(), o.mask, o.object_index)
             for i, o in enumerate(image.objects)]
    assert overlapping_groups([p.box for p in parts]) == [[0, 1]]
    cutout = cut_group(noise_photo(WIDTH, HEIGHT), parts, "a.jpg", "a.jpg")
    solid = {part.class_name: part.mask == 255 for part in cutout.parts}
    in_cutout = shared[10 - CUTOUT_MARGIN:30 + CUTOUT_MARGIN, 10 - CUTOUT_MARGIN:42 + CUTOUT_MARGIN]
    assert solid["small"][in_cutout].all() and not solid["big"][in_cutout].any()
    assert solid["big"].sum() == 400 and solid["small"].sum() == 100 + 20


@pytest.mark.parametrize("box,rows,cols", [
    (Box(11, 21, 15, 25), (20, 25), (10, 15)),  # VOC 1-based: columns 11..15 are 0-based 10..14
    (Box(10, 20, 15, 25), (19, 25), (9, 15)),  # pixel edges 10..15 (columns 10..14), plus 9
    (Box(10.5, 20.2, 14.5, 24.7), (20, 25), (10, 15)),  # fractional: every column either reading has
    (Box(1, 1, 64, 48), (0, 48), (0, 64)),  # the whole 64 x 48 PNG, 1-based
    (Box(0, 0, 64, 48), (0, 48), (0, 64)),  # the whole PNG as pixel edges
    (Box(60, 40, 70, 50), (39, 48), (59, 64)),  # clipped to the PNG
])
def test_bndbox_pixels(box, rows, cols):
    assert bndbox_pixels(box, WIDTH, HEIGHT) == (slice(*rows), slice(*cols))


def test_photos_are_listed_by_their_instance_pngs_in_order(tmp_path):
    root = make_root(tmp_path, photos=("c", "a", "b"))
    Image.fromarray(noise_photo(WIDTH, HEIGHT)).save(root / "JPEGImages" / "boxes_only.jpg")
    (root / "SegmentationObject" / ".hidden.png").write_bytes(b"")
    problems = ProblemLog()
    images = read_voc_segmentation(str(root), problems)
    assert [os.path.basename(i.image_path) for i in images] == ["a.jpg", "b.jpg", "c.jpg"]
    assert problems.problems == []


def test_object_without_pixels_is_dropped(tmp_path):
    indices = shapes()[0]
    indices[indices == 2] = 0
    root = make_root(tmp_path, indices=indices)
    problems = ProblemLog()
    (image,) = read_voc_segmentation(str(root), problems)
    assert [o.class_name for o in image.objects] == ["cat"]
    assert [(lost.object_index, lost.class_name) for lost in image.lost] == [(1, "dog")]
    png = paths(root)[2]
    assert messages(problems) == [("mask_invalid", f"{png} (image a.jpg), object #1 ('dog'): no pixel "
                                   "has value 2, the number of this <object> of a.xml; object dropped")]


def test_pixels_without_object_are_reported(tmp_path):
    indices = shapes()[0]
    indices[40:45, 2:6] = 3
    root = make_root(tmp_path, indices=indices)
    problems = ProblemLog()
    (image,) = read_voc_segmentation(str(root), problems)
    assert len(image.objects) == 2 and [lost.object_index for lost in image.lost] == [2]
    png = paths(root)[2]
    assert messages(problems) == [("mask_invalid", f"{png} (image a.jpg), object #2: 20 pixels have "
                                   "value 3 but a.xml has 2 <object>s: no class for them; object dropped")]


def test_object_without_name_is_dropped_and_unreadable_box_is_not_needed(tmp_path):
    root = make_root(tmp_path, objects=[object_xml(None), object_xml("dog", box=(5, 5, "x", 9))])
    problems = ProblemLog()
    (image,) = read_voc_segmentation(str(root), problems)
    assert [(o.class_name, o.object_index) for o in image.objects] == [("dog", 1)]
    indices = shapes()[0]
    (dog,) = image.objects  # no box to take void from: its own pixels only
    x0, y0, x1, y1 = mask_bounds(indices == 2)
    assert dog.box == Box(x0, y0, x1, y1)
    np.testing.assert_array_equal(dog.mask, np.where(indices[y0:y1, x0:x1] == 2, 255, 0))
    xml = paths(root)[1]
    assert messages(problems) == [("malformed_annotation", f"{xml} (image a.jpg), object #0: <object> "
                                   "has no <name> (it is pixel value 1 of a.png); object dropped")]


def test_photo_with_every_object_dropped_lists_them_but_an_empty_one_is_kept(tmp_path):
    root = make_root(tmp_path, photos=("a",), indices=np.zeros((HEIGHT, WIDTH), np.uint8))
    problems = ProblemLog()
    (image,) = read_voc_segmentation(str(root), problems)
    assert image.objects == () and [lost.class_name for lost in image.lost] == ["cat", "dog"]
    assert [p.kind for p in problems.problems] == ["mask_invalid", "mask_invalid"]
    empty = make_root(tmp_path / "empty", objects=[], indices=np.zeros((HEIGHT, WIDTH), np.uint8))
    problems = ProblemLog()
    (image,) = read_voc_segmentation(str(empty), problems)
    assert image.objects == () and problems.problems == []


def test_size_mismatch_skips_the_photo(tmp_path):
    root = make_root(tmp_path, indices=np.zeros((HEIGHT, WIDTH + 1), np.uint8))
    problems = ProblemLog()
    assert usable(read_voc_segmentation(str(root), problems)) == []
    png = paths(root)[2]
    assert messages(problems) == [("mask_invalid", f"{png}: mask is 65x48 but the image a.jpg is 64x48; "
                                   "image skipped")]


def test_unreadable_png_skips_the_photo(tmp_path):
    root = make_root(tmp_path, photos=("a", "b"))
    png = paths(root)[2]
    with open(png, "wb") as handle:
        handle.write(b"not a png")
    problems = ProblemLog()
    images = read_voc_segmentation(str(root), problems)
    assert [(os.path.basename(i.image_path), i.usable) for i in images] == [("a.jpg", False), ("b.jpg", True)]
    assert messages(problems) == [("malformed_annotation", f"{png}: cannot read mask PNG: cannot identify "
                                   f"image file {png!r}; image skipped")]


def test_truncated_png_and_rgb_png_of_other_colours_skip_the_photo(tmp_path):
    root = make_root(tmp_path, photos=("a", "b"))
    png_a, png_b = paths(root)[2], paths(root, "b")[2]
    data = (root / "SegmentationObject" / "a.png").read_bytes()
    (root / "SegmentationObject" / "a.png").write_bytes(data[:len(data) // 2])
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    rgb[5:10, 5:10] = (1, 2, 3)
    Image.fromarray(rgb).save(png_b)
    problems = ProblemLog()
    assert usable(read_voc_segmentation(str(root), problems)) == []
    assert [p.kind for p in problems.problems] == ["malformed_annotation"] * 2
    assert problems.problems[0].message().startswith(f"{png_a}: cannot read mask PNG: ")
    assert problems.problems[1].message() == (
        f"{png_b}: mask PNG is RGB and 25 of its pixels have colours that are not VOC palette colours; "
        "save it as a palette PNG of object numbers; image skipped")


def test_missing_xml_or_image_and_malformed_xml_skip_the_photo(tmp_path):
    root = make_root(tmp_path, photos=("a", "b", "c", "d"))
    os.remove(paths(root, "a")[1])
    os.remove(paths(root, "b")[0])
    (root / "Annotations" / "c.xml").write_text("<annotation><object>")
    Image.fromarray(noise_photo(WIDTH, HEIGHT)).save(root / "JPEGImages" / "d.png")
    problems = ProblemLog()
    assert usable(read_voc_segmentation(str(root), problems)) == []
    png_a, png_b, png_d = paths(root, "a")[2], paths(root, "b")[2], paths(root, "d")[2]
    xml_c = paths(root, "c")[1]
    found = messages(problems)
    assert found[:2] == [
        ("malformed_annotation", f"{png_a}: no Annotations/a.xml names the classes of its objects; "
                                 "image skipped"),
        ("missing_image", f"{png_b}: no image named b.* in {root / 'JPEGImages'}; image skipped")]
    assert found[2][0] == "malformed_xml"
    assert found[2][1].startswith(f"{xml_c}: malformed XML: ") and found[2][1].endswith("; image skipped")
    assert found[3] == ("duplicate_stem", f"{png_d}: stem 'd' is shared by {root / 'JPEGImages' / 'd.jpg'}, "
                        f"{root / 'JPEGImages' / 'd.png'}; cannot tell which image the mask is for, "
                        "image skipped")


def test_unreadable_photo_header_skips_the_photo(tmp_path):
    root = make_root(tmp_path)
    image_path = paths(root)[0]
    with open(image_path, "wb") as handle:
        handle.write(b"garbage")
    problems = ProblemLog()
    assert usable(read_voc_segmentation(str(root), problems)) == []
    assert messages(problems) == [("unreadable_image", f"{image_path}: cannot read image: cannot identify "
                                   f"image file {image_path!r}; image skipped")]


def test_exif_rotated_photo_is_compared_in_its_displayed_frame(tmp_path):
    root = make_root(tmp_path)
    image_path = paths(root)[0]
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated by 90 degrees: 48x64
    Image.fromarray(noise_photo(HEIGHT, WIDTH)).save(image_path, exif=exif.tobytes())
    problems = ProblemLog()
    assert len(read_voc_segmentation(str(root), problems)) == 1 and problems.problems == []


def test_not_a_voc_root(tmp_path):
    root = make_root(tmp_path)
    os.rename(root / "SegmentationObject", root / "masks")
    with pytest.raises(InputDirError, match="SegmentationObject does not exist"):
        read_voc_segmentation(str(root), ProblemLog())
