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
