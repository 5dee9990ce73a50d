"""`python -m keras_pkkd.train` and `python -m keras_pkkd.evaluate` end to end on a few hundred
real CIFAR-10 images: results, resume after a kill, errors, strategies, fixed teacher."""

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pkkd import evaluate, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(files, model_dir, *extra, examples=192, epochs=2, batch=64):
    train_npz, test_npz = files
    return ["--flagfile=resnet20.flags", f"--train_data={train_npz}",
            f"--eval_data={test_npz}", f"--train_examples={examples}", "--eval_examples=128",
            f"--epochs={epochs}", f"--batch_size={batch}", f"--model_dir={model_dir}",
            "--verbose=2", *extra]


def run_cli(module, argv, env_extra=None, **kwargs):
    # oneDNN off: with it, PKKD's overlapping ops differ between runs in the last bits.
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0",
               **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-m", module, *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)


def test_pkkd_run_end_to_end_and_evaluate(cifar10_files, tmp_path, monkeypatch):
    model_dir = tmp_path / "run"
    results = train.main(tiny(cifar10_files, model_dir))
    saved = json.loads((model_dir / "results.json").read_text())
    assert saved["steps"] == 2 * 3 == results["steps"]
    assert (saved["model"], saved["method"], saved["feature_kd"], saved["teacher_mode"]) == \
        ("resnet20", "pkkd", "kernel_conv", "progressive")
    for role in ("student", "teacher"):
        r = saved[role]
        assert r["examples"] == 128
        assert 0.0 <= r["top1"] <= r["top5"] <= 1.0 and np.isfinite(r["loss"])
    assert saved["ops_per_image"]["student"]["multiplications"] == 443_008
    assert saved["ops_per_image"]["teacher"]["multiplications"] > 40_000_000
    assert saved["params"]["student"]["trainable"] == saved["params"]["teacher"]["trainable"]
    assert saved["wall_time_s"] > 0 and saved["train_images_per_s"] > 0
    assert len(saved["history"]["loss"]) == 2 and len(saved["history"]["val_accuracy"]) == 2
    for name in ("flags.txt", "flags.json", "log.csv", "model.keras", "teacher.keras",
                 "curves.png", "progress.json"):
        assert (model_dir / name).exists(), name
    # Diagnostics: every loss part and both head norms, per epoch (CSV, results.json and
    # TensorBoard), the last epoch's parts and the heads' first / last norms in results.json.
    parts = ("loss", "ce", "kd", "feat", "teacher_loss", "student_head_norm",
             "teacher_head_norm")
    for key in parts:
        assert len(saved["history"][key]) == 2 and all(np.isfinite(saved["history"][key])), key
    diag = saved["diagnostics"]
    assert diag["loss_parts"]["feat"] == saved["history"]["feat"][-1] > 0
    assert diag["head_norms"]["student_head_norm"]["first"] == \
        saved["history"]["student_head_norm"][0] > 0
    assert diag["collapsed_heads"] == []
    assert saved["bn_recalibration_batches"] == 3  # precise BN over the 3 training batches
    tags = set()
    for events in (model_dir / "logs").rglob("*tfevents*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            tags.update(v.tag for v in event.summary.value)
    assert {f"epoch_{k}" for k in parts} <= tags, sorted(tags)
    # The deployable ANN alone, and the evaluate CLI on the run directory agrees with it.
    ann = keras.models.load_model(model_dir / "model.keras")
    assert ann.name.startswith("resnet20_adder")
    again = evaluate.main([f"--model_dir={model_dir}", "--eval_examples=128"])
    assert again["student"]["top1"] == pytest.approx(saved["student"]["top1"])
    assert again["teacher"]["top1"] == pytest.approx(saved["teacher"]["top1"])
    # ... and from the checkpoint (the state a running job evaluates).
    ckpt = evaluate.main([f"--model_dir={model_dir}", "--eval_examples=128",
                          "--from_checkpoint", f"--output={tmp_path / 'e.json'}"])
    assert ckpt["student"]["top1"] == pytest.approx(saved["student"]["top1"])
    # Running the finished run again trains nothing and keeps the figures.
    rerun = train.main(tiny(cifar10_files, model_dir))
    assert rerun["steps"] == 6 and rerun["student"]["top1"] == saved["student"]["top1"]
    # A relative --model_dir (the recipes' runs/<recipe> is one) restores its checkpoint too.
    monkeypatch.chdir(tmp_path)
    rel = evaluate.main(["--model_dir=run", "--eval_examples=128", "--from_checkpoint"])
    assert rel["student"]["top1"] == pytest.approx(ckpt["student"]["top1"])


def test_evaluate_recomputes_bn_statistics_as_the_trainer_does(cifar10_files, tmp_path):
    """`evaluate --bn_recalibration_batches=N` on a run trained without precise BN gives the
    figures the trainer's own precise BN gives (the finished run invoked again with N), differs
    from the moving averages', and saves nothing."""
    model_dir = tmp_path / "run"
    argv = tiny(cifar10_files, model_dir, "--method=ann", epochs=1)
    plain = train.main([*argv, "--bn_recalibration_batches=0"])["student"]
    ev = ["--eval_examples=128"]   # the run's
    moving = evaluate.main([f"--model_dir={model_dir}", "--from_checkpoint", *ev])["student"]
    assert moving["loss"] == pytest.approx(plain["loss"], rel=1e-5)
    got = evaluate.main([f"--model_dir={model_dir}", "--from_checkpoint", *ev,
                         "--bn_recalibration_batches=2"])
    assert got["bn_recalibration_batches"] == 2
    assert abs(got["student"]["loss"] - moving["loss"]) > 0.01 * moving["loss"]
    again = evaluate.main([f"--model_dir={model_dir}", "--from_checkpoint", *ev])["student"]
    assert again["loss"] == pytest.approx(moving["loss"], rel=1e-5)   # nothing was saved
    trainer = train.main([*argv, "--bn_recalibration_batches=2"])
    assert trainer["bn_recalibration_batches"] == 2 and trainer["steps"] == 3
    assert got["student"]["loss"] == pytest.approx(trainer["student"]["loss"], rel=1e-4)
    assert got["student"]["top1"] == pytest.approx(trainer["student"]["top1"])


def test_validation_bn_batches_validates_with_recomputed_statistics(cifar10_files, tmp_path):
    """--validation_bn_batches=N: each per-epoch validation follows precise BN over the same N
    batches the final evaluation uses, so the last epoch's val_accuracy and val loss equal the
    final figures (with the moving averages they do not); training itself is unchanged."""
    def run(name, *extra):
        model_dir = tmp_path / name
        res = train.main(tiny(cifar10_files, model_dir, "--method=ann", "--seed=3", *extra,
                              "--bn_recalibration_batches=2", "--deterministic", epochs=1))
        return res, res["history"]

    res, hist = run("precise", "--validation_bn_batches=2")
    assert hist["val_accuracy"][-1] == pytest.approx(res["student"]["top1"])
    assert hist["val_top5"][-1] == pytest.approx(res["student"]["top5"])
    base, base_hist = run("moving")
    assert abs(base_hist["val_loss"][-1] - hist["val_loss"][-1]) > 0.01 * hist["val_loss"][-1]
    # The same weights: the training losses match and so do the final (precise BN) figures.
    assert base_hist["loss"] == pytest.approx(hist["loss"], rel=1e-6)
    assert base["student"]["loss"] == pytest.approx(res["student"]["loss"], rel=1e-5)


def test_evaluate_bn_recalibration_errors(tmp_path, capsys):
    for argv, message in ((["--model=m.keras", "--bn_recalibration_batches=2"],
                           "needs --model_dir"),
                          ([f"--model_dir={tmp_path}", "--bn_recalibration_batches=-1"],
                           "must be >= 0")):
        with pytest.raises(SystemExit):
            evaluate.main(argv)
        assert message in capsys.readouterr().err


def _checkpoint_values(path):
    reader = tf.train.load_checkpoint(str(path))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if "save_counter" not in k and k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_kill_and_resume_matches_an_uninterrupted_run(cifar10_files, tmp_path):
    """SIGKILL after the first checkpoint; the rerun resumes with the saved step count and
    optimizer state, and ends where a run that was never interrupted ends."""
    args = ["--deterministic", "--validate_every=0", "--lr=0.005"]
    whole = run_cli("keras_pkkd.train", tiny(cifar10_files, tmp_path / "whole", *args,
                                              epochs=3))
    victim = run_cli("keras_pkkd.train", tiny(cifar10_files, tmp_path / "killed", *args,
                                               epochs=3))
    ckpt_dir = tmp_path / "killed" / "checkpoints"

    def recorded():
        # A checkpoint counts once the `checkpoint` state file (written atomically after the
        # data and index files) names it: killed before that, a run rightly starts over.
        state = tf.train.get_checkpoint_state(str(ckpt_dir)) if ckpt_dir.exists() else None
        return [] if state is None else list(state.all_model_checkpoint_paths)

    deadline = time.time() + 240
    while not recorded() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    victim.kill()
    victim_out, _ = victim.communicate()
    assert recorded(), f"the first epoch's checkpoint never appeared:\n{victim_out}"
    assert not (tmp_path / "killed" / "results.json").exists(), "killed after the run ended"
    out, _ = whole.communicate(timeout=300)
    assert whole.returncode == 0, out

    last = max(int(os.path.basename(p).split("-")[1]) for p in recorded())
    resumed = run_cli("keras_pkkd.train", tiny(cifar10_files, tmp_path / "killed", *args,
                                                epochs=3))
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert f"resuming from the checkpoint of epoch {last} " in out
    assert f"(step {3 * last})" in out
    results = json.loads((tmp_path / "killed" / "results.json").read_text())
    assert results["steps"] == 9 and results["resumed_from"] == [last]
    assert len(results["history"]["loss"]) == 3
    a = _checkpoint_values(tmp_path / "whole" / "checkpoints" / "ckpt-3")
    b = _checkpoint_values(tmp_path / "killed" / "checkpoints" / "ckpt-3")
    assert a.keys() == b.keys()
    # momentum slots of both optimizers, and their iteration counts, are compared too
    assert any(k.startswith("optimizer/_variables/") for k in a)
    assert any(k.startswith("teacher_optimizer/_variables/") for k in a)
    # Equal up to float reassociation: CPU kernels that split work across threads are not
    # bit-reproducible under load (both runs share 2 cores here), and a small learning rate
    # keeps those last-bit differences from growing chaotically (seen: up to 1.2e-3 relative).
    # A resume that lost the momentum, the step count (the schedule) or the data order
    # changes every tensor by O(1).
    # The momentum buffers get a wider bound: they hold raw gradients (torch.optim.SGD's rule),
    # the last step's at full weight, and a gradient amplifies those last-bit differences of
    # the weights (seen: weights within 1e-5, buffers up to 4.6e-2 relative); Keras' buffers
    # scaled the last gradients by the final, near-zero learning rate.
    for key in a:
        if "iterations" in key or key.startswith("epoch"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            diff = np.linalg.norm(a[key] - b[key]) / max(np.linalg.norm(a[key]), 1e-12)
            bound = 0.15 if "optimizer/_variables/" in key else 2e-2
            assert diff < bound, (key, diff)


def _fails(argv, capsys, match, code=1):
    with pytest.raises(SystemExit) as exc:
        train.main(argv)
    assert exc.value.code == code
    err = capsys.readouterr().err
    assert match in err, err
    return err


def test_missing_data_and_bad_resume_fail_clearly(cifar10_files, tmp_path, capsys):
    train_npz, test_npz = cifar10_files
    _fails(["--flagfile=resnet20.flags", f"--train_data={tmp_path / 'nope.npz'}",
            f"--eval_data={test_npz}", f"--model_dir={tmp_path / 'a'}"], capsys, "nope.npz")
    model_dir = tmp_path / "run"
    train.main(tiny(cifar10_files, model_dir, "--method=ann", epochs=1))
    _fails(tiny(cifar10_files, model_dir, "--method=ann", "--noresume", epochs=1), capsys,
           "already holds checkpoints")
    _fails(tiny(cifar10_files, model_dir, "--method=cnn", epochs=1), capsys,
           "--method: 'ann' -> 'cnn'")
    # A corrupt newest checkpoint: reported, and the one before it is used.
    train.main(tiny(cifar10_files, model_dir, "--method=ann", epochs=2))
    (model_dir / "checkpoints" / "ckpt-2.data-00000-of-00001").write_bytes(b"garbage")
    (model_dir / "results.json").unlink()
    out = train.main(tiny(cifar10_files, model_dir, "--method=ann", epochs=2))
    assert out["resumed_from"][-1] == 1 and out["steps"] == 6


def test_fixed_teacher_from_a_cnn_run(cifar10_files, tmp_path, capsys):
    cnn_dir = tmp_path / "cnn"
    train.main(tiny(cifar10_files, cnn_dir, "--method=cnn", epochs=1))
    teacher = keras.models.load_model(cnn_dir / "model.keras")
    res = train.main(tiny(cifar10_files, tmp_path / "fixed", "--teacher=fixed",
                          f"--teacher_model={cnn_dir}", "--feature_kd=raw", epochs=1))
    assert res["teacher_mode"] == "fixed" and res["feature_kd"] == "raw"
    kept = keras.models.load_model(tmp_path / "fixed" / "teacher.keras")
    for a, b in zip(teacher.get_weights(), kept.get_weights()):
        np.testing.assert_array_equal(a, b)  # frozen: BN statistics included
    _fails(tiny(cifar10_files, tmp_path / "bad", "--teacher=fixed",
                f"--teacher_model={tmp_path / 'fixed'}", epochs=1), capsys,
           "must be a CNN")


@pytest.mark.parametrize("method,extra", [("bnn", []), ("mmd", []), ("kd", []),
                                          ("pkkd", ["--mixed_precision=float16",
                                                    "--warmup_epochs=0.5",
                                                    "--lr_schedule=constant"])])
def test_other_methods_and_settings_train(method, extra, cifar10_files, tmp_path):
    res = train.main(tiny(cifar10_files, tmp_path / method, f"--method={method}", *extra,
                          epochs=1, examples=128, batch=64))
    assert res["steps"] == 2 and np.isfinite(res["student"]["loss"])
    if method == "bnn":
        assert res["ops_per_image"]["student"]["xnor"] > 0
    # The global precision policy is restored after the run.
    assert keras.mixed_precision.global_policy().name == "float32"


def test_mirrored_on_two_logical_cpus_with_bfloat16(cifar10_files, tmp_path):
    proc = run_cli("keras_pkkd.train", tiny(
        cifar10_files, tmp_path / "m", "--strategy=mirrored", "--cpu_devices=2",
        "--mixed_precision=bfloat16", epochs=1, examples=128))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    res = json.loads((tmp_path / "m" / "results.json").read_text())
    assert res["replicas"] == 2 and res["steps"] == 2 and res["mixed_precision"] == "bfloat16"
    assert np.isfinite(res["student"]["loss"])


def test_evaluate_errors_are_clear(tmp_path, capsys):
    for argv, message in ((["--batch_size=8"], "give --model_dir"),
                          ([f"--model_dir={tmp_path}"], "flags.json not found")):
        with pytest.raises(SystemExit):
            evaluate.main(argv)
        assert message in capsys.readouterr().err
    (tmp_path / "flags.json").write_text("{not json")
    with pytest.raises(SystemExit):
        evaluate.main([f"--model_dir={tmp_path}"])
    assert "not valid JSON" in capsys.readouterr().err


def _free_ports(n):
    import socket
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multi_worker_with_two_local_workers(cifar10_files, tmp_path):
    """MultiWorkerMirroredStrategy through TF_CONFIG, two worker processes on this machine:
    one global batch split over both, the chief alone writes results and checkpoints."""
    workers = [f"localhost:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        config = json.dumps({"cluster": {"worker": workers},
                             "task": {"type": "worker", "index": index}})
        procs.append(run_cli("keras_pkkd.train", tiny(
            cifar10_files, tmp_path / "mw", "--strategy=multi_worker", epochs=1, examples=128),
            env_extra={"TF_CONFIG": config}))
    outs = [p.communicate(timeout=400)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out
    res = json.loads((tmp_path / "mw" / "results.json").read_text())
    assert res["replicas"] == 2 and res["strategy"] == "multi_worker" and res["steps"] == 2
    assert np.isfinite(res["student"]["loss"]) and res["student"]["examples"] == 128
    assert "[keras_pkkd] results:" in outs[0] and "[keras_pkkd] results:" not in outs[1]
    assert sorted(p.name for p in (tmp_path / "mw" / "checkpoints").glob("ckpt-*.index")) == \
        ["ckpt-1.index"]


def test_diagnostics_name_a_collapsing_head():
    from keras_pkkd.training.runner import _diagnostics
    history = {"loss": [3.0, 2.0], "ce": [2.3, 1.9], "feat": [0.5, 0.1],
               "student_head_norm": [5.0, 0.3], "teacher_head_norm": [5.0, 4.0]}
    diag = _diagnostics(history)
    assert diag["loss_parts"] == {"loss": 2.0, "ce": 1.9, "feat": 0.1}
    assert diag["head_norms"]["teacher_head_norm"] == {"first": 5.0, "last": 4.0}
    assert diag["collapsed_heads"] == ["student_head_norm"]
    assert "head_norms" not in _diagnostics({"loss": [1.0]})
