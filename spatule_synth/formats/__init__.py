"""One module per file format, each read and written with a round-trip test: labelImg folders
and Pascal VOC XML (`labelimg`, `voc`), COCO (`coco`), YOLO (`yolo`), VOC segmentation
(`voc_segmentation`), alpha-PNG cutouts (`alpha_cutouts`), TFRecord (`tfrecord`), the label map
(`label_map`), the run manifest (`manifest`) and the reading dataset's `labels.csv`
(`labels_csv`); with two helpers: `proto_schema` (protobuf
messages declared without generated code: tf.train.Example, StringIntLabelMap, the pipeline
config) and `pbtxt_edit` (protobuf text edited in place, one field at a time).
"""
