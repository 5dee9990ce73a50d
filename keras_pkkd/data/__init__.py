"""Input pipelines of the training CLI: tfds datasets, .npz files and image folders.

    from keras_pkkd import data
    source = data.load(dataset="cifar10")                 # tfds, or local files:
    source = data.load(dataset=None, train_data="train.npz", eval_data="test.npz")
    steps = source.steps_per_epoch(256)
    model.fit(source.train_dataset(256, seed=0, epochs=400, initial_epoch=k),
              steps_per_epoch=steps, epochs=400, initial_epoch=k,
              validation_data=source.eval_dataset(256))

See docs/data.md for the formats, augmentation, normalization and resume-exact ordering.
"""

from keras_pkkd.data.augment import NORMALIZATION, style_for  # noqa: F401
from keras_pkkd.data.pipeline import Source, load, normalization, run_normalization  # noqa: F401
from keras_pkkd.data.sources import KNOWN_DATASETS, DataError, probe_connectivity  # noqa: F401

__all__ = ["load", "normalization", "run_normalization", "Source", "DataError", "KNOWN_DATASETS",
           "NORMALIZATION", "style_for", "probe_connectivity"]
