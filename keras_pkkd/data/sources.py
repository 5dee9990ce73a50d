"""Readers of the data sources: tensorflow-datasets, .npz files and image folders.

Each reader returns one split as one of three containers, which `pipeline` turns into
tf.data pipelines:

* `ArrayData`: uint8 NHWC RGB images and int32 labels in memory (.npz files, and CIFAR-10 /
  CIFAR-100 from tfds, which are small enough to load whole).
* `FileData`: image file paths and labels (image folders); files are decoded in the pipeline.
* `TfdsFileData`: a file-based tfds split read with encoded images (imagenet2012).

Every problem with the data raises `DataError` with a message that says how to fix it.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import threading
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

KNOWN_DATASETS = ("cifar10", "cifar100", "imagenet2012")
TFDS_SPLITS = {"cifar10": ("train", "test"), "cifar100": ("train", "test"),
               "imagenet2012": ("train", "validation")}
# What tfds downloads for the datasets it can download (tensorflow_datasets cifar.py).
DOWNLOAD_URLS = {"cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                 "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"}
PROBE_TIMEOUT_S = 3.0
IMAGENET_TARS = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
IN_MEMORY_DATASETS = ("cifar10", "cifar100")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
CIFAR100_CLASSES = tuple("""
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly
camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup
dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower
leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange
orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit
raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel
streetcar sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip
turtle wardrobe whale willow_tree wolf woman worm""".split())

LOCAL_HINT = ("--train_data/--eval_data (.npz files with `x` uint8 NHWC images and `y` integer "
              "labels, or image folders with one subfolder per class)")


class DataError(ValueError):
    """A data source is missing, malformed or unreachable; the message says how to fix it."""


@dataclasses.dataclass
class ArrayData:
    """One split held in memory.

    Attributes:
        x: uint8 [N, H, W, 3] RGB images.
        y: int32 [N] labels.
        origin: where it came from, for descriptions ("npz /path/train.npz").
        num_classes: classes the source declares (len(class_names)) or implies (max label + 1
            over the whole file, before any train_examples/eval_examples cut).
        class_names: names the source declares, or None.
    """

    x: np.ndarray
    y: np.ndarray
    origin: str
    num_classes: int
    class_names: list | None = None

    @property
    def size(self):
        return int(self.x.shape[0])


@dataclasses.dataclass
class FileData:
    """One split as image files (decoded in the pipeline).

    Attributes:
        paths: file paths, in the split's fixed order.
        labels: int32 [N] labels.
        origin, num_classes, class_names: as in ArrayData (a folder declares its subfolders).
    """

    paths: list
    labels: np.ndarray
    origin: str
    num_classes: int
    class_names: list | None = None

    @property
    def size(self):
        return len(self.paths)


@dataclasses.dataclass
class TfdsFileData:
    """One split of a file-based tfds dataset, read with encoded images.

    Attributes:
        builder: the prepared tfds DatasetBuilder.
        split: the tfds split string (sliced when limited, e.g. "train[:1000]").
        limit: at most this many examples (also applied after reading: tfds' mock ignores
            slices), or None.
        size: number of examples the split yields.
        origin, num_classes, class_names: as in ArrayData.
    """

    builder: object
    split: str
    limit: int | None
    size: int
    origin: str
    num_classes: int
    class_names: list | None = None


def probe_connectivity(url, timeout=PROBE_TIMEOUT_S):
    """Whether `url`'s server answers an HTTP HEAD request within `timeout` seconds.

    Any HTTP answer (an error status included) counts as online; no answer, a failed name
    lookup, a refused connection or a TLS failure as offline. The proxy settings of the
    environment (HTTPS_PROXY, ...) apply, as they do to tfds' downloads. The request runs in a
    daemon thread, so a hanging resolver or a proxy that accepts connections but never answers
    cannot stall the caller beyond `timeout`.
    """
    result = []

    def attempt():
        request = urllib.request.Request(url, method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                result.append(True)
        except urllib.error.HTTPError:
            result.append(True)
        except (OSError, ValueError):  # URLError, timeouts, ssl errors are OSErrors
            result.append(False)

    thread = threading.Thread(target=attempt, name="keras_pkkd-connectivity-probe",
                              daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _check_limit(limit, what):
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise DataError(f"{what} must be a positive int or None, got {limit!r}")
    return int(limit)


# ---------------------------------------------------------------------------------- .npz files

def read_npz(path, limit=None):
    """Reads a .npz file with `x` (uint8 [N, H, W, 1 or 3]) and `y` (integer [N]) arrays.

    An optional `class_names` array declares the classes. Grayscale images are repeated to RGB.

    Args:
        path: the .npz file.
        limit: keep only the first `limit` examples (None: all).

    Returns:
        ArrayData.

    Raises:
        DataError: missing/unreadable file, missing arrays, wrong dtypes or shapes, labels of
            another length than the images, negative labels, no images.
    """
    path = pathlib.Path(path)
    limit = _check_limit(limit, "the example limit")
    fix = ("an .npz needs `x`: uint8 images [N, H, W, 3] (or [N, H, W, 1]) and `y`: integer "
           "labels [N], e.g. numpy.savez(path, x=images.astype('uint8'), y=labels)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("x", "y") if k not in npz.files]
            if missing:
                raise DataError(f"{path} has no {' and no '.join(repr(m) for m in missing)} "
                                f"array (it has {sorted(npz.files)}): {fix}")
            x, y = npz["x"], npz["y"]
            names = [str(n) for n in npz["class_names"]] if "class_names" in npz.files else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot read {path} as .npz ({e}): {fix}") from e
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(f"{path}: `x` is {x.dtype} with shape {x.shape}, expected uint8 NHWC "
                        f"images with 1 or 3 channels: {fix}")
    if x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        raise DataError(f"{path}: `x` holds no images (shape {x.shape}): {fix}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if not (np.issubdtype(y.dtype, np.integer) and y.ndim == 1):
        raise DataError(f"{path}: `y` is {y.dtype} with shape {y.shape}, expected integer class "
                        f"ids [N]: {fix}")
    if len(y) != len(x):
        raise DataError(f"{path}: `x` has {len(x)} images but `y` has {len(y)} labels: "
                        "give every image exactly one label")
    if y.min() < 0:
        raise DataError(f"{path}: `y` has negative labels (min {y.min()}): labels must be class "
                        "ids 0..num_classes-1")
    num_classes = len(names) if names is not None else int(y.max()) + 1
    if names is not None and y.max() >= num_classes:
        raise DataError(f"{path}: label {y.max()} but only {num_classes} class_names: "
                        "fix the labels or the class_names array")
    if limit is not None:
        x, y = x[:limit], y[:limit]
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return ArrayData(np.ascontiguousarray(x), y.astype(np.int32), f"npz {path}", num_classes,
                     names)


# ------------------------------------------------------------------------------ image folders

def _image_files(folder):
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [os.path.join(root, n) for n in sorted(names)
                  if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(files)


def read_folder(path, limit=None):
    """Reads an image folder: one subfolder per class (sorted names = class ids 0, 1, ...),
    holding .jpg/.jpeg/.png/.bmp/.gif files (searched recursively).

    The split's order interleaves the classes (the first file of every class, then the second
    of every class, ...), so that the first `limit` files cover all classes.

    Args:
        path: the folder.
        limit: keep only the first `limit` files of that order (None: all).

    Returns:
        FileData.

    Raises:
        DataError: no class subfolders, or no image files in them.
    """
    path = pathlib.Path(path)
    limit = _check_limit(limit, "the example limit")
    fix = ("an image folder needs one subfolder per class holding that class's images "
           f"({', '.join(IMAGE_EXTENSIONS)}), e.g. train/cat/001.jpg, train/dog/002.png")
    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"image folder {path} has no class subfolders: {fix}")
    per_class = [_image_files(path / c) for c in classes]
    if not any(per_class):
        raise DataError(f"image folder {path} has class subfolders {classes[:5]}"
                        f"{'...' if len(classes) > 5 else ''} but no image files in them: {fix}")
    paths, labels = [], []
    for rank in range(max(len(f) for f in per_class)):
        for label, files in enumerate(per_class):
            if rank < len(files):
                paths.append(files[rank])
                labels.append(label)
    if limit is not None:
        paths, labels = paths[:limit], labels[:limit]
    return FileData(paths, np.asarray(labels, np.int32), f"folder {path}", len(classes), classes)


def read_local(path, limit=None):
    """Reads a .npz file or an image folder (see read_npz, read_folder).

    Raises:
        DataError: the path does not exist or is neither an .npz file nor a folder.
    """
    p = pathlib.Path(os.path.expanduser(str(path)))
    if not p.exists():
        raise DataError(f"{p} does not exist: pass an existing .npz file or image folder to "
                        f"{LOCAL_HINT}")
    if p.is_dir():
        return read_folder(p, limit)
    if p.suffix.lower() != ".npz":
        raise DataError(f"{p} is neither an .npz file nor a folder: {LOCAL_HINT}")
    return read_npz(p, limit)


# ------------------------------------------------------------------------- tensorflow-datasets

def class_names(name):
    """The class names of a known dataset, in label order (ImageNet: WordNet synset ids).

    CIFAR names are listed here: tfds learns them only when it prepares the data.
    """
    if name == "cifar10":
        return list(CIFAR10_CLASSES)
    if name == "cifar100":
        return list(CIFAR100_CLASSES)
    return list(tfds_builder(name).info.features["label"].names)


def tfds_builder(name, data_dir=None):
    """The tfds builder of a known dataset (nothing is downloaded or prepared).

    Raises:
        DataError: unknown dataset name.
    """
    if name not in KNOWN_DATASETS:
        raise DataError(f"unknown dataset {name!r}: known datasets are {', '.join(KNOWN_DATASETS)}"
                        f" (or leave --dataset out and pass {LOCAL_HINT})")
    import tensorflow_datasets as tfds
    return tfds.builder(name, data_dir=None if data_dir is None else os.path.expanduser(data_dir))


def data_dir_root(builder):
    """The tfds data_dir a builder reads from (the given one or the tfds default)."""
    return str(getattr(builder, "data_dir_root", os.path.dirname(os.path.dirname(
        builder.data_dir))))


def ensure_prepared(builder, name, download=True, manual_dir=None):
    """Makes sure a tfds dataset is prepared in the builder's data_dir, preparing it if allowed.

    cifar10 / cifar100 are downloaded by tfds when `download` is true and the download host
    answers within a few seconds; imagenet2012 is never downloaded: tfds prepares it from
    ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in `manual_dir`.

    Raises:
        DataError: not prepared and downloading is off, the machine is offline, the ImageNet
            tar files are not in manual_dir, or tfds failed to prepare the dataset.
    """
    if builder.is_prepared():
        return
    import tensorflow_datasets as tfds
    where = builder.data_dir
    alternatives = (f"pass --data_dir with a tfds data_dir where {name} is already prepared, "
                    f"or pass {LOCAL_HINT}")
    if name == "imagenet2012":
        how = (f"imagenet2012 is not prepared in {where} and tfds cannot download it: download "
               f"{' and '.join(IMAGENET_TARS)} from https://image-net.org (registration needed), "
               "put them in one folder and pass it as --manual_dir (tfds then extracts and "
               "prepares the dataset once, which takes hours and ~150 GB); or " + alternatives)
        if manual_dir is None:
            raise DataError(how)
        manual = pathlib.Path(os.path.expanduser(str(manual_dir)))
        missing = [t for t in IMAGENET_TARS if not (manual / t).is_file()]
        if missing:
            raise DataError(f"--manual_dir {manual} lacks {', '.join(missing)}. " + how)
        if not download:
            raise DataError(f"imagenet2012 is not prepared in {where} and preparing is off "
                            "(--download false): allow --download to prepare it from "
                            f"--manual_dir {manual}, or " + alternatives)
    else:
        if not download:
            raise DataError(f"{name} is not prepared in {where} and downloading is off "
                            "(--download false): " + alternatives + ", or allow --download")
        url = DOWNLOAD_URLS[name]
        if not probe_connectivity(url):
            raise DataError(f"{name} is not prepared in {where} and this machine cannot reach "
                            f"{urllib.parse.urlsplit(url).netloc} to download it (offline?): "
                            + alternatives)
    config = tfds.download.DownloadConfig(
        manual_dir=None if manual_dir is None else os.path.expanduser(str(manual_dir)))
    try:
        builder.download_and_prepare(download_config=config)
    except Exception as e:  # tfds raises many kinds; all mean the same thing to the user
        raise DataError(f"tfds could not download and prepare {name} in {where} ({e}): "
                        + alternatives) from e


def _split_size(builder, split):
    try:
        n = builder.info.splits[split].num_examples
    except (KeyError, ValueError, TypeError):
        return None
    return int(n) if n else None


def _sliced(builder, split, limit):
    """The tfds split string for the first `limit` examples, clamped to the split's size
    (tfds rejects slices past the end); no slice when the size is unknown (tfds' mock)."""
    known = _split_size(builder, split)
    if limit is None or known is None:
        return split, known
    if limit >= known:
        return split, known
    return f"{split}[:{limit}]", limit


def read_tfds_arrays(builder, name, split, limit=None):
    """Loads a small tfds split (cifar10, cifar100) into memory.

    Returns:
        ArrayData (sizes come from the data itself).
    """
    limit = _check_limit(limit, "the example limit")
    spec, _ = _sliced(builder, split, limit)
    ds = builder.as_dataset(split=spec, as_supervised=True, shuffle_files=False)
    if limit is not None:
        ds = ds.take(limit)
    xs, ys = [], []
    for x, y in ds.batch(8192).as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    if not xs:
        raise DataError(f"tfds split {name}/{spec} in {builder.data_dir} is empty: pass "
                        f"--data_dir with a complete prepared copy, or {LOCAL_HINT}")
    x = np.concatenate(xs)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    names = class_names(name)
    return ArrayData(np.ascontiguousarray(x, np.uint8), np.concatenate(ys).astype(np.int32),
                     f"tfds {name}/{spec}", len(names), names)


def read_tfds_files(builder, name, split, limit=None):
    """Opens a large file-based tfds split (imagenet2012) for reading with encoded images.

    Returns:
        TfdsFileData. The size is the split's size from the dataset info, or counted from the
        data when the info has no splits (tfds' mock_data).
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds
    limit = _check_limit(limit, "the example limit")
    spec, size = _sliced(builder, split, limit)
    if size is None:
        ds = builder.as_dataset(split=spec, as_supervised=True, shuffle_files=False,
                                decoders={"image": tfds.decode.SkipDecoding()})
        if limit is not None:
            ds = ds.take(limit)
        size = int(ds.map(lambda image, label: label).reduce(
            tf.constant(0, tf.int64), lambda n, _: n + 1))
    if size == 0:
        raise DataError(f"tfds split {name}/{spec} in {builder.data_dir} is empty: pass "
                        f"--data_dir with a complete prepared copy, or {LOCAL_HINT}")
    names = class_names(name)
    return TfdsFileData(builder, spec, limit, size, f"tfds {name}/{spec}", len(names), names)
