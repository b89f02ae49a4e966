"""spatule_synth: labelled synthetic training data for the TensorFlow 2 Object Detection API.

The package reads labelImg/Pascal VOC folders, validates them once, and writes TFRecords and label
maps that `model_main_tf2.py` trains on without hand edits. See README.md for the commands.
"""

__version__ = "0.1.0"
