"""A class-conditional GAN of cutouts (``python -m spatule_synth.gan train``): new instances of
the user's own objects, each with its mask, for ``generate --gan_model``.

`crops` turns the cutouts the read stage produces into square RGBA training crops (no
TensorFlow); `model` builds the DCGAN-style generator and discriminator; `train` runs the seeded,
resumable training with a sample sheet, checkpoints and an honest evaluation (`evaluation`:
nearest training crop, classifier two-sample test) per epoch; `spatule_synth.generate.gan_source`
turns a trained generator into cutouts. TensorFlow is imported only here and there.
"""
