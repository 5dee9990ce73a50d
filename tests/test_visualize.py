"""keras_pkkd.visualize: every command writes PNGs of the expected size, and the numbers behind
them agree with a direct computation. Networks are tiny (or ResNet-20 where the zoo is needed)
and never trained beyond a few steps."""

import json
import math
import struct

import numpy as np
import pytest

from keras_pkkd.visualize import __main__ as cli
from keras_pkkd.visualize import ops_energy
from keras_pkkd.visualize.runs import DPI, VisualizeError


def png_size(path):
    """(width, height) from a PNG's IHDR chunk; checks the file is a non-empty PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert len(data) > 1000, path
    return struct.unpack(">II", data[16:24])


def figure_pixels(figsize):
    return tuple(int(round(v * DPI)) for v in figsize)


def run_cli(argv, capsys):
    result = cli.main(argv)
    out = capsys.readouterr().out
    for path in result["paths"]:
        assert f"written: {path}" in out
    return result, out


def cli_exit(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    return e.value.code, capsys.readouterr().err


# ---------------------------------------------------------------------------------------- ops

@pytest.fixture(scope="module")
def resnet20_ops(tmp_path_factory):
    out = tmp_path_factory.mktemp("ops")
    return out, ops_energy.ops(model="resnet20", output=str(out), dtype="float32")


def test_ops_table_is_count_ops_of_each_kind(resnet20_ops):
    from keras_pkkd import models

    _, result = resnet20_ops
    assert [r["label"] for r in result["rows"]] == ["CNN", "BNN", "ANN"]
    for row in result["rows"]:
        net = models.resnet20(row["kind"])
        assert {k: row[k] for k in ("multiplications", "additions", "xnor")} == \
            models.count_ops(net)
        assert row["parameters"] == sum(math.prod(w.shape) for w in net.trainable_weights)
    # docs/models.md's figures
    cnn, bnn, ann = result["rows"]
    assert cnn["multiplications"] == 40_813_184 and ann["additions"] == 81_183_370
    assert bnn["xnor"] == 40_370_176 and cnn["parameters"] == 272_474


def test_ops_energy_by_hand(resnet20_ops):
    _, result = resnet20_ops
    cnn, bnn, ann = result["rows"]
    # Horowitz ISSCC 2014, float32: multiply 3.7 pJ, add 0.9 pJ; XNOR assumed 0.03 pJ.
    assert cnn["energy_pj"]["total"] == pytest.approx(40_813_184 * 3.7 + 40_813_194 * 0.9)
    assert ann["energy_pj"]["total"] == pytest.approx(443_008 * 3.7 + 81_183_370 * 0.9)
    assert bnn["energy_pj"]["total"] == pytest.approx(
        443_008 * 3.7 + 40_813_194 * 0.9 + 40_370_176 * 0.03)
    counts = {"multiplications": 1000, "additions": 2000, "xnor": 3000}
    for dtype, (mul, add) in {"float32": (3.7, 0.9), "float16": (1.1, 0.4),
                              "int32": (3.1, 0.1), "int8": (0.2, 0.03)}.items():
        e = ops_energy.energy_pj(counts, dtype, xnor_pj=0.5)
        assert e["total"] == pytest.approx(1000 * mul + 2000 * add + 3000 * 0.5)
    with pytest.raises(VisualizeError, match="unknown dtype"):
        ops_energy.energy_pj(counts, "bfloat16")


def test_ops_outputs(resnet20_ops):
    out, result = resnet20_ops
    png, md = result["paths"]
    assert png == out / "ops_resnet20_float32.png"
    assert png_size(png) == figure_pixels(ops_energy.FIGSIZE)
    text = md.read_text()
    assert "Horowitz" in text and "ISSCC 2014" in text and "ASSUMED" in text
    assert "| ANN | 443,008 (0.44M) | 81,183,370 (81.18M) | 0 | 272,474 | 74.70 µJ |" in text


def test_ops_cli_saved_network_and_dtype(tmp_path, capsys):
    from keras_pkkd import models

    net = models.resnet20("adder", num_classes=7, input_shape=(16, 16, 3))
    net.save(tmp_path / "ann.keras")
    result, out = run_cli(["ops", f"--model={tmp_path / 'ann.keras'}", "--dtype=int8",
                           f"--output={tmp_path / 'o'}"], capsys)
    assert "energy / image (int8)" in out and "int8 multiply 0.2 pJ, add 0.03 pJ" in out
    ann = result["rows"][2]
    assert ann == {**ann, **models.count_ops(net)}
    assert png_size(result["paths"][0]) == figure_pixels(ops_energy.FIGSIZE)


def test_ops_errors(tmp_path, capsys):
    code, err = cli_exit(["ops", f"--output={tmp_path}"], capsys)
    assert code == 2 and "--model" in err
    code, err = cli_exit(["ops", "--model=resnet20", "--dtype=bfloat16"], capsys)
    assert code == 2 and "--dtype" in err
    code, err = cli_exit(["ops", "--model=resnet99", f"--output={tmp_path}"], capsys)
    assert code == 1 and "unknown model 'resnet99'" in err
    code, err = cli_exit(["ops", f"--model_dir={tmp_path / 'nope'}"], capsys)
    assert code == 1 and "no such folder" in err
    code, err = cli_exit(["ops", f"--model={tmp_path / 'nope.keras'}"], capsys)
    assert code == 1 and "nope.keras not found" in err
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "flags.json").write_text(json.dumps({"model": "resnet20"}))
    code, err = cli_exit(["ops", f"--model_dir={tmp_path / 'run'}", "--xnor_pj=-1"], capsys)
    assert code == 2 and "--xnor_pj" in err
