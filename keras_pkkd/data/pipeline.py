"""The training CLI's data source: `load` picks and checks the data, `Source` builds the
tf.data pipelines.

Resume-exact ordering: for in-memory sources (CIFAR from tfds, .npz files) and image folders,
epoch e of `Source.train_dataset` is a function of (seed, e) alone: the example order is
tf.random.experimental.stateless_shuffle of the indices with a key folded from [seed, e], and
every crop / flip is drawn by stateless random ops from another key folded from [seed, e].
A run stopped after epoch k and restarted with initial_epoch=k therefore gets exactly the
batches the uninterrupted run would have had. imagenet2012 from tfds (too large to index in
memory) is read with tfds' file shuffling and a shuffle buffer instead: reproducible for one
(seed, initial_epoch), but a resumed run sees a different order than an uninterrupted one.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import tensorflow as tf

from keras_pkkd.data import augment as aug
from keras_pkkd.data.sources import (
    IN_MEMORY_DATASETS, KNOWN_DATASETS, LOCAL_HINT, TFDS_SPLITS, ArrayData, DataError, FileData,
    TfdsFileData, data_dir_root, ensure_prepared, read_local, read_tfds_arrays, read_tfds_files,
    tfds_builder)
from keras_pkkd.data.sources import class_names as dataset_class_names

AUTOTUNE = tf.data.AUTOTUNE
DEFAULT_IMAGE_SIZE = {"cifar10": 32, "cifar100": 32, "imagenet2012": 224}
EVAL_CACHE_BYTES = 1 << 30  # decoded evaluation images up to this size are cached in memory
SHUFFLE_BUFFER = 10_000  # file-based tfds sets (imagenet2012)


def _epoch_keys(seed, epoch):
    """Two independent stateless keys (shuffle, augmentation) of one epoch."""
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return (tf.random.experimental.stateless_fold_in(key, 0),
            tf.random.experimental.stateless_fold_in(key, 1))


def _cifar_randoms(key, shape):
    """Crop offsets int32 [*shape, 2] in [0, 2 * pad] and flips bool [*shape]."""
    k_off, k_flip = tf.unstack(tf.random.experimental.stateless_split(key, 2))
    offsets = tf.random.stateless_uniform(list(shape) + [2], seed=k_off, minval=0,
                                          maxval=2 * aug.CIFAR_PAD + 1, dtype=tf.int32)
    flips = tf.random.stateless_uniform(list(shape), seed=k_flip, minval=0, maxval=2,
                                        dtype=tf.int32) > 0
    return offsets, flips


def _element_seeds(key, count):
    """int64 [count, 2]: one stateless seed per example of an epoch."""
    return tf.random.stateless_uniform([count, 2], seed=key, minval=None, maxval=None,
                                       dtype=tf.int64)


class Source:
    """A training and an evaluation split with their preprocessing; built by `load`.

    Attributes:
        name: the dataset name, or "npz" / "folder" for local data without one.
        description: where the data comes from, for logs.
        num_classes: number of classes.
        class_names: list of class names, or None when the data declares none.
        image_size: side of the square images the datasets yield.
        style: "cifar" (pad 4 + random crop + flip) or "imagenet" (random resized crop + flip;
            evaluation resize to round(size * 256 / 224) + central crop).
        mean, std: per-channel normalization constants on the 0..1 scale (tuples of 3 floats).
        train_size, eval_size: number of examples of each split.
    """

    def __init__(self, *, name, description, train, eval, num_classes, class_names, image_size,
                 mean, std):
        self.name = name
        self.description = description
        self.num_classes = int(num_classes)
        self.class_names = None if class_names is None else list(class_names)
        self.image_size = int(image_size)
        self.style = aug.style_for(self.image_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._train, self._eval = train, eval
        self._tensors = {}

    def with_normalization(self, mean, std, what=None):
        """A copy whose datasets normalize with other per-channel constants (0..1 scale): those
        a trained network expects (its export metadata, its run's training data)."""
        other = copy.copy(self)
        other.mean = tuple(float(m) for m in mean)
        other.std = tuple(float(s) for s in std)
        if what:
            other.description = f"{self.description}, normalized with {what}"
        return other

    def __repr__(self):
        return (f"Source({self.name!r}, {self.train_size} train / {self.eval_size} eval, "
                f"{self.num_classes} classes, {self.image_size}px {self.style} style)")

    @property
    def train_size(self):
        return 0 if self._train is None else self._train.size

    @property
    def eval_size(self):
        return self._eval.size

    def steps_per_epoch(self, batch_size):
        """Training batches per epoch: train_size // batch_size (the last partial batch is
        dropped).

        Raises:
            DataError: batch_size < 1 or larger than the training set.
        """
        batch_size = _check_batch_size(batch_size)
        if self._train is None:
            raise DataError(f"{self.description} was opened with eval_only=True: it has no "
                            "training split; load it without eval_only to train")
        steps = self.train_size // batch_size
        if steps == 0:
            raise DataError(f"batch size {batch_size} is larger than the training set "
                            f"({self.train_size} examples of {self.description}): use a smaller "
                            "--batch_size or more training examples")
        return steps

    # ------------------------------------------------------------------------------- training

    def train_dataset(self, batch_size, *, seed, epochs, initial_epoch=0, augment=True):
        """Training batches for epochs initial_epoch .. epochs - 1, one iterator for all.

        Yields exactly (epochs - initial_epoch) * steps_per_epoch(batch_size) batches of
        (float32 normalized [batch_size, size, size, 3] images, int32 [batch_size] labels),
        meant for model.fit(..., steps_per_epoch=..., initial_epoch=...). For in-memory
        sources and image folders, epoch e's order and augmentation depend only on (seed, e)
        (see the module docstring).

        Args:
            batch_size: examples per batch (the last partial batch of an epoch is dropped).
            seed: int, the run's data seed.
            epochs: index of the last epoch + 1 (Keras' `epochs`).
            initial_epoch: first epoch to produce (Keras' `initial_epoch`, for resuming).
            augment: random crops and flips (False: evaluation preprocessing, still shuffled).

        Raises:
            DataError: batch larger than the training set.
            ValueError: seed not an int, or not 0 <= initial_epoch < epochs.
        """
        steps = self.steps_per_epoch(batch_size)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an int, got {seed!r}")
        for what, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{what} must be an int, got {value!r}")
        if not 0 <= initial_epoch < epochs:
            raise ValueError(f"need 0 <= initial_epoch < epochs, got initial_epoch="
                             f"{initial_epoch}, epochs={epochs}")
        seed, epochs, initial_epoch = int(seed), int(epochs), int(initial_epoch)
        data = self._train
        if isinstance(data, TfdsFileData):
            ds = self._tfds_train(data, batch_size, steps, seed, epochs, initial_epoch, augment)
        else:
            epochs_ds = tf.data.Dataset.range(initial_epoch, epochs)
            if isinstance(data, ArrayData) and self.style == "cifar":
                ds = self._array_cifar_train(data, epochs_ds, batch_size, steps, seed, augment)
            else:
                ds = self._element_train(data, epochs_ds, batch_size, steps, seed, augment)
        return ds.prefetch(AUTOTUNE)

    def _array_cifar_train(self, data, epochs_ds, batch_size, steps, seed, augment):
        n = data.size
        x, y = self._arrays(data)

        def plan(epoch):
            shuffle_key, aug_key = _epoch_keys(seed, epoch)
            order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32),
                                                             seed=shuffle_key)
            order = tf.reshape(order[:steps * batch_size], [steps, batch_size])
            offsets, flips = _cifar_randoms(aug_key, [steps, batch_size])
            return tf.data.Dataset.from_tensor_slices((order, offsets, flips))

        def make_batch(index, offsets, flips):
            images = tf.gather(x, index)
            if augment:
                images = aug.cifar_crop_flip(images, offsets, flips)
            return aug.normalize(images, self.mean, self.std), tf.gather(y, index)

        return epochs_ds.flat_map(plan).map(make_batch, num_parallel_calls=AUTOTUNE,
                                            deterministic=True)

    def _element_train(self, data, epochs_ds, batch_size, steps, seed, augment):
        """Per-example preprocessing, then batching: image folders, and in-memory data in the
        imagenet style."""
        n, count, size = data.size, steps * batch_size, self.image_size
        cifar = self.style == "cifar"

        def plan(epoch):
            shuffle_key, aug_key = _epoch_keys(seed, epoch)
            order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32),
                                                             seed=shuffle_key)[:count]
            if cifar:
                offsets, flips = _cifar_randoms(aug_key, [count])
                return tf.data.Dataset.from_tensor_slices((order, offsets, flips))
            return tf.data.Dataset.from_tensor_slices((order, _element_seeds(aug_key, count)))

        if isinstance(data, ArrayData):
            x, y = self._arrays(data)

            def image_of(index, seed_):
                image = tf.gather(x, index)
                if cifar:
                    return image
                return (aug.imagenet_train_image(image, size, seed_) if augment
                        else aug.imagenet_eval_image(image, size))
        else:
            paths = tf.constant(data.paths)
            y = tf.constant(data.labels)

            def image_of(index, seed_):
                encoded = tf.io.read_file(tf.gather(paths, index))
                if cifar:
                    return aug.resize_uint8(aug.decode(encoded), size)
                if augment:
                    return aug.imagenet_train_bytes(encoded, size, seed_)
                return aug.imagenet_eval_image(aug.decode(encoded), size)

        if cifar:
            def element(index, offsets, flips):
                return image_of(index, None), tf.gather(y, index), offsets, flips

            def finish(images, labels, offsets, flips):
                if augment:
                    images = aug.cifar_crop_flip(images, offsets, flips)
                return aug.normalize(images, self.mean, self.std), labels
        else:
            def element(index, seed_):
                return image_of(index, seed_), tf.gather(y, index)

            def finish(images, labels):
                return aug.normalize(images, self.mean, self.std), labels

        return (epochs_ds.flat_map(plan)
                .map(element, num_parallel_calls=AUTOTUNE, deterministic=True)
                .batch(batch_size, drop_remainder=True)
                .map(finish, num_parallel_calls=AUTOTUNE, deterministic=True))

    def _tfds_train(self, data, batch_size, steps, seed, epochs, initial_epoch, augment):
        """imagenet2012: tfds file shuffling + a shuffle buffer (not resume-exact)."""
        import tensorflow_datasets as tfds
        size, cifar = self.image_size, self.style == "cifar"
        start = seed * 1_000_003 + initial_epoch
        read_config = tfds.ReadConfig(shuffle_seed=start % (2 ** 31))
        ds = data.builder.as_dataset(split=data.split, as_supervised=True,
                                     shuffle_files=data.limit is None, read_config=read_config,
                                     decoders={"image": tfds.decode.SkipDecoding()})
        if data.limit is not None:
            ds = ds.take(data.limit)
        ds = ds.repeat().shuffle(min(SHUFFLE_BUFFER, data.size), seed=start % (2 ** 31),
                                 reshuffle_each_iteration=True)
        _, key = _epoch_keys(seed, initial_epoch)

        def element(counter, example):
            encoded, label = example
            if cifar:
                image = aug.resize_uint8(aug.decode(encoded), size)
            elif augment:
                image = aug.imagenet_train_bytes(
                    encoded, size, tf.random.experimental.stateless_fold_in(key, counter))
            else:
                image = aug.imagenet_eval_image(aug.decode(encoded), size)
            return image, tf.cast(label, tf.int32)

        def finish(counter, batch):
            images, labels = batch
            if cifar and augment:
                offsets, flips = _cifar_randoms(
                    tf.random.experimental.stateless_fold_in(key, counter), [batch_size])
                images = aug.cifar_crop_flip(images, offsets, flips)
            return aug.normalize(images, self.mean, self.std), labels

        return (ds.enumerate().map(element, num_parallel_calls=AUTOTUNE, deterministic=True)
                .batch(batch_size, drop_remainder=True).enumerate()
                .map(finish, num_parallel_calls=AUTOTUNE, deterministic=True)
                .take((epochs - initial_epoch) * steps))

    # ----------------------------------------------------------------------------- evaluation

    def eval_dataset(self, batch_size):
        """Evaluation batches: no augmentation, fixed order, the last partial batch kept.

        Yields (float32 normalized [b, size, size, 3] images, int32 [b] labels), one pass.

        Raises:
            DataError: batch_size < 1.
        """
        batch_size = _check_batch_size(batch_size)
        data, size, cifar = self._eval, self.image_size, self.style == "cifar"

        def finish(images, labels):
            return aug.normalize(images, self.mean, self.std), labels

        if isinstance(data, ArrayData):
            x, y = self._arrays(data)
            indices = tf.data.Dataset.range(data.size)
            if cifar:
                ds = indices.batch(batch_size).map(
                    lambda i: finish(tf.gather(x, i), tf.gather(y, i)),
                    num_parallel_calls=AUTOTUNE, deterministic=True)
            else:
                ds = (indices.map(lambda i: (aug.imagenet_eval_image(tf.gather(x, i), size),
                                             tf.gather(y, i)),
                                  num_parallel_calls=AUTOTUNE, deterministic=True)
                      .batch(batch_size).map(finish, num_parallel_calls=AUTOTUNE,
                                             deterministic=True))
            return ds.prefetch(AUTOTUNE)

        def image_of(encoded):
            image = aug.decode(encoded)
            return aug.resize_uint8(image, size) if cifar else aug.imagenet_eval_image(image, size)

        if isinstance(data, FileData):
            ds = tf.data.Dataset.from_tensor_slices((data.paths, data.labels)).map(
                lambda path, label: (image_of(tf.io.read_file(path)), label),
                num_parallel_calls=AUTOTUNE, deterministic=True)
        else:
            import tensorflow_datasets as tfds
            ds = data.builder.as_dataset(split=data.split, as_supervised=True,
                                         shuffle_files=False,
                                         decoders={"image": tfds.decode.SkipDecoding()})
            if data.limit is not None:
                ds = ds.take(data.limit)
            ds = ds.map(lambda encoded, label: (image_of(encoded), tf.cast(label, tf.int32)),
                        num_parallel_calls=AUTOTUNE, deterministic=True)
        if data.size * size * size * 3 * (1 if cifar else 4) <= EVAL_CACHE_BYTES:
            ds = ds.cache()
        return (ds.batch(batch_size).map(finish, num_parallel_calls=AUTOTUNE, deterministic=True)
                .prefetch(AUTOTUNE))

    def _arrays(self, data):
        """The (images, labels) tensors of an in-memory split, made once."""
        key = id(data)
        if key not in self._tensors:
            self._tensors[key] = (tf.constant(data.x), tf.constant(data.y))
        return self._tensors[key]


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise DataError(f"batch size must be a positive int, got {batch_size!r}")
    return int(batch_size)


# ------------------------------------------------------------------------------------- load

def _native_size(data):
    if isinstance(data, ArrayData):
        return int(min(data.x.shape[1], data.x.shape[2]))
    image = aug.decode(tf.io.read_file(data.paths[0]))
    return int(min(image.shape[0], image.shape[1]))


def _resize_array(data, size, chunk=1024):
    """An ArrayData with every image resized to size x size (cifar style), unchanged if equal."""
    if data.x.shape[1] == size and data.x.shape[2] == size:
        return data
    parts = []
    for start in range(0, data.size, chunk):
        part = tf.image.resize(data.x[start:start + chunk], [size, size], method="bilinear",
                               antialias=True)
        parts.append(tf.cast(tf.clip_by_value(tf.round(part), 0, 255), tf.uint8).numpy())
    return ArrayData(np.concatenate(parts), data.y, data.origin, data.num_classes,
                     data.class_names)


def _array_mean_std(x, chunk=4096):
    """Per-channel mean and (population) std of uint8 images on the 0..1 scale, exact."""
    total = np.zeros(3, np.float64)
    squares = np.zeros(3, np.float64)
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk].reshape(-1, 3).astype(np.int64)
        total += part.sum(axis=0)
        squares += (part * part).sum(axis=0)
    count = x.shape[0] * x.shape[1] * x.shape[2]
    mean = total / count
    var = np.maximum(squares / count - mean * mean, 0.0)
    std = np.maximum(np.sqrt(var), 1.0) / 255.0  # constant images: std of 1/255, no division by 0
    return tuple(mean / 255.0), tuple(std)


def _check_classes(train, ev, dataset, dataset_classes):
    if train is not None and train.num_classes != ev.num_classes:
        raise DataError(f"train data has {train.num_classes} classes ({train.origin}) but eval "
                        f"data has {ev.num_classes} ({ev.origin}): both must have the same "
                        "classes (same class subfolders, or the same class_names / label range)")
    if train is not None and train.class_names is not None and ev.class_names is not None \
            and list(train.class_names) != list(ev.class_names):
        raise DataError(f"train data classes {train.class_names[:5]}... ({train.origin}) differ "
                        f"from eval data classes {ev.class_names[:5]}... ({ev.origin}): both "
                        "must list the same classes in the same order")
    if dataset is None:
        return
    for data in (d for d in (train, ev) if d is not None):
        if data.class_names is not None and data.num_classes != dataset_classes:
            raise DataError(f"{data.origin} has {data.num_classes} classes but --dataset "
                            f"{dataset} has {dataset_classes}: pass matching data, or leave "
                            "--dataset out to use the local data's own classes")
        top = int(data.labels.max() if isinstance(data, FileData) else data.y.max())
        if top >= dataset_classes:
            raise DataError(f"{data.origin} has label {top} but --dataset {dataset} has only "
                            f"{dataset_classes} classes: pass matching data, or leave --dataset "
                            "out")


def load(dataset="cifar10", data_dir=None, train_data=None, eval_data=None, image_size=None,
         download=True, manual_dir=None, train_examples=None, eval_examples=None,
         eval_only=False):
    """Picks, checks and opens the training and evaluation data.

    Local data (train_data and eval_data, both required together) overrides tfds; with a
    dataset name too, the name picks the normalization constants and class names, the local
    files supply the images.

    Args:
        dataset: "cifar10", "cifar100", "imagenet2012", or None (local data only).
        data_dir: tfds data_dir (None: the tfds default, ~/tensorflow_datasets).
        train_data, eval_data: .npz files (`x` uint8 NHWC with 1 or 3 channels, `y` integer
            labels, optional `class_names`) or image folders (one subfolder per class).
        image_size: side of the model's square input. None: 32 for cifar10/100, 224 for
            imagenet2012, else the local data's native size (the shorter side of the training
            images, of the first training image for a folder). Sides <= 64 use the "cifar"
            augmentation, larger ones the "imagenet" one.
        download: whether tfds may download (cifar10/100) or prepare from manual_dir
            (imagenet2012) a dataset that is not prepared in data_dir.
        manual_dir: tfds manual download dir holding ILSVRC2012_img_train.tar and
            ILSVRC2012_img_val.tar (imagenet2012 only).
        train_examples, eval_examples: use only the first N examples of each split.
        eval_only: open only the evaluation split (for evaluating a trained network): the
            training split is not read (train_data is optional and, when given, only used for
            the normalization constants of an .npz without a dataset name; without it those
            are computed from the evaluation array), train_size is 0 and train_dataset /
            steps_per_epoch raise DataError.

    Returns:
        Source.

    Raises:
        DataError: unknown dataset; only one of train_data/eval_data; no data at all; missing
            or malformed local data; train/eval class mismatch; a tfds dataset that is not
            prepared and cannot be (download off, offline, no ImageNet tar files); bad
            image_size.
    """
    if dataset is not None and dataset not in KNOWN_DATASETS:
        raise DataError(f"unknown dataset {dataset!r}: known datasets are "
                        f"{', '.join(KNOWN_DATASETS)} (or leave --dataset out and pass "
                        f"{LOCAL_HINT})")
    if eval_data is None and (train_data is not None or (eval_only and dataset is None)):
        raise DataError("--train_data was given without --eval_data: local data needs both "
                        "(no validation split is carved out of the training data); pass "
                        "--eval_data too, or neither to use the tfds dataset"
                        if train_data is not None else
                        f"no evaluation data: pass --dataset ({', '.join(KNOWN_DATASETS)}) "
                        "or --eval_data (an .npz file or an image folder)")
    if train_data is None and eval_data is not None and not eval_only:
        raise DataError("--eval_data was given without --train_data: local data needs both; "
                        "pass --train_data too, or neither to use the tfds dataset")
    if dataset is None and eval_data is None:
        raise DataError(f"no data: pass --dataset ({', '.join(KNOWN_DATASETS)}) or {LOCAL_HINT}")
    if image_size is not None and (isinstance(image_size, bool)
                                   or not isinstance(image_size, (int, np.integer))
                                   or image_size < 1):
        raise DataError(f"image_size must be a positive int or None, got {image_size!r}")

    if eval_data is not None:
        ev = read_local(eval_data, eval_examples)
        train = read_local(train_data, train_examples) if train_data is not None else None
        if dataset is not None:
            class_names = dataset_class_names(dataset)
            num_classes = len(class_names)
            _check_classes(train, ev, dataset, num_classes)
            name, prefix = dataset, f"{dataset} images from "
        else:
            _check_classes(train, ev, None, None)
            first = train if train is not None else ev
            num_classes = first.num_classes
            class_names = first.class_names if first.class_names is not None else ev.class_names
            name = "npz" if isinstance(first, ArrayData) else "folder"
            prefix = ""
        description = (f"{prefix}{train.origin}, eval {ev.origin}" if train is not None
                       else f"{prefix}{ev.origin} (evaluation only)")
    else:
        builder = tfds_builder(dataset, data_dir)
        ensure_prepared(builder, dataset, download=download, manual_dir=manual_dir)
        read = read_tfds_arrays if dataset in IN_MEMORY_DATASETS else read_tfds_files
        train_split, eval_split = TFDS_SPLITS[dataset]
        train = None if eval_only else read(builder, dataset, train_split, train_examples)
        ev = read(builder, dataset, eval_split, eval_examples)
        num_classes, class_names, name = ev.num_classes, ev.class_names, dataset
        limits = [f"first {n} {split} examples" for n, split in
                  ((None if eval_only else train_examples, train_split),
                   (eval_examples, eval_split)) if n is not None]
        description = (f"{dataset} from tfds at {data_dir_root(builder)}"
                       + (f" ({', '.join(limits)})" if limits else ""))
        if eval_only:
            description += " (evaluation only)"

    if image_size is None:
        image_size = (DEFAULT_IMAGE_SIZE[dataset] if dataset is not None
                      else _native_size(train if train is not None else ev))
    image_size = int(image_size)
    if aug.style_for(image_size) == "cifar":
        train, ev = [_resize_array(d, image_size) if isinstance(d, ArrayData) else d
                     for d in (train, ev)]
    if dataset is not None:
        mean, std = aug.NORMALIZATION[dataset]
    elif isinstance(train, ArrayData):
        mean, std = _array_mean_std(train.x)
    elif train is None and isinstance(ev, ArrayData):
        mean, std = _array_mean_std(ev.x)
    else:
        mean, std = aug.IMAGENET_MEAN, aug.IMAGENET_STD
    return Source(name=name, description=description, train=train, eval=ev,
                  num_classes=num_classes, class_names=class_names, image_size=image_size,
                  mean=mean, std=std)


def run_normalization(flags):
    """How a training run normalized its images, as arguments of `load(..., eval_only=True)`.

    Training normalizes with the constants of the dataset it names (`--dataset`), else with the
    per-channel statistics of its training .npz (the first `--train_examples` images; ImageNet's
    constants for an image folder). Evaluation images opened without the run's dataset or
    training file would instead be normalized with their own statistics: close, but not what
    the network was trained on.

    Args:
        flags: the run's saved flags (flags.json of its model_dir; {} when unknown).

    Returns:
        (kwargs, problem): kwargs holds `dataset`, `train_data` and `train_examples` for `load`;
        problem is None, or a sentence saying why the run's normalization cannot be reproduced
        (its training file is gone), for the caller to show.
    """
    dataset = flags.get("dataset")
    dataset = None if dataset in (None, "none") else dataset
    kwargs = {"dataset": dataset, "train_data": None, "train_examples": None}
    train_data = flags.get("train_data")
    if dataset is not None or not train_data:
        return kwargs, None
    if not os.path.exists(os.path.expanduser(str(train_data))):
        return kwargs, (f"the run's training data {train_data} is missing, so its "
                        "normalization constants (that file's per-channel statistics) cannot "
                        "be recomputed: the evaluation images are normalized with their own "
                        "statistics instead")
    kwargs.update(train_data=str(train_data), train_examples=flags.get("train_examples"))
    return kwargs, None


def normalization(dataset=None, train_data=None, train_examples=None, image_size=None):
    """(mean, std, what): the per-channel constants (0..1 scale) `load` normalizes with.

    The dataset's constants when one is named; else those of the training data, computed
    exactly as `load` computes them for training (the statistics of the first
    `train_examples` images of an .npz, resized to `image_size` where `load` would; ImageNet's
    constants for an image folder). `what` says which, for messages and metadata.

    Raises:
        DataError: neither named, an unknown dataset, or unreadable training data.
    """
    if dataset is not None:
        if dataset not in aug.NORMALIZATION:
            raise DataError(f"unknown dataset {dataset!r}: known datasets are "
                            f"{', '.join(aug.NORMALIZATION)}")
        mean, std = aug.NORMALIZATION[dataset]
        return tuple(mean), tuple(std), f"{dataset} constants"
    if train_data is None:
        raise DataError("no normalization: name a dataset or the training data")
    source = load(dataset=None, train_data=train_data, eval_data=train_data,
                  train_examples=train_examples, eval_examples=1, image_size=image_size,
                  download=False, eval_only=True)
    limit = f"first {train_examples} images of " if train_examples else ""
    what = (f"statistics of the {limit}training data {train_data}"
            if source.name == "npz" else f"ImageNet constants (training images in folder "
                                          f"{train_data})")
    return source.mean, source.std, what
