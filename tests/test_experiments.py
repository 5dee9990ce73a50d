"""experiments/ (issue #12's evidence runs): the plan, the driver's skip / copy / crash /
dependency logic on a fake trainer in a temporary root, --dry_run, the report's statistics and
pending list on fake results, and one tiny real run through the driver."""

import json
import os
import pathlib
import shlex
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np
import pytest

from experiments import plan
from experiments import run as driver_mod

ROOT = pathlib.Path(__file__).resolve().parents[1]


# --- the plan --------------------------------------------------------------------------------

def test_plan_is_well_formed():
    names = [r.name for r in plan.PLAN]
    assert len(names) == len(set(names))
    position = {n: i for i, n in enumerate(names)}
    for r in plan.PLAN:
        assert r.recipe_path.is_file(), r.recipe
        assert (r.paper_top1() is not None or r.group == "cnn_kernel"
                or r.label.get("feature_kd") == "none"), r.recipe
        for dep in r.depends_on:
            assert position[dep] < position[r.name], (dep, r.name)
        assert r.epochs == (plan.MAIN_EPOCHS if r.group in ("main", "confirm")
                            else plan.SMALL_EPOCHS)
    main = [r for r in plan.PLAN if r.group == "main"]
    assert {(r.label["method"], r.seed) for r in main} == \
        {(m, s) for m in plan.MAIN_METHODS for s in plan.MAIN_SEEDS} | \
        {(m, s) for m in plan.SECOND for s in plan.EXTRA_SEEDS}
    assert names[:5] == [f"main_{m}_e15_s0" for m in ("pkkd", "ann", "cnn", "mmd", "bnn")]
    assert names[5:9] == ["main_ann_e15_s1", "main_pkkd_e15_s1", "main_ann_e15_s2",
                          "main_pkkd_e15_s2"]
    # The extra seeds of the central comparison come after every required main-table seed and
    # before the small-budget runs.
    extra = [position[f"main_{m}_e15_s{s}"] for m in plan.SECOND for s in plan.EXTRA_SEEDS]
    required = [position[f"main_{m}_e15_s{s}"] for m in plan.MAIN_METHODS
                for s in plan.MAIN_SEEDS]
    small = [position[r.name] for r in plan.PLAN if r.group not in ("main", "confirm")]
    assert max(required) < min(extra) and max(extra) < min(small)
    # The ablation's winner at the main budget runs last, after every small-budget run, with
    # the PKKD recipe and only --feature_kd changed.
    confirm = [r for r in plan.PLAN if r.group == "confirm"]
    assert [r.seed for r in confirm] == list(plan.CONFIRM_SEEDS) and len(confirm) >= 3
    assert min(position[r.name] for r in confirm) > max(small)
    assert all(r.recipe == "resnet20_cifar10_pkkd.flags"
               and r.overrides == (("feature_kd", plan.CONFIRM_KD),) for r in confirm)
    fixed = [r for r in plan.PLAN if r.label.get("teacher") == "fixed"]
    assert len(fixed) == 5 and all(r.depends_on == (plan.TEACHER_RUN,) for r in fixed)
    # The sigma sweep is the first of the small-budget runs; the ablation has its control.
    assert plan.PLAN[len(main)].group == "sigma"
    assert {"ablation_none_fixed_e5_s0", "ablation_none_progressive_e5_s0"} <= set(names)
    # Every cell of the small-budget tables is a run or an alias of one.
    for alias, (target, _) in plan.ALIASES.items():
        assert alias not in plan.BY_NAME and target in plan.BY_NAME
    assert plan.paper_top1(plan.RECIPES_DIR / "resnet20_cifar10_ann.flags") == 92.02


def test_plan_commands_parse_and_aliases_are_the_same_configuration(tmp_path):
    """Every planned command is a valid CLI invocation (recipe overrides applied), and the
    runs shared by several table cells resolve to the same flags but for --model_dir."""
    from keras_pkkd import train
    from keras_pkkd.flags import student_feature_kd

    def resolved(cfg):  # feature_kd=default means the method's own (pkkd: kernel_conv)
        return dict(vars(cfg), model_dir=None, feature_kd=student_feature_kd(cfg))

    d = driver_mod.Driver(plan.PLAN, runs_root=tmp_path / "runs", evidence_root=tmp_path / "ev")
    cfgs = {}
    for r in plan.PLAN:
        cfg, _ = train.parse(d.argv(r)[3:])
        assert cfg.epochs == r.epochs and cfg.seed == r.seed
        assert cfg.model_dir == str(tmp_path / "runs" / r.name)
        assert cfg.model == "resnet20" and cfg.dataset == "cifar10"
        assert cfg.train_data == str(d.train_data) and os.path.isabs(cfg.train_data)
        if r.label.get("teacher") == "fixed":
            assert cfg.teacher == "fixed"
            assert cfg.teacher_model == str(tmp_path / "runs" / plan.TEACHER_RUN)
        cfgs[r.name] = resolved(cfg)
    shared = cfgs[plan.SHARED_DEFAULT_RUN]
    alias_argv = {
        "ablation": ["--flagfile=ablation_kernel_conv_progressive.flags"],
        "cnn_kernel": ["--flagfile=resnet20_cifar10_pkkd.flags", "--cnn_kernel=a"],
    }
    for extra in alias_argv.values():
        argv = d.argv(plan.BY_NAME[plan.SHARED_DEFAULT_RUN])[3:]
        argv = extra + [a for a in argv if not a.startswith("--flagfile=")]
        cfg, _ = train.parse(argv)
        assert resolved(cfg) == shared
    # The small-budget spread runs are the shared run with another seed.
    spread = [r for r in plan.PLAN if r.group == "spread"]
    assert [r.seed for r in spread] == list(plan.SPREAD_SEEDS)
    assert plan.SMALL_SEED not in plan.SPREAD_SEEDS
    for r in spread:
        assert dict(cfgs[r.name], seed=plan.SMALL_SEED) == shared
    # They come right after the sigma sweep: every small-budget verdict is judged by them.
    first = [r.group for r in plan.PLAN].index("spread")
    assert [r.group for r in plan.PLAN[first - len(plan.SIGMAS):first]] == ["sigma"] * len(
        plan.SIGMAS)
    assert [r.name for r in plan.PLAN[first:first + len(spread)]] == [r.name for r in spread]


# --- the driver on a fake trainer ------------------------------------------------------------

FAKE_TRAINER = r'''#!/usr/bin/env python3
"""Stands in for `python -m keras_pkkd.train`: records its argv and environment, writes the
files of a finished run into --model_dir (or exits 3 when the model_dir name contains 'crash')."""
import json, os, pathlib, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[3:] if a.startswith("--") and "=" in a)
d = pathlib.Path(args["model_dir"])
d.mkdir(parents=True, exist_ok=True)
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "threads": os.environ.get("TF_NUM_INTRAOP_THREADS")}) + "\n")
if "crash" in os.environ.get("FAKE_CRASH", "") and d.name in os.environ["FAKE_CRASH"]:
    print("Traceback: boom"); sys.exit(3)
(d / "checkpoints").mkdir(exist_ok=True)
(d / "checkpoints" / "ckpt-1.index").write_text("x")
(d / "model.keras").write_text("weights")
(d / "flags.txt").write_text("--seed=" + args["seed"] + "\n")
(d / "log.csv").write_text("epoch,accuracy,val_accuracy\n0,0.3,0.25\n1,0.5,0.45\n")
(d / "progress.json").write_text(json.dumps({"finished_epochs": int(args["epochs"])}))
(d / "curves.png").write_bytes(b"\x89PNG fake")
(d / "results.json").write_text(json.dumps({"student": {"top1": 0.5, "examples": 10000},
    "epochs": int(args["epochs"]), "train_images_per_s": 100.0}))
print("trained")
'''


@pytest.fixture
def fake(tmp_path, monkeypatch):
    script = tmp_path / "fake_python"
    script.write_text(FAKE_TRAINER)
    script.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    monkeypatch.setenv("FAKE_CRASH", "")

    def driver(runs, **kw):
        return driver_mod.Driver(runs, runs_root=tmp_path / "runs",
                                 evidence_root=tmp_path / "evidence", python=str(script),
                                 all_runs=plan.PLAN, **kw)

    def read_calls():
        if not calls.exists():
            return []
        return [json.loads(line) for line in calls.read_text().splitlines()]

    return driver, read_calls, tmp_path


def test_driver_trains_copies_small_results_and_skips_done_runs(fake, capsys):
    driver, calls, tmp = fake
    runs = [plan.BY_NAME["main_cnn_e15_s0"], plan.BY_NAME["main_ann_e15_s1"]]
    out = driver(runs, threads=2).execute()
    assert out == {"done": [r.name for r in runs], "skipped": [], "crashed": [], "blocked": []}
    assert [c["threads"] for c in calls()] == ["2", "2"]
    assert "--epochs=15" in calls()[1]["argv"] and "--seed=1" in calls()[1]["argv"]
    ev = tmp / "evidence" / "main_cnn_e15_s0"
    assert sorted(p.name for p in ev.iterdir()) == sorted(
        ["results.json", "log.csv", "flags.txt", "progress.json", "curves.png", "command.txt",
         "machine.json"])
    command = (ev / "command.txt").read_text().splitlines()[-1]
    assert command.startswith("python -m keras_pkkd.train --flagfile=resnet20_cifar10_cnn.flags")
    assert "--train_data=../shared/data/cifar10/train_20k.npz" in command
    assert "--model_dir=runs/evidence/main_cnn_e15_s0" in command
    machine = json.loads((ev / "machine.json").read_text())
    assert machine["exit_code"] == 0 and machine["threads"] == 2 and machine["cpu"]["label"]
    assert (tmp / "runs" / "main_cnn_e15_s0" / "driver.log").read_text().count("trained") == 1
    text = capsys.readouterr().out
    assert "[1/2] main_cnn_e15_s0: training" in text and "[2/2] main_ann_e15_s1: finished" in text

    # Again: both have evidence, nothing is trained.
    out = driver(runs).execute()
    assert out["skipped"] == [r.name for r in runs] and len(calls()) == 2
    # A run finished in runs/ whose evidence was lost is copied again without training.
    (tmp / "evidence" / "main_ann_e15_s1" / "results.json").unlink()
    out = driver(runs).execute()
    assert out["done"] == ["main_ann_e15_s1"] and len(calls()) == 2
    assert (tmp / "evidence" / "main_ann_e15_s1" / "results.json").exists()


def test_driver_reports_a_crash_and_goes_on(fake, monkeypatch, capsys):
    driver, calls, tmp = fake
    monkeypatch.setenv("FAKE_CRASH", "crash main_pkkd_e15_s0")
    runs = [plan.BY_NAME["main_pkkd_e15_s0"], plan.BY_NAME["main_ann_e15_s0"]]
    out = driver(runs).execute()
    assert out["crashed"] == ["main_pkkd_e15_s0"] and out["done"] == ["main_ann_e15_s0"]
    assert not (tmp / "evidence" / "main_pkkd_e15_s0").exists()
    text = capsys.readouterr().out
    assert "main_pkkd_e15_s0: CRASHED (exit code 3)" in text and "Traceback: boom" in text


def test_driver_postpones_a_run_until_its_dependency_finishes(fake, capsys):
    driver, calls, tmp = fake
    fixed = plan.BY_NAME["ablation_raw_fixed_e5_s0"]
    teacher = plan.BY_NAME[plan.TEACHER_RUN]
    # The dependency left out by --only: blocked, said so, nothing trained.
    out = driver([fixed]).execute()
    assert out["blocked"] == [fixed.name] and calls() == []
    text = capsys.readouterr().out
    assert "postponed: dependency main_cnn_e15_s0 has not finished" in text
    assert "BLOCKED" in text
    # Listed after its dependent: postponed, then trained once the teacher is done.
    out = driver([fixed, teacher]).execute()
    assert out["done"] == [teacher.name, fixed.name] and out["blocked"] == []
    argv = calls()[-1]["argv"]
    assert f"--teacher_model={tmp / 'runs' / plan.TEACHER_RUN}" in argv

def test_driver_retrains_a_dependency_finished_on_another_machine(fake, monkeypatch, capsys):
    """The teacher's evidence is committed but its network (runs/, not committed) is not here:
    the driver retrains it into runs/ once, leaves its evidence alone, then trains the
    dependent; a failed retraining blocks the dependent and says why."""
    driver, calls, tmp = fake
    fixed = plan.BY_NAME["ablation_kernel_fixed_e5_s0"]
    teacher = plan.BY_NAME[plan.TEACHER_RUN]
    ev = tmp / "evidence" / teacher.name
    ev.mkdir(parents=True)
    original = json.dumps({"student": {"top1": 0.7282, "examples": 10000}})
    (ev / "results.json").write_text(original)

    monkeypatch.setenv("FAKE_CRASH", f"crash {teacher.name}")
    out = driver([teacher, fixed]).execute()
    assert out["skipped"] == [teacher.name] and out["blocked"] == [fixed.name]
    assert len(calls()) == 1 and f"--model_dir={tmp / 'runs' / teacher.name}" in calls()[0]["argv"]
    text = capsys.readouterr().out
    assert "retraining CRASHED (exit code 3)" in text and "retraining it failed" in text

    monkeypatch.setenv("FAKE_CRASH", "")
    out = driver([fixed]).execute()
    assert out["done"] == [fixed.name] and out["blocked"] == []
    argvs = [c["argv"] for c in calls()[1:]]
    assert f"--model_dir={tmp / 'runs' / teacher.name}" in argvs[0]
    assert f"--teacher_model={tmp / 'runs' / teacher.name}" in argvs[1]
    assert (ev / "results.json").read_text() == original    # the committed evidence stays
    rebuilt = json.loads((tmp / "runs" / teacher.name / "rebuilt.json").read_text())
    assert rebuilt["evidence_top1"] == 0.7282 and rebuilt["retrained_top1"] == 0.5
    text = capsys.readouterr().out
    assert "top-1 0.5 (the committed run: 0.7282); evidence/main_cnn_e15_s0/ unchanged" in text
    # Once its network is here it is not retrained again.
    shutil.rmtree(tmp / "evidence" / fixed.name)
    shutil.rmtree(tmp / "runs" / fixed.name)
    out = driver([fixed]).execute()
    assert out["done"] == [fixed.name] and len(calls()) == 4


def test_dry_run_prints_the_commands_and_list_shows_states(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    args = [sys.executable, "-m", "experiments.run", f"--runs_root={tmp_path / 'runs'}",
            f"--evidence_root={tmp_path / 'ev'}", "--threads=2"]
    out = subprocess.run(args + ["--dry_run", "--only=^main_pkkd|raw_fixed"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if not line.startswith("#")]
    assert len(lines) == len(plan.MAIN_SEEDS + plan.EXTRA_SEEDS) + 1   # PKKD seeds + raw_fixed
    first = shlex.split(lines[0])
    assert first[1:4] == ["-m", "keras_pkkd.train", "--flagfile=resnet20_cifar10_pkkd.flags"]
    assert "--epochs=15" in first and "--seed=0" in first
    assert f"--model_dir={tmp_path / 'runs' / 'main_pkkd_e15_s0'}" in first
    assert "TF_NUM_INTRAOP_THREADS=2" in out.stdout
    assert lines[-1].endswith("# after main_cnn_e15_s0")
    assert not (tmp_path / "runs").exists()
    out = subprocess.run(args + ["--list"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    listed = [line for line in out.stdout.splitlines() if not line.startswith("#")]
    assert out.returncode == 0 and len(listed) == len(plan.PLAN)
    assert "pending" in out.stdout
    # Nothing finished in this empty evidence root: no rate, every run unmeasured.
    assert f"plus {len(plan.PLAN)} run(s) of a kind not measured yet" in out.stdout
    bad = subprocess.run(args + ["--only=nothing_matches"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "matches no planned run" in bad.stderr


def test_run_rate_takes_the_quickest_long_session():
    sessions = [{"resumed_after_epoch": 0, "driver_elapsed_s": 1000.0},   # epochs 1-4: 250 s
                {"resumed_after_epoch": 4, "driver_elapsed_s": 50.0},     # epoch 5 only: skipped
                {"resumed_after_epoch": 5, "driver_elapsed_s": 2000.0}]   # epochs 6-15: 200 s
    progress = {"finished_epochs": 15, "wall_seconds": 3050.0}
    assert driver_mod.run_rate({"sessions": sessions}, progress, 15) == pytest.approx(200.0)
    # Only short sessions (or none recorded): all epochs' wall time.
    assert driver_mod.run_rate({"sessions": sessions[1:2]}, progress, 5) == \
        pytest.approx(3050.0 / 15)
    assert driver_mod.run_rate({}, progress, 15) == pytest.approx(3050.0 / 15)
    assert driver_mod.run_rate({}, {"finished_epochs": 0}, 15) is None


def test_remaining_estimate_from_finished_runs(tmp_path):
    ev, runs = tmp_path / "ev", tmp_path / "runs"
    finished = {"main_ann_e15_s0": 100.0, "main_ann_e15_s1": 140.0, "main_pkkd_e15_s0": 300.0}
    for name, rate in finished.items():
        d = ev / name
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps({"epochs": 15}))
        (d / "machine.json").write_text(json.dumps(
            {"sessions": [{"resumed_after_epoch": 0, "driver_elapsed_s": 15 * rate}]}))
        (d / "progress.json").write_text(json.dumps({"finished_epochs": 15,
                                                     "wall_seconds": 15 * rate}))
    (runs / "main_ann_e15_s2").mkdir(parents=True)   # 5 of its 15 epochs done
    (runs / "main_ann_e15_s2" / "progress.json").write_text(json.dumps({"finished_epochs": 5}))
    chosen = [plan.BY_NAME[n] for n in ("main_ann_e15_s0", "main_ann_e15_s2", "main_pkkd_e15_s1",
                                        "sigma_1_e5_s0", "main_cnn_e15_s1")]
    d = driver_mod.Driver(chosen, runs_root=runs, evidence_root=ev, all_runs=plan.PLAN)
    seconds, unknown, rates = driver_mod.remaining_estimate(d)
    assert rates == {"ann": pytest.approx(120.0), "pkkd": pytest.approx(300.0)}
    # ann s2: 10 epochs at 120 s; pkkd s1: 15 at 300 s; sigma (a PKKD pair): 5 at 300 s.
    assert seconds == pytest.approx(10 * 120 + 15 * 300 + 5 * 300)
    assert unknown == ["main_cnn_e15_s1"]
    # A fixed-teacher ablation whose teacher finished elsewhere (evidence, no network here):
    # the teacher's retraining counts too, at its own kind's rate (cnn: unmeasured here).
    (ev / "main_cnn_e15_s0").mkdir()
    (ev / "main_cnn_e15_s0" / "results.json").write_text(json.dumps({"epochs": 15}))
    fixed = plan.BY_NAME["ablation_raw_fixed_e5_s0"]
    d = driver_mod.Driver([fixed], runs_root=runs, evidence_root=ev, all_runs=plan.PLAN)
    assert driver_mod.pending_rebuilds(d) == ["main_cnn_e15_s0"]
    seconds, unknown, _ = driver_mod.remaining_estimate(d)
    assert seconds == pytest.approx(5 * 300) and unknown == ["main_cnn_e15_s0"]
    (runs / "main_cnn_e15_s0").mkdir()
    (runs / "main_cnn_e15_s0" / "results.json").write_text("{}")   # retrained here
    assert driver_mod.pending_rebuilds(d) == []


def test_driver_refuses_to_start_without_the_data(tmp_path):
    d = driver_mod.Driver(plan.PLAN[:1], runs_root=tmp_path / "runs",
                          evidence_root=tmp_path / "ev", train_data=str(tmp_path / "no.npz"))
    with pytest.raises(SystemExit, match="real CIFAR-10 files are missing"):
        d.check_data()


def test_thread_env():
    env = driver_mod.thread_env(3, {})
    assert env["TF_NUM_INTRAOP_THREADS"] == env["TF_NUM_INTEROP_THREADS"] == "3"
    assert "TF_NUM_INTRAOP_THREADS" not in driver_mod.thread_env(None, {})


# --- the report ------------------------------------------------------------------------------

def _fake_evidence(root, name, top1, epochs=15, teacher=None, curve=(0.2, 0.4)):
    d = root / name
    d.mkdir(parents=True)
    results = {"student": {"top1": top1, "top5": 0.9, "examples": 10000}, "epochs": epochs,
               "train_images_per_s": 100.0, "wall_time_s": 600.0,
               "teacher": {"top1": teacher} if teacher is not None else None}
    (d / "results.json").write_text(json.dumps(results))
    (d / "log.csv").write_text("epoch,accuracy,val_accuracy\n" + "".join(
        f"{i},{v},{v}\n" for i, v in enumerate(curve)))
    (d / "machine.json").write_text(json.dumps(
        {"cpu": {"label": "AMD EPYC (Zen 4; family 25, model 17), 2 CPUs"}, "threads": 2,
         "finished": "2026-12-03T12:00:00"}))
    (d / "command.txt").write_text("# x\npython -m keras_pkkd.train --seed=0\n")


def test_report_says_which_fixed_teacher_each_fixed_run_used(tmp_path):
    from experiments import report
    ev = tmp_path / "evidence"
    _fake_evidence(ev, "ablation_raw_fixed_e5_s0", 0.66, epochs=5, teacher=0.7282)
    _fake_evidence(ev, "ablation_conv_fixed_e5_s0", 0.47, epochs=5, teacher=0.7282)
    _fake_evidence(ev, "ablation_raw_progressive_e5_s0", 0.6, epochs=5, teacher=0.61)
    text = " ".join(report.fixed_teacher_note(report.load_evidence(ev)))
    assert "72.82% in all 2 finished" in text
    # A teacher retrained on another machine: both named, with the runs that used each.
    _fake_evidence(ev, "ablation_kernel_fixed_e5_s0", 0.6, epochs=5, teacher=0.7301)
    text = " ".join(report.fixed_teacher_note(report.load_evidence(ev)))
    assert "differs between runs" in text and "`ablation_kernel_fixed_e5_s0` 73.01%" in text
    assert "`ablation_raw_fixed_e5_s0` 72.82%" in text and "retrained" in text
    assert report.fixed_teacher_note(report.load_evidence(tmp_path / "none")) == []


def test_report_other_differences_of_the_main_table():
    from scipy import stats
    from experiments import report
    ann, mmd = [68.16, 68.14, 68.00, 68.63, 67.26], [70.76, 71.52, 70.33]
    lines = report.other_differences({"ann": ann, "mmd": mmd, "pkkd": [], "cnn": [73.0]})
    row = next(ln for ln in lines if ln.startswith("| MMD ANN - vanilla ANN"))
    welch = stats.ttest_ind(mmd, ann, equal_var=False)
    perm = stats.permutation_test(   # |difference| >= observed, as permutation_p's own test
        (np.array(mmd), np.array(ann)), lambda x, y, axis: np.abs(np.mean(x, axis) - np.mean(
            y, axis)), permutation_type="independent", alternative="greater",
        n_resamples=np.inf)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == f"{np.mean(mmd) - np.mean(ann):+.2f}"
    assert cells[4] == f"{welch.pvalue:.3f}" and cells[5].startswith(f"{perm.pvalue:.3f}")
    assert cells[6] == "3, 5"
    # A side without seeds, or with one (no spread): pending, not a number.
    assert "| PKKD ANN - MMD ANN | pending" in "\n".join(lines)
    assert "| CNN - PKKD ANN | pending" in "\n".join(lines)


def test_report_statistics_and_pending_runs(tmp_path):
    from experiments import report
    ev = tmp_path / "evidence"
    pkkd = [0.61, 0.65, 0.66]
    ann = [0.60, 0.62]
    for seed, v in enumerate(pkkd):
        _fake_evidence(ev, f"main_pkkd_e15_s{seed}", v, teacher=0.7)
    for seed, v in enumerate(ann):
        _fake_evidence(ev, f"main_ann_e15_s{seed}", v)
    _fake_evidence(ev, "sigma_10_e5_s0", 0.5, epochs=5, curve=(0.1, 0.2, 0.3, 0.4, 0.5))
    _fake_evidence(ev, "not_in_the_plan", 0.99)
    evidence = report.load_evidence(ev)
    assert set(evidence) == {"main_pkkd_e15_s0", "main_pkkd_e15_s1", "main_pkkd_e15_s2",
                             "main_ann_e15_s0", "main_ann_e15_s1", "sigma_10_e5_s0",
                             "not_in_the_plan"}

    mean, std, n = report.mean_std([100 * v for v in pkkd])
    assert n == 3 and mean == pytest.approx(64.0)
    assert std == pytest.approx(statistics.stdev([61.0, 65.0, 66.0]))  # sample std, n - 1
    c = report.compare([100 * v for v in ann], [100 * v for v in pkkd])
    se = ((statistics.stdev([60.0, 62.0]) ** 2 / 2) + (std ** 2 / 3)) ** 0.5
    assert c["diff"] == pytest.approx(3.0) and c["se"] == pytest.approx(se)
    assert c["t"] == pytest.approx(3.0 / se) and 0 < c["p"] < 1

    output, figure = tmp_path / "docs" / "results.md", tmp_path / "docs" / "figures" / "c.png"
    report.write_document(output, report.render(evidence, figure, "figures/c.png",
                                                cpu_now="test CPU"))
    text = output.read_text()
    assert f"| PKKD ANN | 92.96 | 64.00 ± {std:.2f} | 3 / 5 |" in text
    ann_std = statistics.stdev([60.0, 62.0])
    assert f"| vanilla ANN | 92.02 | 61.00 ± {ann_std:.2f} | 2 / 5 |" in text
    # 2 + 3 seeds: 10 splits; |diff| >= 3 for {60,61}|{62,65,66} (4.67), {60,62}|... (3.0),
    # {61,62}|... (2.5, no)...: the permutation p and Welch's p are both far above 5%.
    perm, smallest = report.permutation_p([60.0, 62.0], [61.0, 65.0, 66.0])
    assert f"Not significant at the 5% level: Welch's t-test (df {c['df']:.1f}) p = " \
        f"{c['p']:.3f}, the exact permutation test p = {perm:.3f} with 2 vanilla ANN and 3 " \
        f"PKKD ANN seeds (the smallest permutation p these seed counts allow is " \
        f"{smallest:.3f}, so they cannot show a difference at 5% whatever the numbers)" in text
    assert "2 of 3 PKKD seeds are above every vanilla ANN seed; 1 of 2 vanilla ANN seeds " \
        "are below every PKKD seed." in text
    assert "| CNN | 92.93 | pending | 0 / 3 |" in text
    assert "seeds 0, 1, 2 (and 3, 4 for vanilla ANN and PKKD ANN, the central comparison)" \
        in text
    assert "s0: 61.00, s1: 65.00, s2: 66.00" in text and "70.00 ± 0.00" in text  # teacher
    assert "| +3.00 |" in text
    # The shared run fills its three cells; the others say pending.
    assert "| 10 | 50.00 | 92.96 |" in text and "| 0.1 | pending | 92.49 |" in text
    assert "50.00 (92.96) (run `sigma_10_e5_s0`)" in text and "| a | 50.00 |" in text
    assert "| b | pending |" in text
    assert f"6 of {len(plan.PLAN)} finished" in text and "not_in_the_plan" not in text
    pending = [line for line in text.splitlines() if line.startswith("Pending: `")][0]
    assert "`main_cnn_e15_s0`" in pending and "`main_pkkd_e15_s0`" not in pending
    assert "AMD EPYC (Zen 4; family 25, model 17), 2 CPUs" in text
    assert "--only='^main_'" in text and "--epochs=15 --seed=<seed>" in text
    assert figure.exists() and "![held-out top-1 per epoch](figures/c.png)" in text
    assert (figure.parent / "results_seeds.png").exists()
    assert "![top-1 of every seed](figures/results_seeds.png)" in text
    seeds = report.main_seeds(evidence)
    assert seeds["pkkd"] == [(0, pytest.approx(61.0)), (1, pytest.approx(65.0)),
                             (2, pytest.approx(66.0))]
    assert seeds["ann"] == [(0, pytest.approx(60.0)), (1, pytest.approx(62.0))]
    assert seeds["cnn"] == [] and not report.plot_seeds({}, tmp_path / "none.png")

    # Regenerating keeps what was written by hand outside the markers.
    output.write_text(output.read_text().replace("## Conclusions", "## Conclusions\n\nBY HAND"))
    report.write_document(output, report.render({}, None, None, cpu_now="test CPU"))
    text = output.read_text()
    assert "BY HAND" in text and f"0 of {len(plan.PLAN)} finished" in text
    assert text.count(report.BEGIN) == 1


@pytest.mark.parametrize("a, b", [
    ([60.0, 62.0], [61.0, 65.0, 66.0]),
    ([68.16, 68.14, 68.00], [68.28, 69.40, 69.01]),     # the seeds of the main table
    ([1.0, 2.0, 3.0, 4.0, 5.0], [3.0, 3.0, 6.0, 7.0, 2.5]),   # ties across the groups
    ([5.0, 5.0], [5.0, 5.0, 5.0]),                     # no difference at all: p = 1
])
def test_permutation_p_matches_scipy_exact(a, b):
    from experiments import report
    stats = pytest.importorskip("scipy.stats")
    np = pytest.importorskip("numpy")
    p, smallest = report.permutation_p(a, b)
    # Two-sided as |difference of means| >= the observed one (scipy's own "two-sided" doubles
    # the smaller tail instead, which differs for unequal group sizes).
    ref = stats.permutation_test(
        (np.array(b), np.array(a)),
        lambda x, y, axis: np.abs(np.mean(x, axis) - np.mean(y, axis)),
        permutation_type="independent", alternative="greater", n_resamples=np.inf)
    assert p == pytest.approx(ref.pvalue)
    assert 0 < smallest <= p


def test_permutation_p_smallest_attainable():
    from experiments import report
    # Perfectly separated groups reach the smallest p: 2 / C(6, 3) with 3 a side (the two
    # mirror-image splits), 2 / C(10, 5) with 5 a side.
    assert report.permutation_p([1, 2, 3], [4, 5, 6]) == (pytest.approx(0.1), pytest.approx(0.1))
    p, smallest = report.permutation_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert p == pytest.approx(2 / 252) and smallest == pytest.approx(2 / 252)
    assert report.permutation_p([], [1.0]) is None


# --- one real tiny run through the driver ------------------------------------------------------

def test_tiny_real_run_through_the_driver(cifar10_files, tmp_path):
    """main_cnn_e15_s0 cut to 1 epoch of 256 images (--extra_flag) into a temporary root: the
    real CLI trains, the driver copies its small results and nothing else. About 19 s of CPU
    (TensorFlow's import, one ResNet-20 build, 4 steps): ~20 s on the idle 2-core machine,
    longer while other work shares it."""
    args = [sys.executable, "-m", "experiments.run", "--only=^main_cnn_e15_s0$",
            f"--runs_root={tmp_path / 'runs'}", f"--evidence_root={tmp_path / 'ev'}",
            "--threads=2", "--extra_flag=--epochs=1", "--extra_flag=--train_examples=256",
            "--extra_flag=--eval_examples=256", "--extra_flag=--batch_size=64",
            "--extra_flag=--bn_recalibration_batches=2", "--extra_flag=--validate_every=0"]
    started = time.time()
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert out.returncode == 0, out.stdout + out.stderr
    ev = tmp_path / "ev" / "main_cnn_e15_s0"
    results = json.loads((ev / "results.json").read_text())
    assert results["epochs"] == 1 and results["student"]["examples"] == 256
    assert results["steps"] == 4
    assert {p.name for p in ev.iterdir()} >= {"results.json", "log.csv", "flags.txt",
                                              "progress.json", "command.txt", "machine.json"}
    assert not list(ev.glob("*.keras")) and not (ev / "checkpoints").exists()
    assert (tmp_path / "runs" / "main_cnn_e15_s0" / "model.keras").exists()
    assert "1 finished" in out.stdout
    print(f"tiny driver run: {time.time() - started:.1f} s")


# --- the feature-space evidence (experiments/features.py) --------------------------------------

def _tiny_main_run(runs_root, name, kind, seed, teacher=False):
    from test_visualize import tiny_model  # the zoo's layer names, a few hundred weights

    d = runs_root / name
    d.mkdir(parents=True)
    data_dir = runs_root.parent
    (d / "flags.json").write_text(json.dumps({
        "dataset": "none", "train_data": str(data_dir / "train.npz"),
        "eval_data": str(data_dir / "eval.npz")}))
    tiny_model(kind, seed=seed).save(d / "model.keras")
    if teacher:
        tiny_model("conv", seed=seed + 10).save(d / "teacher.keras")
    return d


def test_features_measures_new_networks_only_and_report_shows_them(tmp_path):
    """experiments.features on tiny networks with the main runs' names: the 10-class numbers
    equal feature_space.separation of features computed directly from the pooled layer over
    every test image; a rerun measures only the runs finished since, keeps the earlier entries
    and the picture; the report's section gives mean ± std over seeds and pending rows."""
    import keras

    from keras_pkkd import data
    from keras_pkkd.visualize import feature_space
    from keras_pkkd.visualize.runs import load_model_file

    from experiments import features, report

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(36, 8, 8, 3), dtype=np.uint8)
    y = np.arange(36) % 3
    np.savez(tmp_path / "eval.npz", x=x, y=y)
    # The runs "trained" on darker images: their normalization is not the test images' own.
    np.savez(tmp_path / "train.npz", x=x // 2, y=y)
    runs_root, ev = tmp_path / "runs", tmp_path / "evidence"
    _tiny_main_run(runs_root, "main_cnn_e15_s0", "conv", 0)
    _tiny_main_run(runs_root, "main_ann_e15_s0", "adder", 1)
    kwargs = dict(runs_root=runs_root, evidence_root=ev, eval_data=str(tmp_path / "eval.npz"))
    record = features.measure(**kwargs)
    assert set(record["networks"]) == {"main_cnn_e15_s0", "main_ann_e15_s0"}
    assert "picture" not in record and not (ev / features.NAME / features.PICTURE_FILE).exists()

    source = data.load(dataset=None, train_data=str(tmp_path / "train.npz"),
                       eval_data=str(tmp_path / "eval.npz"), download=False, eval_only=True)
    images = np.concatenate([b.numpy() for b, _ in source.eval_dataset(8)])
    model = load_model_file(runs_root / "main_ann_e15_s0" / "model.keras")
    direct = np.asarray(keras.Model(model.inputs[0], model.get_layer("pool").output)(images))
    ann = record["networks"]["main_ann_e15_s0"]
    assert ann["images"] == 36 and ann["classes"] == 3 and ann["dim"] == 6
    expected = feature_space.separation(direct.astype(np.float64), y)
    for key, value in expected.items():
        assert ann["separation"][key] == pytest.approx(value, rel=1e-5), key

    _tiny_main_run(runs_root, "main_pkkd_e15_s0", "adder", 2, teacher=True)
    _tiny_main_run(runs_root, "main_ann_e15_s1", "adder", 3)
    _tiny_main_run(runs_root, "confirm_raw_e15_s0", "adder", 4, teacher=True)
    record2 = features.measure(**kwargs)
    assert record2["networks"]["main_ann_e15_s0"] == ann        # kept, not measured again
    record2 = json.loads(json.dumps(record2))
    # The confirm run (PKKD recipe, raw feature KD) is filed apart from PKKD ANN, student only.
    assert set(record2["networks"]) == {"main_cnn_e15_s0", "main_ann_e15_s0", "main_ann_e15_s1",
                                        "main_pkkd_e15_s0", "main_pkkd_e15_s0/teacher",
                                        "confirm_raw_e15_s0"}
    assert record2["networks"]["confirm_raw_e15_s0"]["method"] == "confirm"
    assert record2["networks"]["confirm_raw_e15_s0"]["label"] == "raw + KD ANN"
    assert record2["networks"]["main_pkkd_e15_s0/teacher"]["network"] == "teacher"
    picture = ev / features.NAME / features.PICTURE_FILE
    assert picture.exists() and record2["picture"]["runs"] == [
        "main_cnn_e15_s0", "main_ann_e15_s0", "main_pkkd_e15_s0"]
    drawn = picture.stat().st_mtime_ns
    features.measure(**kwargs)
    assert picture.stat().st_mtime_ns == drawn                   # nothing new: not redrawn
    # A retrained network (another file) is measured again, and the picture redrawn.
    from test_visualize import tiny_model
    tiny_model("adder", seed=7).save(runs_root / "main_ann_e15_s0" / "model.keras")
    record3 = features.measure(**kwargs)
    assert record3["networks"]["main_ann_e15_s0"]["separation"] != ann["separation"]
    assert record3["networks"]["main_ann_e15_s0"]["sha256"] == features.fingerprint(
        runs_root / "main_ann_e15_s0" / "model.keras") != ann["sha256"]
    assert record3["networks"]["main_cnn_e15_s0"] == record2["networks"]["main_cnn_e15_s0"]
    assert picture.stat().st_mtime_ns != drawn

    saved = report.load_features(ev)
    assert saved == json.loads((ev / features.NAME / features.SEPARATION_FILE).read_text())
    text = "\n".join(report.features_section(saved, "../evidence/features_e15/x.png"))
    s0 = saved["networks"]["main_ann_e15_s0"]["separation"]["ncm_cosine"]
    s1 = saved["networks"]["main_ann_e15_s1"]["separation"]["ncm_cosine"]
    assert f"| vanilla ANN | 0, 1 | {(s0 + s1) / 2:.3f} ± {statistics.stdev([s0, s1]):.3f} |" \
        in text
    assert "| MMD ANN | pending |" in text and "| PKKD's progressive teacher (CNN) | 0 |" in text
    assert "| PKKD ANN | 0 |" in text and "| raw + KD ANN | 0 |" in text
    assert "![feature space](../evidence/features_e15/x.png)" in text
    assert "Picture pending" in "\n".join(report.features_section({}, None))


def test_features_cli_refuses_missing_test_images(tmp_path, capsys):
    from experiments import features
    assert features.main([f"--eval_data={tmp_path / 'none.npz'}",
                          f"--runs_root={tmp_path}", f"--evidence_root={tmp_path}"]) == 2
    assert "none.npz are missing" in capsys.readouterr().err


def test_report_verdicts_say_which_setting_wins_and_against_what_spread(tmp_path):
    """The small-budget tables end with which setting wins, its margin over the shipped
    default, and whether that margin is beyond chance for two single runs: t(0.975, n - 1) x
    sqrt(2) x the seed std of n seeds; pending while runs or seeds are missing."""
    from experiments import report
    from scipy import stats

    sigmas = {f"sigma = {s}": v for s, v in zip(plan.SIGMAS, (60.0, 61.0, 62.0, 64.0, 63.0))}
    lines = report.verdict("sigma", sigmas, f"sigma = {plan.DEFAULT_SIGMA}", [68.0, 68.1, 68.2],
                           "SOURCE")
    text = " ".join(lines)
    std = statistics.stdev([68.0, 68.1, 68.2])      # 0.1
    band = stats.t.ppf(0.975, 2) * 2 ** 0.5 * std     # 4.303 x 1.414 x 0.1 = 0.61
    assert "Best sigma: sigma = 5 (64.00%), 1.00 points above the shipped default" in text
    assert "from 3 seeds (SOURCE)" in text and "t(0.975, 2) x sqrt(2) x 0.10 = 4.30 x" in text
    assert f"= {band:.2f} points by chance" in text and f"{band:.2f}" == "0.61"
    assert "the default should become sigma = 5" in text   # 1.00 > 0.61
    # std 0.2 with 3 seeds: the band (1.22) exceeds the 1.00 margin; the normal 2 sqrt(2) x
    # 0.2 = 0.57 would not, and the verdict would call it a win.
    narrow = " ".join(report.verdict("sigma", sigmas, "sigma = 10", [68.0, 68.2, 68.4], "S"))
    assert "does not beat the default beyond that" in narrow and "default stays" in narrow
    # The same std from more seeds is a tighter band: t(0.975, 9) = 2.26, 0.64 < 1.00.
    ten = [68.0 + 0.2 * ((-1) ** i) * (i % 2) for i in range(10)]
    band10 = stats.t.ppf(0.975, 9) * 2 ** 0.5 * statistics.stdev(ten)
    assert band10 < 1.0 and "should become sigma = 5" in " ".join(
        report.verdict("sigma", sigmas, "sigma = 10", ten, "S"))
    assert "needs at least 2 seeds of one configuration (S)" in " ".join(
        report.verdict("sigma", sigmas, "sigma = 10", [68.0], "S"))
    assert "pending (4 of 5 finished)" in " ".join(
        report.verdict("sigma", {**sigmas, "sigma = 0.1": None}, "sigma = 10", [68.0, 69.0],
                       "S"))
    same = " ".join(report.verdict("x", {"a": 2.0, "b": 1.0}, "a", [1.0, 2.0], "S"))
    assert "the shipped default" in same and "The default wins" in same
    # The default named in the plan is the PKKD recipe's.
    recipe = (plan.RECIPES_DIR / "resnet20_cifar10_pkkd.flags").read_text()
    assert f"--sigma={plan.DEFAULT_SIGMA}\n" in recipe


def test_report_small_budget_spread_replaces_the_main_tables_once_its_seeds_finish(tmp_path):
    """The small-budget verdicts judge against the shipped default's seeds at SMALL_EPOCHS
    once all have finished; before that against the main table's PKKD seeds, saying it is
    another budget."""
    from experiments import report
    ev = tmp_path / "evidence"
    for seed, v in enumerate((0.68, 0.69, 0.70)):
        _fake_evidence(ev, f"main_pkkd_e15_s{seed}", v, teacher=0.7)
    for name, v in ((plan.SHARED_DEFAULT_RUN, 0.60), ("ablation_raw_fixed_e5_s0", 0.61)):
        _fake_evidence(ev, name, v, epochs=5, curve=(0.1, 0.2, 0.3, 0.4, v))
    main = [68.0, 69.0, 70.0]
    values, source = report.small_spread(report.load_evidence(ev), main)
    assert values == main
    assert "at 15 epochs, not the 5 of this table" in source and "1 of 3 seeds" in source
    text = report.render(report.load_evidence(ev), cpu_now="test CPU")
    assert "## Seed spread at the small budget (5 epochs)" in text
    assert f"| 0 | 60.00 | `{plan.SHARED_DEFAULT_RUN}` |" in text
    assert "| 1 | pending | `spread_default_e5_s1` |" in text
    assert "Mean ± sample std: 60.00 (1 seed)." in text

    _fake_evidence(ev, "spread_default_e5_s1", 0.605, epochs=5)
    _fake_evidence(ev, "spread_default_e5_s2", 0.59, epochs=5)
    evidence = report.load_evidence(ev)
    values, source = report.small_spread(evidence, main)
    assert values == pytest.approx([60.0, 60.5, 59.0])
    assert source.startswith("the shipped default at 5 epochs")
    text = report.render(evidence, cpu_now="test CPU")
    std = statistics.stdev([60.0, 60.5, 59.0])
    assert f"Mean ± sample std: 59.83 ± {std:.2f} over 3 seeds." in text
    assert "| 2 | 59.00 | `spread_default_e5_s2` |" in text
    assert "--seed=<seed>" in text.split("## Seed spread")[1]


def test_report_ablation_verdicts_per_teacher_against_the_control_and_between_teachers(
        tmp_path):
    """The ablation is read column by column (only the progressive teacher's column sets the
    default feature KD), each feature term against the logit-KD-only control, and fixed
    against progressive teacher per row with the fixed teacher's own budget said; each
    against the chance band of the small-budget seeds."""
    from experiments import report
    from scipy import stats
    ev = tmp_path / "evidence"
    cells = {("none", "fixed"): 0.66, ("raw", "fixed"): 0.665, ("conv", "fixed"): 0.47,
             ("kernel", "fixed"): 0.65, ("kernel_conv", "fixed"): 0.60,
             ("none", "progressive"): 0.59, ("raw", "progressive"): 0.665,
             ("conv", "progressive"): 0.50, ("kernel", "progressive"): 0.595}
    for (kd, teacher), v in cells.items():
        _fake_evidence(ev, f"ablation_{kd}_{teacher}_e5_s0", v, epochs=5)
    _fake_evidence(ev, plan.SHARED_DEFAULT_RUN, 0.60, epochs=5)
    text = report.render(report.load_evidence(ev), cpu_now="test CPU")
    ablation = text.split("## Ablation")[1].split("## Sigma")[0]
    assert "Which feature KD with the fixed teacher wins: pending (4 of 5" not in ablation
    assert "Against the logit-KD-only control" not in ablation   # the spread seeds pending
    _fake_evidence(ev, "spread_default_e5_s1", 0.605, epochs=5)
    _fake_evidence(ev, "spread_default_e5_s2", 0.59, epochs=5)
    text = report.render(report.load_evidence(ev), cpu_now="test CPU")
    ablation = " ".join(text.split("## Ablation")[1].split("## Sigma")[0].split())
    band = stats.t.ppf(0.975, 2) * 2 ** 0.5 * statistics.stdev([60.0, 60.5, 59.0])   # 4.65
    assert f"{band:.2f}" == "4.65"
    progressive = ablation.split("Best feature KD with the progressive teacher:")[1]
    assert progressive.startswith(" raw output + KD (66.50%), 6.50 points above the shipped "
                                  "default kernel + 1x1 conv + KD (60.00%)")
    reading = progressive.split("Against")[0]
    assert "raw output + KD beats the default beyond that here; it is not made the default: " \
           "the feature KD is what `--method=pkkd` is" in reading
    assert "should become" not in reading and "`--feature_kd=raw`" in reading
    fixed = ablation.split("Best feature KD with the fixed teacher:")[1].split("Best")[0]
    assert "6.50 points above" in fixed and "should become" not in fixed
    assert "not made the default: this column is read under the fixed teacher" in fixed
    control_fixed = ablation.split("control with the fixed teacher (66.00%): ")[1]
    assert control_fixed.startswith("raw output + KD +0.50, 1x1 conv + KD -19.00, kernel + KD "
                                    "-1.00, kernel + 1x1 conv + KD -6.00 points")
    assert "No feature term adds to the logit KD beyond chance. Beyond chance, a feature term " \
           "hurts: 1x1 conv + KD, kernel + 1x1 conv + KD." in control_fixed
    control_progressive = ablation.split("control with the progressive teacher (59.00%): ")[1]
    assert "Beyond chance, a feature term helps: raw output + KD." in control_progressive
    assert "a feature term hurts: 1x1 conv + KD." in control_progressive
    teachers = ablation.split("Fixed minus progressive teacher, per feature KD: ")[1]
    assert teachers.startswith("logit KD only (no feature KD) +7.00, raw output + KD +0.00, "
                               "1x1 conv + KD -3.00, kernel + KD +5.50, kernel + 1x1 conv + KD "
                               "+0.00 points (chance band 4.65)")
    assert "better beyond chance in 2 of 5 rows, the progressive in 0" in teachers
    assert f"trained for {plan.MAIN_EPOCHS} epochs before the student's 5" in teachers
    assert "worth training first where it wins here" in teachers


def test_report_confirm_section_compares_the_ablation_winner_with_the_main_table(tmp_path):
    """The ablation winner's main-budget seeds: each seed, mean ± std, the command with its
    --feature_kd, and its differences from vanilla / PKKD / MMD ANN with both tests; its curves
    join the main panel of the figure, not the small-budget one."""
    from experiments import report
    ev = tmp_path / "evidence"
    for seed, (a, p) in enumerate(((0.68, 0.69), (0.67, 0.68), (0.675, 0.675))):
        _fake_evidence(ev, f"main_ann_e15_s{seed}", a)
        _fake_evidence(ev, f"main_pkkd_e15_s{seed}", p, teacher=0.74)
    text = report.render(report.load_evidence(ev), cpu_now="test CPU")
    section = text.split("### The ablation's winner at 15 epochs")[1].split("\n## ")[0]
    assert "| 0 | pending | - | `confirm_raw_e15_s0` |" in section
    assert "| raw + KD ANN - vanilla ANN | pending |" in section
    for seed, v in enumerate((0.70, 0.71, 0.72)):
        _fake_evidence(ev, f"confirm_raw_e15_s{seed}", v, teacher=0.75)
    evidence = report.load_evidence(ev)
    text = report.render(evidence, cpu_now="test CPU")
    section = text.split("### The ablation's winner at 15 epochs")[1].split("\n## ")[0]
    assert "| 1 | 71.00 | 75.00 | `confirm_raw_e15_s1` |" in section
    assert "Mean ± sample std: 71.00 ± 1.00 over 3 seeds." in section
    assert "--flagfile=resnet20_cifar10_pkkd.flags" in section and \
        "--seed=<seed> --feature_kd=raw --model_dir" in section
    ann, raw = [68.0, 67.0, 67.5], [70.0, 71.0, 72.0]
    c = report.compare(ann, raw)
    perm, smallest = report.permutation_p(ann, raw)
    assert (f"| raw + KD ANN - vanilla ANN | {c['diff']:+.2f} | {c['se']:.2f} | "
            f"{c['df']:.1f} | {c['p']:.3f} | {perm:.3f} (smallest {smallest:.3f}) | 3, 3 |"
            ) in section
    assert "| raw + KD ANN - PKKD ANN | +2.83 |" in section   # 71 - 68.17
    assert "| raw + KD ANN - MMD ANN | pending |" in section
    assert "| raw + KD ANN - CNN | pending |" in section   # no CNN run here
    # The figure: the confirm curves are drawn (main panel), the small-budget panel stays empty.
    import matplotlib.axes
    labels = []
    original = matplotlib.axes.Axes.legend

    def spy(self, *args, **kwargs):
        labels.append(self.get_legend_handles_labels()[1])
        return original(self, *args, **kwargs)

    matplotlib.axes.Axes.legend = spy
    try:
        assert report.plot(evidence, tmp_path / "c.png")
    finally:
        matplotlib.axes.Axes.legend = original
    assert labels == [["vanilla ANN (3 seed(s))", "PKKD ANN (3 seed(s))",
                       "raw + KD ANN (3 seed(s))"]]


def test_report_figure_ablation_panel_one_color_per_feature_kd_style_per_teacher(tmp_path):
    """The figure's right panel: every ablation cell, the shared default run as the kernel + 1x1
    conv / progressive cell, in ABLATION_KD order, a color per feature KD (the same under both
    teachers), solid for fixed and dashed for progressive; the sigma runs in the middle."""
    import matplotlib.axes
    from experiments import report
    ev = tmp_path / "evidence"
    for kd in plan.ABLATION_KD:
        for teacher in plan.ABLATION_TEACHERS:
            name = f"ablation_{kd}_{teacher}_e5_s0"
            if name in plan.BY_NAME:
                _fake_evidence(ev, name, 0.5, epochs=5, curve=(0.1, 0.5))
    _fake_evidence(ev, plan.SHARED_DEFAULT_RUN, 0.5, epochs=5, curve=(0.1, 0.5))
    panels = []
    original = matplotlib.axes.Axes.legend

    def spy(self, *args, **kwargs):
        panels.append([(line.get_label(), line.get_color(), line.get_linestyle())
                       for line in self.get_lines()])
        return original(self, *args, **kwargs)

    matplotlib.axes.Axes.legend = spy
    try:
        assert report.plot(report.load_evidence(ev), tmp_path / "c.png")
    finally:
        matplotlib.axes.Axes.legend = original
    assert [label for label, _, _ in panels[0]] == ["sigma_10"]
    ablation = panels[1]
    assert [label for label, _, _ in ablation] == [
        f"{kd}, {t}" for kd in plan.ABLATION_KD for t in plan.ABLATION_TEACHERS]
    for k in range(0, len(ablation), 2):
        (_, c_fixed, ls_fixed), (_, c_prog, ls_prog) = ablation[k], ablation[k + 1]
        assert c_fixed == c_prog and ls_fixed == "-" and ls_prog == "--"
    assert len({c for _, c, _ in ablation}) == len(plan.ABLATION_KD)
