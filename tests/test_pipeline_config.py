"""pipeline.config generation: parsed back with protobuf's text_format against the OD API schema.

The OD API's generated protos are not installed, so the test declares the part of
``object_detection.protos.TrainEvalPipelineConfig`` it checks (names, numbers and types as in
tensorflow/models research/object_detection/protos/*.proto) and parses the whole file with
``allow_unknown_field=True``, which skips the undeclared fields and messages (``box_coder { ... }``).
The schema is the test's own, not the module's, so a wrong field name on either side fails.
"""

import glob
import json
import os
import re

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from spatule_synth.formats.label_map import LabelMap, write_label_map
from spatule_synth.modes.pipeline_config import (TEMPLATE_DIR, TEMPLATES, available_templates,
                                           write_pipeline_config, zoo_checkpoint_url)
from spatule_synth.formats.tfrecord import shard_paths

RESNET = "ssd_resnet50_v1_fpn_640x640"
MOBILENET = "ssd_mobilenet_v2_fpnlite_320x320"
TEMPLATE_VALUES = {  # batch_size, num_steps = total_steps, warmup_steps of the zoo configs
    RESNET: (64, 25000, 2000),
    MOBILENET: (128, 50000, 1000),
}
FILLED = ("num_classes", "batch_size", "num_steps", "total_steps", "warmup_steps",
          "fine_tune_checkpoint", "fine_tune_checkpoint_type", "fine_tune_checkpoint_version",
          "use_bfloat16", "max_number_of_boxes", "label_map_path", "input_path")


def _pipeline_message():
    field = descriptor_pb2.FieldDescriptorProto
    schema = {
        "TrainEvalPipelineConfig": [("model", 1, "DetectionModel"), ("train_config", 2, "TrainConfig"),
                                    ("train_input_reader", 3, "InputReader"),
                                    ("eval_config", 4, "EvalConfig"),
                                    ("eval_input_reader", 5, "InputReader", True)],
        "DetectionModel": [("ssd", 2, "Ssd")],
        "Ssd": [("num_classes", 1, field.TYPE_INT32), ("image_resizer", 6, "ImageResizer")],
        "ImageResizer": [("fixed_shape_resizer", 2, "FixedShapeResizer")],
        "FixedShapeResizer": [("height", 1, field.TYPE_INT32), ("width", 2, field.TYPE_INT32)],
        "TrainConfig": [("batch_size", 1, field.TYPE_UINT32),
                        ("data_augmentation_options", 2, "PreprocessingStep", True),
                        ("optimizer", 5, "Optimizer"),
                        ("fine_tune_checkpoint", 7, field.TYPE_STRING),
                        ("num_steps", 9, field.TYPE_UINT32),
                        ("max_number_of_boxes", 20, field.TYPE_INT32),
                        ("unpad_groundtruth_tensors", 21, field.TYPE_BOOL),
                        ("fine_tune_checkpoint_type", 22, field.TYPE_STRING)],
        "PreprocessingStep": [("random_horizontal_flip", 2, "RandomHorizontalFlip"),
                              ("random_crop_image", 12, "RandomCropImage"),
                              ("ssd_random_crop", 21, "SSDRandomCrop")],
        "RandomHorizontalFlip": [("keypoint_flip_permutation", 1, field.TYPE_INT32, True)],
        "RandomCropImage": [("min_aspect_ratio", 2, field.TYPE_FLOAT),
                            ("max_aspect_ratio", 3, field.TYPE_FLOAT),
                            ("min_area", 4, field.TYPE_FLOAT)],
        "SSDRandomCrop": [("operations", 1, "SSDRandomCropOperation", True)],
        "SSDRandomCropOperation": [("min_object_covered", 1, field.TYPE_FLOAT)],
        "Optimizer": [("momentum_optimizer", 2, "MomentumOptimizer"),
                      ("use_moving_average", 4, field.TYPE_BOOL)],
        "MomentumOptimizer": [("learning_rate", 1, "LearningRate"),
                              ("momentum_optimizer_value", 2, field.TYPE_FLOAT)],
        "LearningRate": [("cosine_decay_learning_rate", 4, "CosineDecayLearningRate")],
        "CosineDecayLearningRate": [("learning_rate_base", 1, field.TYPE_FLOAT),
                                    ("total_steps", 2, field.TYPE_UINT32),
                                    ("warmup_learning_rate", 3, field.TYPE_FLOAT),
                                    ("warmup_steps", 4, field.TYPE_UINT32)],
        "InputReader": [("label_map_path", 1, field.TYPE_STRING), ("shuffle", 2, field.TYPE_BOOL),
                        ("num_epochs", 5, field.TYPE_UINT32),
                        ("tf_record_input_reader", 8, "TFRecordInputReader"),
                        ("max_number_of_boxes", 21, field.TYPE_INT32)],
        "TFRecordInputReader": [("input_path", 1, field.TYPE_STRING, True)],
        "EvalConfig": [("metrics_set", 8, field.TYPE_STRING, True),
                       ("use_moving_averages", 11, field.TYPE_BOOL)],
    }
    proto = descriptor_pb2.FileDescriptorProto(name="test/pipeline.proto",
                                               package="object_detection.protos", syntax="proto2")
    for name, fields in schema.items():
        message = proto.message_type.add(name=name)
        for field_name, number, kind, *repeated in fields:
            entry = message.field.add(name=field_name, number=number, label=(
                field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL))
            if isinstance(kind, str):
                entry.type, entry.type_name = field.TYPE_MESSAGE, f".object_detection.protos.{kind}"
            else:
                entry.type = kind
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("object_detection.protos.TrainEvalPipelineConfig"))


PipelineConfig = _pipeline_message()
LABEL_MAP = LabelMap.from_names(["tag", "ring"])


def parse(path):
    config = PipelineConfig()
    with open(path, encoding="utf-8") as handle:
        text_format.Parse(handle.read(), config, allow_unknown_field=True)
    return config


def augmentations(config):
    """The kind of each train_config.data_augmentation_options, in order."""
    return [[field.name for field, _ in option.ListFields()]
            for option in config.train_config.data_augmentation_options]


def uncommented(text):
    return re.sub(r"#.*", "", text)


def make_run(root, name="run", train_shards=1, eval_shards=1, eval_images=2, objects=(2, 1, 0),
             label_map=LABEL_MAP):
    """A finished generate run as far as pipeline.config needs: manifest, label map, empty shards."""
    out = root / name
    (out / "annotations").mkdir(parents=True)
    write_label_map(label_map, str(out / "annotations" / "label_map.pbtxt"))
    splits, images = {}, {}
    for split, shards, count in (("train", train_shards, 3), ("eval", eval_shards, eval_images)):
        paths = shard_paths(str(out / "annotations" / split), shards)
        for path in paths:
            open(path, "wb").close()
        splits[split] = {"images": count, "negatives": 0, "objects_per_class": {},
                         "records": [os.path.relpath(p, out) for p in paths]}
        images[split] = [{"name": f"{split}_{i:06d}", "source_id": str(i + 1),
                          "objects": [{"class": "tag", "box": [1, 1, 5, 5]}] * objects[i % len(objects)]}
                         for i in range(count)]
    (out / "manifest.json").write_text(json.dumps(
        {"mode": "generate", "label_map": [{"id": i.id, "name": i.name} for i in label_map.items],
         "splits": splits, "images": images}))
    return out


def make_convert_run(root, name="real"):
    out = root / name
    (out / "annotations").mkdir(parents=True)
    write_label_map(LABEL_MAP, str(out / "annotations" / "label_map.pbtxt"))
    paths = shard_paths(str(out / "annotations" / "real"), 2)
    for path in paths:
        open(path, "wb").close()
    (out / "manifest.json").write_text(json.dumps(
        {"mode": "convert", "counts": {"examples": 1},
         "records": [os.path.relpath(p, out) for p in paths],
         "examples": [{"objects": [{"name": "tag"}] * 120}]}))
    return out, paths


def fake_checkpoint(root, name):
    folder = root / "pre-trained-models" / TEMPLATES[name] / "checkpoint"
    folder.mkdir(parents=True)
    (folder / "ckpt-0.index").write_bytes(b"")
    (folder / "ckpt-0.data-00000-of-00001").write_bytes(b"")
    return str(folder / "ckpt-0")


def matches_exactly(pattern, shards):
    """``pattern`` reads exactly ``shards``, as Python's and TensorFlow's globs see it."""
    import tensorflow as tf
    expected = sorted(os.path.abspath(p) for p in shards)
    return (os.path.isabs(pattern) and sorted(glob.glob(pattern)) == expected
            and sorted(tf.io.gfile.glob(pattern)) == expected)


def run_shards(out, split, count):
    return shard_paths(str(out / "annotations" / split), count)


@pytest.mark.parametrize("name", [RESNET, MOBILENET])
@pytest.mark.parametrize("train_shards, eval_shards", [(1, 1), (3, 3), (3, 1)])
def test_filled_fields_parse_back(tmp_path, name, train_shards, eval_shards):
    out = make_run(tmp_path / "runs", train_shards=train_shards, eval_shards=eval_shards)
    checkpoint = fake_checkpoint(tmp_path / "workspace", name)
    # a stray file beside the shards must not be read
    (out / "annotations" / "train.record.bak").write_bytes(b"")
    path = write_pipeline_config(name, str(out), str(tmp_path / "workspace"), LABEL_MAP,
                                 batch_size=4, num_steps=2000, fine_tune_checkpoint=checkpoint)
    assert path == str(tmp_path / "workspace" / "models" / name / "pipeline.config")
    config = parse(path)

    assert config.model.ssd.num_classes == 2
    size = 640 if name == RESNET else 320
    assert config.model.ssd.image_resizer.fixed_shape_resizer.height == size  # the template's
    (eval_reader,) = config.eval_input_reader
    for reader, split, shards in ((config.train_input_reader, "train", train_shards),
                                  (eval_reader, "eval", eval_shards)):
        (pattern,) = reader.tf_record_input_reader.input_path
        assert matches_exactly(pattern, run_shards(out, split, shards))
        assert ("?" in pattern) == (shards > 1)
        assert reader.label_map_path == str(out / "annotations" / "label_map.pbtxt")
    train = config.train_config
    assert train.batch_size == 4
    schedule = train.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate
    assert train.num_steps == schedule.total_steps == 2000
    _, total, warmup = TEMPLATE_VALUES[name]
    assert schedule.warmup_steps == warmup * 2000 // total < 2000
    assert train.fine_tune_checkpoint == checkpoint
    assert train.fine_tune_checkpoint_type == "detection"
    assert train.max_number_of_boxes == eval_reader.max_number_of_boxes == 100
    assert list(config.eval_config.metrics_set) == ["coco_detection_metrics"]
    assert eval_reader.shuffle is False and eval_reader.num_epochs == 1
    text = open(path, encoding="utf-8").read()
    assert "PATH_TO_BE_CONFIGURED" not in re.sub(r"#.*", "", text)
    assert re.search(r"^\s*fine_tune_checkpoint_version: V2$", text, re.M)
    assert "use_bfloat16: true" not in text


@pytest.mark.parametrize("name", [RESNET, MOBILENET])
def test_template_is_kept_verbatim_outside_the_filled_fields(tmp_path, name):
    out = make_run(tmp_path / "runs")
    path = write_pipeline_config(name, str(out), str(tmp_path / "ws"), LABEL_MAP, None, None, None)

    with open(os.path.join(TEMPLATE_DIR, f"{name}.config"), encoding="utf-8") as handle:
        template = handle.read().splitlines()
    upstream = template[template.index("") + 1:]  # the template's own header ends at a blank line
    written = open(path, encoding="utf-8").read().splitlines()
    written = written[written.index(upstream[0]):]

    def kept(lines):  # without the filled-in fields and the comments added about them
        return [line for line in lines if line.split(":")[0].strip() not in FILLED
                and not (line.lstrip().startswith("#") and line not in upstream)]

    assert kept(written) == kept(upstream)
    assert len(kept(upstream)) > 150
    assert "Apache License, Version 2.0" in open(path, encoding="utf-8").read()


@pytest.mark.parametrize("name", [RESNET, MOBILENET])
def test_defaults_keep_the_templates_batch_and_steps(tmp_path, name):
    out = make_run(tmp_path / "runs")
    config = parse(write_pipeline_config(name, str(out), str(tmp_path / "ws"), LABEL_MAP,
                                         batch_size=None, num_steps=None, fine_tune_checkpoint=None))
    batch, total, warmup = TEMPLATE_VALUES[name]
    schedule = config.train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate
    assert config.train_config.batch_size == batch
    assert (config.train_config.num_steps, schedule.total_steps, schedule.warmup_steps) == (
        total, total, warmup)


@pytest.mark.parametrize("name", [RESNET, MOBILENET])
def test_without_fine_tune_checkpoint_training_starts_from_scratch(tmp_path, name):
    out = make_run(tmp_path / "runs")
    path = write_pipeline_config(name, str(out), str(tmp_path / "ws"), LABEL_MAP, 2, 10, None)
    config = parse(path)
    assert not config.train_config.HasField("fine_tune_checkpoint")
    assert not config.train_config.HasField("fine_tune_checkpoint_type")
    text = open(path, encoding="utf-8").read()
    assert not re.search(r"^\s*fine_tune_checkpoint", text, re.M)  # version, type, path: all gone
    assert "training starts from scratch" in text


def test_max_number_of_boxes_covers_the_fullest_image(tmp_path):
    out = make_run(tmp_path / "runs", objects=(3, 150, 7))
    config = parse(write_pipeline_config(RESNET, str(out), str(tmp_path / "ws"), LABEL_MAP,
                                         None, None, None))
    assert config.train_config.max_number_of_boxes == 150
    assert config.eval_input_reader[0].max_number_of_boxes == 150


def test_short_training_keeps_warmup_below_total(tmp_path):
    out = make_run(tmp_path / "runs")
    for steps in (1, 2, 12):
        config = parse(write_pipeline_config(RESNET, str(out), str(tmp_path / "ws"), LABEL_MAP,
                                             None, steps, None))
        schedule = (config.train_config.optimizer.momentum_optimizer.learning_rate
                    .cosine_decay_learning_rate)
        assert schedule.total_steps == config.train_config.num_steps == steps
        assert 0 <= schedule.warmup_steps < steps


def test_model_name_and_rewrite(tmp_path):
    out = make_run(tmp_path / "runs")
    first = write_pipeline_config(RESNET, str(out), str(tmp_path / "ws"), LABEL_MAP, 8, None, None,
                                  model_name="tags_resnet")
    second = write_pipeline_config(RESNET, str(out), str(tmp_path / "ws"), LABEL_MAP, 2, None, None,
                                   model_name="tags_resnet")
    assert first == second == str(tmp_path / "ws" / "models" / "tags_resnet" / "pipeline.config")
    assert parse(second).train_config.batch_size == 2
    assert os.listdir(tmp_path / "ws" / "models" / "tags_resnet") == ["pipeline.config"]


def test_unknown_template_lists_the_available_ones(tmp_path):
    out = make_run(tmp_path / "runs")
    with pytest.raises(ValueError) as error:
        write_pipeline_config("faster_rcnn_resnet50", str(out), str(tmp_path / "ws"), LABEL_MAP,
                              None, None, None)
    assert "faster_rcnn_resnet50" in str(error.value)
    assert RESNET in str(error.value) and MOBILENET in str(error.value)
    assert available_templates() == sorted([RESNET, MOBILENET])
    assert not (tmp_path / "ws").exists()


def test_empty_eval_split_is_refused(tmp_path):
    out = make_run(tmp_path / "runs", eval_images=0)  # --eval_fraction=0 still writes an empty shard
    with pytest.raises(ValueError, match="eval split .* has no images"):
        write_pipeline_config(RESNET, str(out), str(tmp_path / "ws"), LABEL_MAP, None, None, None)
    assert not (tmp_path / "ws" / "models" / RESNET / "pipeline.config").exists()


def test_convert_run_has_no_eval_split_but_can_serve_as_eval(tmp_path):
    real, real_shards = make_convert_run(tmp_path / "runs")
    with pytest.raises(ValueError, match="no eval split"):
        write_pipeline_config(RESNET, str(real), str(tmp_path / "ws"), LABEL_MAP, None, None, None)
    synthetic = make_run(tmp_path / "runs", "synthetic", train_shards=3)
    config = parse(write_pipeline_config(RESNET, str(synthetic), str(tmp_path / "ws"), LABEL_MAP,
                                         None, None, None, eval_output_dir=str(real)))
    (eval_reader,) = config.eval_input_reader
    assert matches_exactly(eval_reader.tf_record_input_reader.input_path[0], real_shards)
    assert eval_reader.label_map_path == str(real / "annotations" / "label_map.pbtxt")
    assert matches_exactly(config.train_input_reader.tf_record_input_reader.input_path[0],
                           run_shards(synthetic, "train", 3))
    assert config.train_config.max_number_of_boxes == 120  # the real photo with 120 objects


def test_bad_inputs_are_refused(tmp_path):
    out = make_run(tmp_path / "runs", train_shards=3)
    workspace = str(tmp_path / "ws")
    with pytest.raises(ValueError, match="ckpt-0.index"):
        write_pipeline_config(RESNET, str(out), workspace, LABEL_MAP, None, None,
                              str(tmp_path / "missing" / "ckpt-0"))
    with pytest.raises(ValueError, match="differs"):
        write_pipeline_config(RESNET, str(out), workspace, LabelMap.from_names(["tag"]),
                              None, None, None)
    for steps in (0, -5):
        with pytest.raises(ValueError, match="num_steps"):
            write_pipeline_config(RESNET, str(out), workspace, LABEL_MAP, None, steps, None)
    with pytest.raises(ValueError, match="batch_size"):
        write_pipeline_config(RESNET, str(out), workspace, LABEL_MAP, 0, None, None)
    with pytest.raises(ValueError, match="not a finished"):
        write_pipeline_config(RESNET, str(tmp_path), workspace, LABEL_MAP, None, None, None)
    os.remove(shard_paths(str(out / "annotations" / "train"), 3)[1])
    with pytest.raises(ValueError, match="missing"):
        write_pipeline_config(RESNET, str(out), workspace, LABEL_MAP, None, None, None)


def test_glob_characters_in_the_run_folder_are_refused(tmp_path):
    out = make_run(tmp_path / "runs", name="run[1]")
    with pytest.raises(ValueError, match="glob"):
        write_pipeline_config(RESNET, str(out), str(tmp_path / "ws"), LABEL_MAP, None, None, None)


def test_zoo_checkpoint_url():
    assert zoo_checkpoint_url(RESNET) == ("http://download.tensorflow.org/models/object_detection/"
                                          "tf2/20200711/ssd_resnet50_v1_fpn_640x640_coco17_tpu-8.tar.gz")


FLIP_NOTE = ("# spatule_synth: random_horizontal_flip removed: --no_flip_classes={} "
             "must never be mirrored")
ZOO_FLIP = "  data_augmentation_options {\n    random_horizontal_flip {\n    }\n  }\n"


@pytest.mark.parametrize("name", [RESNET, MOBILENET])
def test_no_flip_classes_remove_the_horizontal_flip_only(tmp_path, name):
    out = make_run(tmp_path / "runs")
    workspace = str(tmp_path / "ws")
    flipping = write_pipeline_config(name, str(out), workspace, LABEL_MAP, None, None, None)
    flipping_text = open(flipping, encoding="utf-8").read()
    flipping_config = parse(flipping)
    # the same model folder, rewritten: the header is the same, so the texts compare whole
    path = write_pipeline_config(name, str(out), workspace, LABEL_MAP, None, None, None,
                                 no_flip_classes=("tag",))
    assert path == flipping
    text = open(path, encoding="utf-8").read()
    config = parse(path)

    assert augmentations(flipping_config) == [["random_horizontal_flip"], ["random_crop_image"]]
    assert augmentations(config) == [["random_crop_image"]]
    assert (config.train_config.data_augmentation_options[0]
            == flipping_config.train_config.data_augmentation_options[1])  # same crop options
    assert config.train_config.data_augmentation_options[0].random_crop_image.min_area == 0.75
    assert "random_horizontal_flip" not in uncommented(text)
    assert "random_horizontal_flip" in uncommented(flipping_text)
    assert (uncommented(text).count("data_augmentation_options")
            == uncommented(flipping_text).count("data_augmentation_options") - 1 == 1)
    # the flip block and nothing else was replaced, by the comment, at its indentation
    assert ZOO_FLIP in flipping_text
    assert text == flipping_text.replace(ZOO_FLIP, "  " + FLIP_NOTE.format("tag") + "\n")
    # what the rest of the module fills in is unchanged
    assert config.model.ssd.num_classes == 2
    assert (config.train_config.max_number_of_boxes
            == flipping_config.train_config.max_number_of_boxes)


def test_flip_options_with_settings_and_comments_are_removed_whole(tmp_path, monkeypatch):
    with open(os.path.join(TEMPLATE_DIR, f"{RESNET}.config"), encoding="utf-8") as handle:
        template = handle.read()
    assert ZOO_FLIP in template
    augmentation = (
        "  data_augmentation_options {\n"
        "    random_horizontal_flip {  # mirrors boxes } and keypoints {\n"
        "      keypoint_flip_permutation: 1\n"
        "      keypoint_flip_permutation: 0\n"
        "      # probability: 0.5 }\n"
        "    }\n"
        "  }\n"
        "  data_augmentation_options {\n"
        "    ssd_random_crop {\n"
        "      operations { min_object_covered: 0.1 }  # random_horizontal_flip { } in a comment\n"
        "    }\n"
        "  }\n"
        "  data_augmentation_options { random_horizontal_flip { } }\n")
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / f"{RESNET}.config").write_text(template.replace(ZOO_FLIP, augmentation))
    monkeypatch.setattr("spatule_synth.modes.pipeline_config.TEMPLATE_DIR", str(templates))
    out = make_run(tmp_path / "runs")

    flipping = parse(write_pipeline_config(RESNET, str(out), str(tmp_path / "ws"), LABEL_MAP,
                                           None, None, None, model_name="flip"))
    assert augmentations(flipping) == [["random_horizontal_flip"], ["ssd_random_crop"],
                                       ["random_horizontal_flip"], ["random_crop_image"]]
    assert list(flipping.train_config.data_augmentation_options[0]
                .random_horizontal_flip.keypoint_flip_permutation) == [1, 0]

    path = write_pipeline_config(RESNET, str(out), str(tmp_path / "ws"), LABEL_MAP, None, None,
                                 None, model_name="no_flip", no_flip_classes=("tag", "ring"))
    config = parse(path)
    assert augmentations(config) == [["ssd_random_crop"], ["random_crop_image"]]
    (operation,) = config.train_config.data_augmentation_options[0].ssd_random_crop.operations
    assert operation.min_object_covered == pytest.approx(0.1)
    text = open(path, encoding="utf-8").read()
    assert "random_horizontal_flip" not in uncommented(text)
    assert "keypoint_flip_permutation" not in text and "mirrors boxes" not in text
    assert text.count(FLIP_NOTE.format("tag,ring")) == 2
    assert ("      operations { min_object_covered: 0.1 }  # random_horizontal_flip { } in a comment\n"
            in text)  # the crop's line, comment included, as in the template


def test_a_run_on_a_url_is_named_by_its_url_in_the_config(tmp_path):
    """TensorFlow reads gs:// records itself: the config names the run's URL, never a local
    path made of it."""
    from test_storage import to_memory
    out = make_run(tmp_path / "runs", train_shards=3, eval_shards=1)
    url = to_memory(str(out), f"memory://pipeline-{os.getpid()}-{tmp_path.name}/run")
    config = parse(write_pipeline_config(RESNET, url, str(tmp_path / "ws"), LABEL_MAP, 2, 10, None))
    (eval_reader,) = config.eval_input_reader
    assert list(config.train_input_reader.tf_record_input_reader.input_path) == [
        f"{url}/annotations/train.record-?????-of-00003"]
    assert list(eval_reader.tf_record_input_reader.input_path) == [f"{url}/annotations/eval.record"]
    assert config.train_input_reader.label_map_path == f"{url}/annotations/label_map.pbtxt"
