"""The `make demo` job, tiny: real CIFAR-10 images, CNN, ANN and PKKD, results.json."""

import json

import numpy as np
import pytest

from keras_pkkd import demo


def test_demo_end_to_end(cifar10, tmp_path):
    results = demo.main(["--train_images=128", "--test_images=64", "--epochs=1",
                         "--batch_size=64", f"--out={tmp_path}"])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["train_images"] == 128 and saved["test_images"] == 64
    assert set(saved["runs"]) == {"cnn", "ann", "pkkd"}
    for run, res in saved["runs"].items():
        assert 0.0 <= res["test_accuracy"] <= 1.0
        assert res["median_step_ms"] > 0
        assert np.isfinite(res["history"]["loss"]).all()
        assert (tmp_path / f"{run}.keras").exists()
    assert 0.0 <= saved["runs"]["pkkd"]["teacher_test_accuracy"] <= 1.0
    # The ANNs keep multiplications only in the stem conv and the classifier.
    assert saved["runs"]["ann"]["ops_per_image"]["multiplications"] == 443_008
    assert saved["runs"]["pkkd"]["ops_per_image"] == saved["runs"]["ann"]["ops_per_image"]
    assert results["runs"]["cnn"]["ops_per_image"]["multiplications"] > 40_000_000


def test_demo_reports_missing_data(tmp_path):
    with pytest.raises(SystemExit, match="must hold train_20k.npz"):
        demo.main([f"--data_dir={tmp_path}", f"--out={tmp_path / 'out'}"])


@pytest.mark.parametrize("bad", ["--epochs=0", "--sigma=0", "--runs=bnn"])
def test_demo_rejects_bad_arguments(bad, tmp_path):
    with pytest.raises(SystemExit):
        demo.main([bad, f"--out={tmp_path}"])
