"""A foreground segmenter for ``--mask=model`` (``python -m spatule_synth.segmenter train``),
trained on the objects of the user's inputs that carry a true mask.

`masked_objects` reads generate's inputs and keeps the objects with a true mask (COCO
polygons/RLE, VOC segmentation, alpha cutouts, rendered tags; box-only labels are counted and left
out); `pairs` turns each into the crop the ``--mask=model`` contract shows a model and its true
mask, and splits them by identity (and by class, for classes the model never sees); `model`
builds the small U-Net, its Dice + cross-entropy loss and the augmentation; `train` runs the
seeded, resumable training and exports the SavedModel; `evaluation` scores the exported model
next to GrabCut and the whole box on the same boxes, and draws the evaluation sheet;
`model_files` names the files of the output folder. TensorFlow is imported only by `model`,
`train` and (through `load_mask_model`) the command.
"""
