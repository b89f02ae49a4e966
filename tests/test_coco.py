import json
import os

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from spatule_synth.core.boxes import Box
from spatule_synth.formats.coco import CocoImage, CocoInstance, coco_document, read_coco, write_coco
from spatule_synth.core.problems import ProblemLog

W, H = 16, 12
CATEGORIES = [{"id": 1, "name": "tag"}, {"id": 7, "name": "spatula"}]


def add_image(folder, name, size=(W, H)):
    path = os.path.join(str(folder), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, (40, 90, 200)).save(path)
    return path


def coco_file(tmp_path, annotations, images=None, categories=CATEGORIES, name="instances.json"):
    images = images if images is not None else [{"id": 1, "file_name": "a.png", "width": W, "height": H}]
    for entry in images:
        if not os.path.exists(tmp_path / entry["file_name"]):
            add_image(tmp_path, entry["file_name"], (entry["width"], entry["height"]))
    path = tmp_path / name
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return str(path)


def annotation(segmentation=None, ann_id=1, image_id=1, category_id=1, **fields):
    result = {"id": ann_id, "image_id": image_id, "category_id": category_id, "iscrowd": 0, **fields}
    if segmentation is not None:
        result["segmentation"] = segmentation
    return result


def full_mask(obj, size=(W, H)):
    """The object's mask crop put back into a full-image bool mask."""
    full = np.zeros((size[1], size[0]), bool)
    box = obj.box
    full[int(box.ymin):int(box.ymax), int(box.xmin):int(box.xmax)] = obj.mask >= 128
    return full


def read_one(path, tmp_path):
    problems = ProblemLog()
    images = read_coco(path, str(tmp_path), problems)
    assert len(images) == 1
    return images[0], problems


def messages(problems):
    return [p.message() for p in problems.problems]


def uncompressed_counts(mask):
    """Column-major run lengths starting with a run of 0s: COCO's uncompressed RLE, by hand."""
    flat = mask.flatten(order="F").astype(int)
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    return counts + [run]


def test_polygon_fills_pixel_edges(tmp_path):
    # An L: the 4x5 rectangle (2,3)-(6,8) plus the 3x2 foot (6,6)-(9,8).
    polygon = [2, 3, 6, 3, 6, 6, 9, 6, 9, 8, 2, 8]
    image, problems = read_one(coco_file(tmp_path, [annotation([polygon], bbox=[0, 0, 1, 1])]), tmp_path)
    expected = np.zeros((H, W), bool)
    expected[3:8, 2:6] = True
    expected[6:8, 6:9] = True
    (obj,) = image.objects
    assert obj.class_name == "tag" and obj.object_index == 0
    assert obj.box == Box(2, 3, 9, 8)  # from the mask, not from the annotation's bbox
    assert obj.mask.dtype == np.uint8 and obj.mask.shape == (5, 7)
    assert np.array_equal(full_mask(obj), expected)
    assert image.declared_size == (W, H) and image.annotation_path.endswith("instances.json")
    assert not problems.problems


def test_uncompressed_and_compressed_rle(tmp_path):
    drawn = np.zeros((H, W), bool)
    drawn[1:4, 10:15] = True
    drawn[5, 3] = True
    drawn[8:12, 0:2] = True  # touches the image corner
    compressed = mask_utils.encode(np.asfortranarray(drawn.astype(np.uint8)))
    path = coco_file(tmp_path, [
        annotation({"size": [H, W], "counts": uncompressed_counts(drawn)}, ann_id=1, category_id=7),
        annotation({"size": [H, W], "counts": compressed["counts"].decode("ascii")}, ann_id=2),
    ])
    image, problems = read_one(path, tmp_path)
    uncompressed_obj, compressed_obj = image.objects
    assert (uncompressed_obj.class_name, compressed_obj.class_name) == ("spatula", "tag")
    assert [o.object_index for o in image.objects] == [0, 1]
    for obj in image.objects:
        assert obj.box == Box(0, 1, 15, 12)
        assert np.array_equal(full_mask(obj), drawn)
    assert not problems.problems


def test_two_piece_polygon_is_one_object_boxed_around_both(tmp_path):
    pieces = [[1, 1, 4, 1, 4, 3, 1, 3], [10, 7, 14, 7, 14, 11, 10, 11]]
    image, _ = read_one(coco_file(tmp_path, [annotation(pieces)]), tmp_path)
    (obj,) = image.objects
    assert obj.box == Box(1, 1, 14, 11)
    expected = np.zeros((H, W), bool)
    expected[1:3, 1:4] = True
    expected[7:11, 10:14] = True
    assert np.array_equal(full_mask(obj), expected)


def test_bbox_only_annotations_are_box_only_objects(tmp_path):
    for segmentation in (None, []):
        path = coco_file(tmp_path, [annotation(segmentation, bbox=[2.5, 3, 4, 5.25])])
        image, problems = read_one(path, tmp_path)
        (obj,) = image.objects
        assert obj.box == Box(2.5, 3, 6.5, 8.25) and obj.mask is None
        assert not problems.problems


def test_file_names_with_sub_folders_and_images_without_annotations(tmp_path):
    images = [{"id": 5, "file_name": "train/sub/b.jpg", "width": W, "height": H},
              {"id": 6, "file_name": "empty.png", "width": 20, "height": 10}]
    path = coco_file(tmp_path, [annotation([[0, 0, 3, 0, 3, 3]], image_id=5)], images=images)
    problems = ProblemLog()
    sub, empty = read_coco(path, str(tmp_path), problems)
    assert sub.image_path == os.path.join(str(tmp_path), "train/sub/b.jpg") and len(sub.objects) == 1
    assert empty.objects == () and empty.declared_size == (20, 10)


def random_blob(rng, offset):
    mask = np.zeros((H, W), bool)
    x, y = offset
    mask[y:y + rng.integers(2, 5), x:x + rng.integers(2, 6)] = True
    mask[y + 1, x + 1] = False  # a hole
    return mask


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools on numpy 2
def test_round_trip_through_pycocotools_and_read_coco(tmp_path):
    rng = np.random.default_rng(3)
    images = [CocoImage(10, "one.png", W, H, [CocoInstance(1, random_blob(rng, (1, 1))),
                                              CocoInstance(7, random_blob(rng, (9, 6)))]),
              CocoImage(11, "two.png", W, H, [CocoInstance(7, random_blob(rng, (4, 2)))]),
              CocoImage(12, "none.png", W, H, [])]
    document = coco_document(images, [(1, "tag"), (7, "spatula")])
    path = str(tmp_path / "out.json")
    write_coco(path, document)
    coco = COCO(path)
    assert sorted(coco.getImgIds()) == [10, 11, 12]
    assert [a["id"] for a in document["annotations"]] == [1, 2, 3]
    written = [(image, instance) for image in images for instance in image.instances]
    for ann_id, (image, instance) in zip((1, 2, 3), written):
        ann = coco.loadAnns(ann_id)[0]
        assert ann["image_id"] == image.id and ann["category_id"] == instance.category_id
        assert ann["iscrowd"] == 0 and isinstance(ann["segmentation"]["counts"], str)
        assert np.array_equal(coco.annToMask(ann).astype(bool), instance.mask)
        ys, xs = np.nonzero(instance.mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        assert ann["area"] == instance.mask.sum() == mask_utils.area(coco.annToRLE(ann))

    for image in images:
        add_image(tmp_path, image.file_name)
    problems = ProblemLog()
    read = read_coco(path, str(tmp_path), problems)
    assert not problems.problems
    assert [r.image_path for r in read] == [os.path.join(str(tmp_path), i.file_name) for i in images]
    for image, annotated in zip(images, read):
        assert [o.class_name for o in annotated.objects] == [
            {1: "tag", 7: "spatula"}[i.category_id] for i in image.instances]
        for instance, obj in zip(image.instances, annotated.objects):
            assert np.array_equal(full_mask(obj), instance.mask)


def test_writer_refuses_what_it_cannot_label():
    mask = np.zeros((H, W), bool)
    mask[2, 2] = True
    categories = [(1, "tag")]
    with pytest.raises(ValueError, match="the mask is empty"):
        coco_document([CocoImage(1, "a.png", W, H, [CocoInstance(1, np.zeros((H, W), bool))])], categories)
    with pytest.raises(ValueError, match="image ids must be unique, got \\[1, 1\\]"):
        coco_document([CocoImage(1, "a.png", W, H), CocoImage(1, "b.png", W, H)], categories)
    with pytest.raises(ValueError, match="category_id 2 is not among"):
        coco_document([CocoImage(1, "a.png", W, H, [CocoInstance(2, mask)])], categories)
    with pytest.raises(ValueError, match="must be a bool array"):
        coco_document([CocoImage(1, "a.png", W, H, [CocoInstance(1, mask.T)])], categories)
    with pytest.raises(ValueError, match="category ids must be unique"):
        coco_document([], [(1, "tag"), (1, "other")])


# A valid compressed RLE of a 4x4 mask: pycocotools would decode it as a 12x16 mask padded with 0s.
SHORT_RLE = mask_utils.encode(np.asfortranarray(np.eye(4, dtype=np.uint8)))["counts"].decode("ascii")


def test_bad_annotations_are_reported_and_dropped(tmp_path):
    square = [[2, 2, 6, 2, 6, 6, 2, 6]]
    annotations = [
        annotation(square, ann_id=1),
        annotation(square, ann_id=2, category_id=3),
        annotation(square, ann_id=3, iscrowd=1),
        annotation([[1, 1, 5, 5]], ann_id=4),
        annotation([[1, 1, 5, 5, 9]], ann_id=5),
        annotation([[0, 0, 4, 4, 8, 8]], ann_id=6),
        annotation([[20, 20, 30, 20, 30, 30]], ann_id=7),
        annotation({"size": [W, H], "counts": "abc"}, ann_id=8),
        annotation({"size": [H, W], "counts": [5, 3]}, ann_id=9),
        annotation({"size": [H, W], "counts": "zzzz"}, ann_id=10),
        annotation([[1, 1, "a", 2, 3, 3]], ann_id=11),
        annotation({"counts": [1]}, ann_id=12),
        annotation(None, ann_id=13, bbox=[1, 1, 0, 4]),
        annotation(None, ann_id=14),
        annotation(square, ann_id=15, image_id=99),
        annotation(square, ann_id=16, category_id=7),
        annotation({"size": [H, W], "counts": SHORT_RLE}, ann_id=17),
        annotation([[0.1, 0.1, 0.4, 0.1, 0.4, 0.4]], ann_id=18),
    ]
    path = coco_file(tmp_path, annotations)
    image, problems = read_one(path, tmp_path)
    assert [(o.object_index, o.class_name) for o in image.objects] == [(0, "tag"), (14, "spatula")]
    rle_total = "the RLE run lengths add up to {} pixels, not the 16x12 = 192 of the image"
    where = f"{path} (image a.png), object #"
    assert messages(problems) == [
        f"{path}: annotation id 15 refers to image_id 99, which no image entry has; annotation skipped",
        f"{where}1 (annotation id 2): category_id 3 is not among the file's categories; object dropped",
        f"{where}2 ('tag', annotation id 3): iscrowd=1 marks a region of several objects under one label; "
        "dropped",
        f"{where}3 ('tag', annotation id 4): polygon 0 has 2 point(s), fewer than 3; object dropped",
        f"{where}4 ('tag', annotation id 5): polygon 0 has an odd number of coordinates (5); object dropped",
        f"{where}5 ('tag', annotation id 6): polygon 0 is degenerate (zero area); object dropped",
        f"{where}6 ('tag', annotation id 7): polygon 0 reaches (20, 20), beyond the 16x12 image of its entry; object dropped",
        f"{where}7 ('tag', annotation id 8): the RLE size [16, 12] is not the image's [height, width] [12, 16]; "
        "object dropped",
        f"{where}8 ('tag', annotation id 9): {rle_total.format(8)}; object dropped",
        f"{where}9 ('tag', annotation id 10): the RLE counts are neither a compressed string nor a list of run "
        "lengths; object dropped",
        f"{where}10 ('tag', annotation id 11): polygon 0 is not a list of finite numbers; object dropped",
        f"{where}11 ('tag', annotation id 12): the segmentation is neither a list of polygons nor an RLE with "
        "'counts' and 'size'; object dropped",
        f"{where}12 ('tag', annotation id 13): bbox [1, 1, 0, 4] is not a box: zero-area box (xmin=1 ymin=1 "
        "xmax=1 ymax=5); object dropped",
        f"{where}13 ('tag', annotation id 14): no segmentation and no bbox [x, y, width, height] (bbox is "
        "None); object dropped",
        f"{where}15 ('tag', annotation id 17): {rle_total.format(16)}; object dropped",
        f"{where}16 ('tag', annotation id 18): the segmentation covers no pixel of the 16x12 image; "
        "object dropped",
    ]
    assert problems.counts() == {"malformed_annotation": 1, "box_invalid": 2, "unknown_class": 1,
                                 "mask_invalid": 11, "crowd_region": 1}
    # every dropped annotation is listed, so validation skips the photo (they would show unlabelled)
    assert [lost.object_index for lost in image.lost] == list(range(1, 14)) + [15, 16]


def test_missing_image_is_reported_and_skipped(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "width": W, "height": H},
              {"id": 2, "file_name": "gone/b.png", "width": W, "height": H}]
    path = str(tmp_path / "instances.json")
    add_image(tmp_path, "a.png")
    with open(path, "w") as handle:
        json.dump({"images": images, "categories": CATEGORIES,
                   "annotations": [annotation([[0, 0, 3, 0, 3, 3]], ann_id=4, image_id=2)]}, handle)
    problems = ProblemLog()
    read = read_coco(path, str(tmp_path), problems)
    assert [r.image_path for r in read] == [os.path.join(str(tmp_path), "a.png")]
    assert messages(problems) == [f"{path}: image 'gone/b.png' (id 2) is not in {tmp_path}; "
                                  "its 1 annotation(s) skipped"]
    assert problems.counts() == {"missing_image": 1}


@pytest.mark.parametrize("content, reason", [
    ("{not json", "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
                  "(char 1)"),
    ("[]", "the top level is not a JSON object"),
    (json.dumps({"images": [], "categories": []}), "no 'annotations' list"),
    (json.dumps({"images": [{"id": 1, "width": 4, "height": 4}], "annotations": [], "categories": []}),
     "images[0] has no 'file_name'"),
    (json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 0, "height": 4}],
                 "annotations": [], "categories": []}), "images[0] has an invalid 'width': 0"),
    (json.dumps({"images": [], "annotations": [{"id": 1, "image_id": 1}], "categories": []}),
     "annotations[0] has no 'category_id'"),
    (json.dumps({"images": [], "annotations": [], "categories": [{"id": 1}]}), "categories[0] has no 'name'"),
    (json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}] * 2,
                 "annotations": [], "categories": []}), "image id 1 is used by several entries"),
    (json.dumps({"images": [], "annotations": [], "categories": CATEGORIES + CATEGORIES[:1]}),
     "category id 1 is used by several entries"),
])
def test_malformed_files_are_reported_once_and_yield_nothing(tmp_path, content, reason):
    path = tmp_path / "bad.json"
    path.write_text(content)
    problems = ProblemLog()
    assert read_coco(str(path), str(tmp_path), problems) == []
    assert messages(problems) == [f"{path}: {reason}; file skipped"]
    assert problems.counts() == {"malformed_annotation": 1}


def test_unreadable_json_file_is_malformed(tmp_path):
    problems = ProblemLog()
    missing = str(tmp_path / "missing.json")
    assert read_coco(missing, str(tmp_path), problems) == []
    assert messages(problems) == [f"{missing}: cannot read file: No such file or directory; file skipped"]
