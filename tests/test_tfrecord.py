import glob
import hashlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from official.vision.dataloaders.tf_example_decoder import TfExampleDecoder

from spatule_synth.core.boxes import Box
from spatule_synth.core.images import encode_jpeg, encode_png
from spatule_synth.formats.tfrecord import KEYS, RecordImage, RecordObject, ShardedRecordWriter, feature_spec, \
    from_example, iter_record_file, parse_example, read_records, serialize_example, shard_glob, shard_paths, \
    to_example
from conftest import noise_photo

WIDTH, HEIGHT = 64, 48


def sample_record(source_id="7", with_masks=False):
    pixels = noise_photo(WIDTH, HEIGHT)
    boxes = [Box(3, 4, 20, 30), Box(0, 0, WIDTH, HEIGHT)]
    objects = []
    for index, box in enumerate(boxes):
        mask = None
        if with_masks:
            plane = np.zeros((HEIGHT, WIDTH), np.uint8)
            plane[int(box.ymin):int(box.ymax), int(box.xmin):int(box.xmax)] = 1
            mask = encode_png(plane)
        objects.append(RecordObject.from_box(box, WIDTH, HEIGHT, class_text=["tag", "bird"][index],
                                             class_label=index + 1, difficult=index == 1,
                                             truncated=index == 1, view="Left", mask_png=mask))
    return RecordImage(encoded=encode_jpeg(pixels), image_format="jpeg", filename="IMAG0488 (2).JPG",
                       source_id=source_id, height=HEIGHT, width=WIDTH, objects=tuple(objects))


@pytest.mark.parametrize("with_masks", [False, True])
def test_round_trip_through_files(tmp_path, with_masks):
    records = [sample_record(str(i), with_masks) for i in range(1, 6)]
    with ShardedRecordWriter(str(tmp_path / "train"), 2) as writer:
        for record in records:
            writer.write(record)
    read = list(read_records(writer.paths))
    # Round-robin: shard 0 holds examples 0, 2, 4 and shard 1 holds 1, 3.
    assert [r.source_id for r in read] == ["1", "3", "5", "2", "4"]
    assert sorted(read, key=lambda r: r.source_id) == records
    # the same without TensorFlow (what --compare_to reads)
    plain = [parse_example(data) for path in writer.paths for data in iter_record_file(path)]
    assert plain == read


def test_unwanted_records_are_skipped_unread(tmp_path):
    with ShardedRecordWriter(str(tmp_path / "train"), 1) as writer:
        for index in range(1, 6):
            writer.write(sample_record(str(index)))
    read = list(iter_record_file(writer.paths[0], wanted=lambda number: number % 2 == 0))
    assert [parse_example(data).source_id if data else None for data in read] == ["1", None, "3", None, "5"]


def test_a_damaged_record_file_is_named_without_tensorflow(tmp_path):
    with ShardedRecordWriter(str(tmp_path / "train"), 1) as writer:
        writer.write(sample_record("1"))
        writer.write(sample_record("2"))
    [path] = writer.paths
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-10])
    read = iter_record_file(path)
    assert parse_example(next(read)).source_id == "1"
    with pytest.raises(ValueError, match=r"train.record: entry #1: damaged data \(cut short\?\)"):
        next(read)


def test_parse_single_example_reads_the_od_api_keys():
    record = sample_record()
    parsed = tf.io.parse_single_example(serialize_example(record), feature_spec())
    dense = lambda key: tf.sparse.to_dense(parsed[key]).numpy().tolist()
    assert dense(KEYS.XMIN) == pytest.approx([3 / WIDTH, 0.0])
    assert dense(KEYS.YMAX) == pytest.approx([30 / HEIGHT, 1.0])
    assert dense(KEYS.CLASS_TEXT) == [b"tag", b"bird"] and dense(KEYS.CLASS_LABEL) == [1, 2]
    assert dense(KEYS.DIFFICULT) == [0, 1] and dense(KEYS.TRUNCATED) == [0, 1]
    assert dense(KEYS.VIEW) == [b"Left", b"Left"]
    assert parsed[KEYS.SHA256].numpy() == hashlib.sha256(record.encoded).hexdigest().encode()
    assert parsed[KEYS.FILENAME].numpy() == b"IMAG0488 (2).JPG"
    image = tf.io.decode_image(parsed[KEYS.ENCODED]).numpy()
    assert image.shape == (HEIGHT, WIDTH, 3)


@pytest.mark.parametrize("with_masks", [False, True])
def test_model_garden_decoder_reads_the_same_boxes_and_classes(with_masks):
    record = sample_record(with_masks=with_masks)
    decoded = TfExampleDecoder(include_mask=with_masks).decode(
        tf.constant(serialize_example(record)))
    expected = [[o.ymin, o.xmin, o.ymax, o.xmax] for o in record.objects]  # Model Garden order
    np.testing.assert_allclose(decoded["groundtruth_boxes"].numpy(), expected, rtol=0, atol=0)
    assert decoded["groundtruth_classes"].numpy().tolist() == [1, 2]
    assert decoded["groundtruth_is_crowd"].numpy().tolist() == [False, False]
    assert decoded["source_id"].numpy() == b"7"
    assert int(tf.strings.to_number(decoded["source_id"], tf.int64)) == 7  # Model Garden's cast
    assert (int(decoded["height"]), int(decoded["width"])) == (HEIGHT, WIDTH)
    assert decoded["image"].shape == (HEIGHT, WIDTH, 3)
    if with_masks:
        masks = decoded["groundtruth_instance_masks"].numpy()
        assert masks.shape == (2, HEIGHT, WIDTH)
        assert masks[0].sum() == record.objects[0].box(WIDTH, HEIGHT).area
        assert masks[1].all()


def test_shard_names_follow_the_od_api_tools():
    assert shard_paths("out/train", 1) == ["out/train.record"]
    assert shard_paths("out/train", 4)[1] == "out/train.record-00001-of-00004"
    assert shard_glob("out/train", 4) == "out/train.record-?????-of-00004"


def test_shard_glob_matches_exactly_the_shards(tmp_path):
    with ShardedRecordWriter(str(tmp_path / "eval"), 3) as writer:
        writer.write(sample_record())
    assert sorted(glob.glob(shard_glob(str(tmp_path / "eval"), 3))) == writer.paths


def test_failed_writing_leaves_no_shard_under_its_final_name(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardedRecordWriter(str(tmp_path / "train"), 2) as writer:
            writer.write(sample_record())
            raise RuntimeError("crash in the middle")
    assert list(tmp_path.iterdir()) == []


def test_non_numeric_source_ids_are_refused():
    with pytest.raises(ValueError, match="source_id 'IMAG0488' must be a decimal number"):
        to_example(sample_record(source_id="IMAG0488"))


def test_boxes_outside_the_image_cannot_enter_a_record():
    with pytest.raises(ValueError, match="lies outside the 64x48 image"):
        RecordObject.from_box(Box(0, 0, 65, 10), WIDTH, HEIGHT, class_text="tag", class_label=1)


def test_examples_from_the_od_api_tools_without_optional_keys_read_back():
    example = tf.train.Example.FromString(serialize_example(sample_record()))
    for key in (KEYS.DIFFICULT, KEYS.TRUNCATED, KEYS.VIEW, KEYS.SHA256):
        del example.features.feature[key]
    record = from_example(example.SerializeToString())
    assert [o.class_label for o in record.objects] == [1, 2]
    assert [o.difficult for o in record.objects] == [False, False]


def test_file_names_that_are_not_utf8_survive(tmp_path):
    name = b"caf\xe9.jpg".decode("utf-8", "surrogateescape")  # a Latin-1 name on a Linux disk
    record = RecordImage(encoded=sample_record().encoded, image_format="jpeg", filename=name,
                         source_id="1", height=HEIGHT, width=WIDTH)
    with ShardedRecordWriter(str(tmp_path / "x"), 1) as writer:
        writer.write(record)
    [read] = read_records(writer.paths)
    assert read.filename == name


def test_our_examples_are_tensorflows_examples():
    """Written without TensorFlow, read by it: same message, same bytes, every field."""
    record = sample_record(with_masks=True)
    ours = serialize_example(record)
    theirs = tf.train.Example.FromString(ours)
    assert theirs.SerializeToString(deterministic=True) == ours
    assert theirs.features.feature[KEYS.CLASS_LABEL].int64_list.value == [1, 2]
    assert list(theirs.features.feature[KEYS.XMAX].float_list.value) == [o.xmax for o in record.objects]
    assert from_example(ours) == record


def test_our_schema_is_tensorflows():
    """The tf.train.Example messages declared in tfrecord.py are TensorFlow's, field by field (but
    for field options: feature.proto spells out ``packed``, which proto3 implies)."""
    from google.protobuf import descriptor_pb2

    from spatule_synth.formats.tfrecord import _example_classes
    for name, ours in _example_classes().items():
        declared = [descriptor_pb2.DescriptorProto() for _ in range(2)]
        ours.DESCRIPTOR.CopyToProto(declared[0])
        getattr(tf.train, name).DESCRIPTOR.CopyToProto(declared[1])
        for message in declared:
            for field in message.field:
                field.ClearField("options")
        assert declared[0] == declared[1], name
        assert ours.DESCRIPTOR.full_name == getattr(tf.train, name).DESCRIPTOR.full_name


def test_tensorflow_reads_every_framed_record_and_checks_its_crc(tmp_path):
    with ShardedRecordWriter(str(tmp_path / "train"), 1) as writer:
        for index in range(1, 4):
            writer.write(sample_record(str(index)))
    [path] = writer.paths
    assert [r.source_id for r in read_records([path])] == ["1", "2", "3"]
    data = bytearray(open(path, "rb").read())
    data[100] ^= 0xFF  # one flipped byte inside the first example
    open(path, "wb").write(bytes(data))
    with pytest.raises(tf.errors.DataLossError):
        list(read_records([path]))


def test_writing_records_does_not_import_tensorflow():
    """Workers and the generate command never pay TensorFlow's import time to write records."""
    code = ("import sys; import spatule_synth.generate.run, spatule_synth.modes.convert, spatule_synth.generate.execute; "
            "from spatule_synth.formats import tfrecord; "
            "tfrecord.framed(tfrecord.serialize_example(tfrecord.RecordImage(b'x', 'jpeg', 'a.jpg', '1', 1, 1))); "
            "print('tensorflow' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "False"
