import os

import pytest
from PIL import Image

from spatule_synth.core.boxes import Box
from spatule_synth.core.problems import ProblemLog
from spatule_synth.formats.yolo import displayed_size, read_yolo_folder, write_classes, yolo_lines

CLASSES = ["dog", "cat", "spatule"]


def add_image(folder, name, size=(640, 480), orientation=None):
    os.makedirs(str(folder), exist_ok=True)
    path = os.path.join(str(folder), name)
    extra = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        extra["exif"] = exif.tobytes()
    Image.new("RGB", size, (90, 120, 30)).save(path, **extra)
    return path


def yolo_folder(folder, labels, classes="dog\ncat\nspatule\n", size=(640, 480)):
    """Images ``<stem>.jpg`` with their txt (text given literally) and a classes.txt."""
    for stem, text in labels.items():
        add_image(folder, stem + ".jpg", size)
        (folder / (stem + ".txt")).write_text(text)
    if classes is not None:
        (folder / "classes.txt").write_text(classes)
    return str(folder)


def read(folder, label_dir=None):
    problems = ProblemLog()
    return read_yolo_folder(str(folder), problems, label_dir), problems


def messages(problems):
    return [p.message() for p in problems.problems]


def test_round_trip_keeps_boxes_to_six_decimals(tmp_path):
    width, height = 641, 479
    objects = [("cat", Box(10.25, 20.5, 300.75, 400)), ("dog", Box(0, 0, 641, 479)),
               ("spatule", Box(123.456, 78.9, 124.5, 80.01)), ("cat", Box(600, 1, 640.9, 2.3))]
    add_image(tmp_path, "photo.JPG", (width, height))
    (tmp_path / "photo.txt").write_text(yolo_lines(objects, width, height, CLASSES))
    write_classes(str(tmp_path / "classes.txt"), CLASSES)
    (image,), problems = read(tmp_path)
    assert not problems.problems
    assert image.image_path == str(tmp_path / "photo.JPG")
    assert image.annotation_path == str(tmp_path / "photo.txt") and image.declared_size is None
    assert [(o.class_name, o.object_index, o.mask) for o in image.objects] == [
        ("cat", 0, None), ("dog", 1, None), ("spatule", 2, None), ("cat", 3, None)]
    for (_, box), obj in zip(objects, image.objects):
        got = obj.box
        assert got.xmin == pytest.approx(box.xmin, abs=1e-6 * width)
        assert got.xmax == pytest.approx(box.xmax, abs=1e-6 * width)
        assert got.ymin == pytest.approx(box.ymin, abs=1e-6 * height)
        assert got.ymax == pytest.approx(box.ymax, abs=1e-6 * height)


# What labelImg saves for a 640x480 photo with a "dog" box dragged from (100, 50) to (300, 250) and a
# "cat" box over the whole photo (labelImg moves a 0 edge to 1): YOLOWriter's "%d %.6f %.6f %.6f %.6f\n"
# of ((xmin + xmax) / 2 / width, (ymin + ymax) / 2 / height, (xmax - xmin) / width, (ymax - ymin) / height).
LABELIMG_TXT = "0 0.312500 0.312500 0.312500 0.416667\n1 0.500781 0.501042 0.998437 0.997917\n"


def test_txt_written_by_labelimg_reads_right_and_is_written_identically(tmp_path):
    yolo_folder(tmp_path, {"IMG_0001": LABELIMG_TXT}, classes="dog\ncat\n")
    (image,), problems = read(tmp_path)
    assert not problems.problems
    dog, cat = image.objects
    assert dog.class_name == "dog" and cat.class_name == "cat"
    # 0.416667 * 480 is 200.00016 pixels: edges land 8e-5 px off the whole pixels and are snapped back
    assert (dog.box, cat.box) == (Box(100, 50, 300, 250), Box(1, 1, 640, 480))
    assert dog.box.voc_ints() == (100, 50, 300, 250)
    labelled = [("dog", Box(100, 50, 300, 250)), ("cat", Box(1, 1, 640, 480))]
    assert yolo_lines(labelled, 640, 480, ["dog", "cat"]) == LABELIMG_TXT


def test_bad_lines_are_reported_and_dropped(tmp_path):
    text = ("1 0.5 0.5 0.2 0.2\n"
            "\n"
            "0 0.5 0.5 0.2\n"
            "3 0.5 0.5 0.2 0.2\n"
            "-1 0.5 0.5 0.2 0.2\n"
            "cat 0.5 0.5 0.2 0.2\n"
            "2 0.5 abc 0.2 0.2\n"
            "2 0.5 0.5 nan 0.2\n"
            "0 0.5 0.5 0.0 0.2\n"
            "0 0.5 0.5 0.2 -0.1\n"
            "  2\t0.25   0.25 0.5 0.5  \r\n")
    yolo_folder(tmp_path, {"a": text})
    (image,), problems = read(tmp_path)
    assert [(o.object_index, o.class_name) for o in image.objects] == [(0, "cat"), (9, "spatule")]
    assert image.objects[1].box == Box(0, 0, 320, 240)
    assert [lost.object_index for lost in image.lost] == list(range(1, 9))
    txt = str(tmp_path / "a.txt") + " (image a.jpg)"
    assert messages(problems) == [
        f"{txt}, object #1 ('dog', line 3): 4 fields instead of 5 (class_index x_center y_center width height); "
        "object dropped",
        f"{txt}, object #2 (line 4): class index 3 is not in classes.txt (indices 0 to 2); object dropped",
        f"{txt}, object #3 (line 5): class index -1 is not in classes.txt (indices 0 to 2); object dropped",
        f"{txt}, object #4 (line 6): class index 'cat' is not an integer; object dropped",
        f"{txt}, object #5 ('spatule', line 7): 'abc' is not a number; object dropped",
        f"{txt}, object #6 ('spatule', line 8): 'nan' is not a finite number; object dropped",
        f"{txt}, object #7 ('dog', line 9): width 0.0 and height 0.2 must both be positive; object dropped",
        f"{txt}, object #8 ('dog', line 10): width 0.2 and height -0.1 must both be positive; object dropped",
    ]
    assert problems.counts() == {"box_invalid": 5, "unknown_class": 3}


def test_exif_rotated_photo_uses_the_displayed_size(tmp_path):
    add_image(tmp_path, "rotated.jpg", (64, 48), orientation=6)
    (tmp_path / "rotated.txt").write_text("0 0.250000 0.500000 0.500000 1.000000\n")
    (tmp_path / "classes.txt").write_text("dog\n")
    assert displayed_size(str(tmp_path / "rotated.jpg")) == (48, 64)
    (image,), problems = read(tmp_path)
    assert image.objects[0].box == Box(0, 0, 24, 64)
    assert not problems.problems


def test_pairing_by_stem_and_object_free_photos(tmp_path):
    folder = yolo_folder(tmp_path, {"Photo": "0 0.5 0.5 0.5 0.5\n", "empty": ""})
    add_image(tmp_path, "unlabelled.png")
    os.rename(tmp_path / "Photo.txt", tmp_path / "photo.TXT")
    (tmp_path / "orphan.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    images, problems = read(folder)
    assert [(os.path.basename(i.image_path), len(i.objects)) for i in images] == [
        ("empty.jpg", 0), ("Photo.jpg", 1), ("unlabelled.png", 0)]
    assert images[2].annotation_path == images[2].image_path
    assert [i.labelled for i in images] == [True, True, False]  # validation decides (--unlabelled)
    assert messages(problems) == [
        f"{tmp_path / 'orphan.txt'}: no image named orphan.* in {folder}; txt skipped",
    ]


def test_label_dir_holds_txt_and_classes(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    add_image(images, "a.jpg")
    labels.mkdir()
    (labels / "a.txt").write_text(yolo_lines([("cat", Box(0, 0, 64, 48))], 640, 480, CLASSES))
    write_classes(str(labels / "classes.txt"), CLASSES)
    (image,), problems = read(images, str(labels))
    assert image.annotation_path == str(labels / "a.txt") and image.objects[0].class_name == "cat"
    assert not problems.problems


def test_missing_or_bad_classes_file_skips_the_folder(tmp_path):
    folder = yolo_folder(tmp_path, {"a": "0 0.5 0.5 0.5 0.5\n"}, classes=None)
    images, problems = read(folder)
    assert images == []
    assert messages(problems) == [f"{folder}: no classes.txt in {folder}: YOLO class indices cannot be "
                                  "named; folder skipped"]
    classes = tmp_path / "classes.txt"
    for content, reason in ((b"dog\n\ncat\n", "line 2 is blank, but every line up to the last names a class"),
                            (b"\n\n", "names no class"),
                            (b"caf\xe9\n", "not UTF-8 text (invalid continuation byte at byte 3); save it "
                                           "as UTF-8")):
        classes.write_bytes(content)
        images, problems = read(folder)
        assert images == [] and messages(problems) == [f"{classes}: {reason}; folder skipped"]
        assert problems.counts() == {"malformed_annotation": 1}


def test_classes_file_with_crlf_and_bom_as_notepad_saves_it(tmp_path):
    yolo_folder(tmp_path, {"a": "1 0.5 0.5 0.5 0.5\r\n"}, classes=None)
    (tmp_path / "classes.txt").write_bytes("\ufeffdog\r\ncat\r\n".encode("utf-8"))
    (image,), _ = read(tmp_path)
    assert image.objects[0].class_name == "cat"


def test_writers_refuse_what_would_not_read_back(tmp_path):
    with pytest.raises(ValueError, match="class 'bird' is not in the class list"):
        yolo_lines([("bird", Box(0, 0, 1, 1))], 10, 10, CLASSES)
    for names in (["dog", ""], ["dog", "two\nlines"], ["dog", "dog"]):
        with pytest.raises(ValueError):
            write_classes(str(tmp_path / "classes.txt"), names)
    assert not os.path.exists(tmp_path / "classes.txt")
    write_classes(str(tmp_path / "classes.txt"), CLASSES)
    assert (tmp_path / "classes.txt").read_text() == "dog\ncat\nspatule\n"
