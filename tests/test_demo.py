"""The `make demo` job, tiny: real CIFAR-10 images, both models, results.json."""

import json

import numpy as np
import pytest

from keras_pkkd import demo


def test_demo_end_to_end(cifar10, tmp_path):
    results = demo.main(["--train_images=256", "--test_images=128", "--epochs=1",
                         "--batch_size=64", "--width=8", f"--out={tmp_path}"])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["train_images"] == 256 and saved["test_images"] == 128
    for kind in ("conv", "adder"):
        res = saved["models"][kind]
        assert 0.0 <= res["test_accuracy"] <= 1.0
        assert res["median_step_ms"] > 0
        assert np.isfinite(res["history"]["loss"]).all()
        assert (tmp_path / f"{kind}.keras").exists()
    # The ANN keeps multiplications only in its first conv and classifier.
    assert saved["models"]["adder"]["multiplications_per_image"] < \
        saved["models"]["conv"]["multiplications_per_image"] / 5
    assert results["ann_step_time_over_cnn"] > 0


def test_demo_reports_missing_data(tmp_path):
    with pytest.raises(SystemExit, match="must hold train_20k.npz"):
        demo.main([f"--data_dir={tmp_path}", f"--out={tmp_path / 'out'}"])


def test_demo_rejects_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        demo.main(["--epochs=0", f"--out={tmp_path}"])
