import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = pathlib.Path(__file__).resolve().parents[1]
CIFAR_DIR = ROOT.parent / "shared" / "data" / "cifar10"


@pytest.fixture(params=["compiled", "python"])
def op_path(request, monkeypatch):
    """Runs a test on the compiled kernels and on the pure-TF path.

    The compiled case fails (it does not skip) when the library is unusable: `make test`
    builds it, and a test suite that silently skipped the kernels would prove nothing.
    """
    monkeypatch.setenv("KERAS_PKKD_OPS", request.param)
    return request.param


@pytest.fixture
def cifar10(cifar10_files):
    """The shared real CIFAR-10 arrays (np.load of train_20k, test_10k); skips when absent."""
    import numpy as np
    return tuple(np.load(path) for path in cifar10_files)


@pytest.fixture
def cifar10_files():
    """Paths of the shared real CIFAR-10 .npz files (train_20k, test_10k); skips when absent."""
    train = CIFAR_DIR / "train_20k.npz"
    test = CIFAR_DIR / "test_10k.npz"
    if not (train.exists() and test.exists()):
        pytest.skip(f"real CIFAR-10 files not found under {CIFAR_DIR} (shared data is absent)")
    return train, test


def prepared_for_export(model, images, seed=0):
    """An untrained network made export-worthy: BN statistics from `images` (else an adder
    network's activations are dead) and random classifier weights (so that logits differ
    between images and top-1 comparisons mean something)."""
    import keras
    import numpy as np

    from keras_pkkd.training.precise_bn import recalibrate_batchnorm

    rng = np.random.RandomState(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            layer.set_weights([rng.randn(*w.shape).astype(np.float32) * 0.5
                               for w in layer.get_weights()])
    recalibrate_batchnorm(model, [images[i:i + 32] for i in range(0, len(images), 32)],
                          max(1, len(images) // 32))
    return model
