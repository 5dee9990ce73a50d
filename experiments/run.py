"""Resumable driver of issue #12's evidence runs (experiments/plan.py).

    python -m experiments.run [--only=REGEX] [--list] [--dry_run] [--threads=N] [--force]

For every planned run, in order: skip it when evidence/<name>/results.json exists; otherwise
train it with `python -m keras_pkkd.train ... --model_dir=runs/evidence/<name>` in a subprocess
(the CLI resumes from the model_dir's last epoch checkpoint by itself, so a driver killed at any
moment loses at most the unfinished epoch: run it again), then copy the finished run's small
results (results.json, log.csv, flags.txt, progress.json, curves.png, plus the driver's
command.txt and machine.json) into evidence/<name>/. Never checkpoints, networks or data.

A run that crashes is reported (the tail of runs/evidence/<name>/driver.log) and the driver goes
on with the next. A run whose dependency (the fixed-teacher ablations read the main table's
CNN run) has not finished is postponed until it has, or reported as blocked at the end. A
dependency that finished on another machine (its evidence is committed, its network in runs/
is not) is retrained into runs/ once, with its own command, before its first dependent;
evidence/<dependency>/ keeps the original results and the driver says both top-1s.
One driver at a time per runs root (a lock file); exit code 1 when a run crashed or stayed
blocked, 2 for a bad invocation or missing data.

`--list` shows each run's state (done / partial: k of n epochs / pending) and estimates the
training time left: every unfinished epoch at the wall time per epoch of finished runs of the
same kind (each run's quickest driver session of 3 or more epochs, median over the runs).
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time

from experiments import plan as plan_mod

ROOT = plan_mod.ROOT
DEFAULT_RUNS_ROOT = ROOT / "runs" / "evidence"
DEFAULT_EVIDENCE_ROOT = ROOT / "evidence"

# What evidence/<name>/ keeps of a finished run (small files only), and the size cap of images.
EVIDENCE_FILES = ("results.json", "log.csv", "flags.txt", "progress.json")
MAX_PNG_BYTES = 512 * 1024
DONE_FILE = "results.json"


def say(message):
    print(f"[experiments.run {time.strftime('%H:%M:%S')}] {message}", flush=True)


def fmt_seconds(s):
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


def cpu_info():
    """{'model_name', 'family', 'model', 'cpus', 'label'} from lscpu (or /proc/cpuinfo)."""
    info = {"model_name": None, "family": None, "model": None, "cpus": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "Model name" and info["model_name"] is None:
            info["model_name"] = value
        elif key == "CPU family" and info["family"] is None:
            info["family"] = value
        elif key == "Model" and info["model"] is None:
            info["model"] = value
    info["label"] = cpu_label(info)
    return info


def cpu_label(info):
    """'AMD EPYC (Zen 4), 2 CPUs' style text of a cpu_info dict."""
    name = info.get("model_name") or "unknown CPU"
    arch = None
    try:
        family, model = int(info.get("family")), int(info.get("model"))
    except (TypeError, ValueError):
        family = model = None
    if name.startswith("AMD") and family == 25:
        arch = "Zen 3" if model < 0x10 or 0x20 <= model < 0x60 else "Zen 4"
    elif name.startswith("AMD") and family == 26:
        arch = "Zen 5"
    text = name + (f" ({arch}; family {family}, model {model})" if arch else "")
    return text + (f", {info['cpus']} CPUs" if info.get("cpus") else "")


def code_version():
    """{'commit', 'modified'}: the checkout's HEAD and its uncommitted changes to the library
    (keras_pkkd/, custom_ops/) when a run starts: others may change the tree during a plan of
    many hours, and a run uses the code present when it (re)starts."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=30).stdout.rstrip("\n")
        except (OSError, subprocess.SubprocessError):
            return ""
    modified = [line[3:] for line in git("status", "--porcelain", "--", "keras_pkkd",
                                         "custom_ops").splitlines() if line.strip()]
    return {"commit": git("rev-parse", "HEAD").strip() or None, "modified": modified}


def thread_env(threads, base=None):
    """The environment of a training subprocess limited to `threads` CPU threads (None: TF's
    defaults). TensorFlow 2.21 reads TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS when it
    creates its thread pools (they are the defaults of tf.config.threading); OMP_NUM_THREADS
    caps OpenMP users (oneDNN builds with OpenMP, NumPy's BLAS)."""
    env = dict(os.environ if base is None else base)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    if threads:
        for key in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
            env[key] = str(threads)
    return env


def _student_top1(results_path):
    """The student's top-1 of a results.json, or None where it cannot be read."""
    try:
        return json.loads(pathlib.Path(results_path).read_text())["student"]["top1"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Driver:
    """Runs the plan's runs (see the module docstring). Roots and interpreter are arguments so
    tests can drive it in a temporary directory with a fake trainer."""

    def __init__(self, runs, *, runs_root=DEFAULT_RUNS_ROOT, evidence_root=DEFAULT_EVIDENCE_ROOT,
                 train_data=plan_mod.TRAIN_DATA, eval_data=plan_mod.EVAL_DATA,
                 python=sys.executable, threads=None, extra_flags=(), force=False,
                 heartbeat_s=600, all_runs=None):
        self.runs = list(runs)
        self.all_runs = {r.name: r for r in (all_runs if all_runs is not None else self.runs)}
        self.runs_root = pathlib.Path(runs_root).resolve()
        self.evidence_root = pathlib.Path(evidence_root).resolve()
        self.train_data = (ROOT / train_data).resolve()
        self.eval_data = (ROOT / eval_data).resolve()
        self.python = python
        self.threads = threads
        self.extra_flags = list(extra_flags)
        self.force = force
        self.heartbeat_s = heartbeat_s
        self.child = None
        self.rebuilt = set()   # dependencies retrained by this driver (once each)

    # --- paths and states ------------------------------------------------------------------
    def model_dir(self, name):
        return self.runs_root / name

    def evidence_dir(self, name):
        return self.evidence_root / name

    def has_evidence(self, name):
        return (self.evidence_dir(name) / DONE_FILE).exists()

    def finished_in_runs(self, name):
        return (self.model_dir(name) / DONE_FILE).exists()

    def dependency_ready(self, name):
        """A dependency is usable when its model_dir holds a finished run (results.json and
        the trained network, which --teacher_model reads)."""
        d = self.model_dir(name)
        return (d / DONE_FILE).exists() and (d / "model.keras").exists()

    def argv(self, run):
        argv = plan_mod.command(run, python=self.python, train_data=self.train_data,
                                eval_data=self.eval_data, model_dir=self.model_dir(run.name),
                                dependency_dir=lambda n: str(self.model_dir(n)))
        return argv + self.extra_flags

    def display_command(self, run):
        """The command as a user types it from the repo root (relative paths)."""
        argv = plan_mod.command(run, python="python", train_data=plan_mod.TRAIN_DATA,
                                eval_data=plan_mod.EVAL_DATA,
                                model_dir=f"runs/evidence/{run.name}",
                                dependency_dir=lambda n: f"runs/evidence/{n}")
        return shlex.join(argv + self.extra_flags)

    def check_data(self):
        missing = [p for p in (self.train_data, self.eval_data) if not p.is_file()]
        if missing:
            raise SystemExit(
                "error: the real CIFAR-10 files are missing: " + ", ".join(map(str, missing)) +
                "\n(experiments/plan.py TRAIN_DATA / EVAL_DATA, relative to the repo root; see "
                "../shared/data/cifar10/README.md)")

    # --- evidence ------------------------------------------------------------------------
    def copy_evidence(self, run, machine=None):
        """Copies the small results of the finished run in runs_root into evidence/<name>/
        (results.json last, so a half-copied folder never counts as done)."""
        src, dst = self.model_dir(run.name), self.evidence_dir(run.name)
        dst.mkdir(parents=True, exist_ok=True)
        (dst / DONE_FILE).unlink(missing_ok=True)
        for name in EVIDENCE_FILES[1:]:
            if (src / name).is_file():
                shutil.copy2(src / name, dst / name)
        for png in sorted(src.glob("*.png")):
            if png.stat().st_size <= MAX_PNG_BYTES:
                shutil.copy2(png, dst / png.name)
        (dst / "command.txt").write_text(
            "# from the repo root (runs/ is not committed; the data: "
            "../shared/data/cifar10/README.md)\n" + self.display_command(run) + "\n")
        status_path = src / "driver_status.json"
        info = json.loads(status_path.read_text()) if status_path.exists() else {}
        if machine is not None:
            info.update(machine)
        info.setdefault("cpu", cpu_info())
        (dst / "machine.json").write_text(json.dumps(info, indent=2) + "\n")
        tmp = dst / (DONE_FILE + ".tmp")
        shutil.copy2(src / DONE_FILE, tmp)
        os.replace(tmp, dst / DONE_FILE)

    # --- training ------------------------------------------------------------------------
    def _progress(self, name):
        try:
            p = json.loads((self.model_dir(name) / "progress.json").read_text())
            return p.get("finished_epochs")
        except (OSError, ValueError):
            return None

    def train(self, run, index, total):
        """Runs the training subprocess; returns its exit code."""
        mdir = self.model_dir(run.name)
        mdir.mkdir(parents=True, exist_ok=True)
        argv = self.argv(run)
        env = thread_env(self.threads)
        log_path = mdir / "driver.log"
        started = time.time()
        start_epoch = self._progress(run.name) or 0
        code = code_version()
        say(f"[{index}/{total}] {run.name}: training ({run.epochs} epochs, seed {run.seed}"
            + (f", resuming after epoch {start_epoch}" if start_epoch else "") +
            f"); log {log_path}")
        with open(log_path, "a") as log:
            log.write(f"\n=== {datetime.datetime.now().isoformat(timespec='seconds')} "
                      f"experiments.run: {shlex.join(argv)}\n"
                      f"=== threads: {self.threads or 'TF default'}; code: {code['commit']}"
                      + (f" + uncommitted {', '.join(code['modified'])}" if code["modified"]
                         else "") + "\n")
            log.flush()
            self.child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log,
                                          stderr=subprocess.STDOUT)
            rc = None  # stays None when the driver is stopped (signal) while the run trains
            try:
                last_beat = time.time()
                while True:
                    try:
                        rc = self.child.wait(timeout=5)
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    if time.time() - last_beat >= self.heartbeat_s:
                        last_beat = time.time()
                        done = self._progress(run.name)
                        say(f"[{index}/{total}] {run.name}: {done if done is not None else 0}/"
                            f"{run.epochs} epochs done, {fmt_seconds(time.time() - started)}"
                            " elapsed")
            finally:
                self._record(mdir, started, rc, start_epoch, code)
            self.child = None
        return rc, time.time() - started

    def _record(self, mdir, started, rc, start_epoch, code):
        """Appends this session to runs_root/<name>/driver_status.json (machine.json later)."""
        elapsed = time.time() - started
        status = {"started": datetime.datetime.fromtimestamp(started).isoformat(
                      timespec="seconds"),
                  "finished": datetime.datetime.now().isoformat(timespec="seconds"),
                  "driver_elapsed_s": round(elapsed, 1), "exit_code": rc,
                  "threads": self.threads, "nice": os.nice(0), "cpu": cpu_info(),
                  "resumed_after_epoch": start_epoch, "code": code}
        previous = {}
        sp = mdir / "driver_status.json"
        if sp.exists():
            try:
                previous = json.loads(sp.read_text())
            except ValueError:
                previous = {}
        status["sessions"] = previous.get("sessions", []) + [
            {k: status[k] for k in ("started", "finished", "driver_elapsed_s", "exit_code",
                                    "threads", "resumed_after_epoch", "code")}]
        sp.write_text(json.dumps(status, indent=2) + "\n")

    def tail(self, name, lines=15):
        try:
            text = (self.model_dir(name) / "driver.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def execute(self, dry_run=False):
        """Runs the plan; returns {'done', 'skipped', 'crashed', 'blocked'} (lists of names)."""
        outcome = {"done": [], "skipped": [], "crashed": [], "blocked": []}
        total = len(self.runs)
        pending = list(enumerate(self.runs, 1))
        t0 = time.time()
        while pending:
            postponed = []
            progressed = False
            for index, run in pending:
                if self.has_evidence(run.name) and not self.force:
                    say(f"[{index}/{total}] {run.name}: done (evidence/{run.name}/results.json "
                        "exists), skipped")
                    outcome["skipped"].append(run.name)
                    continue
                if dry_run:
                    deps = [d for d in run.depends_on if not self.dependency_ready(d)]
                    note = f"  # after {', '.join(deps)}" if deps else ""
                    print(shlex.join(self.argv(run)) + note, flush=True)
                    continue
                if self.finished_in_runs(run.name) and not self.force:
                    say(f"[{index}/{total}] {run.name}: finished in {self.model_dir(run.name)};"
                        " copying its results to evidence/")
                    self.copy_evidence(run)
                    outcome["done"].append(run.name)
                    progressed = True
                    continue
                missing = [d for d in run.depends_on if not self.dependency_ready(d)]
                rebuilds = [d for d in missing if self.rebuildable(d)]
                for dep in rebuilds:
                    self.rebuild(dep, run.name, index, total)
                if rebuilds:
                    missing = [d for d in missing if not self.dependency_ready(d)]
                if missing:
                    why = "; ".join(self._dependency_problem(d) for d in missing)
                    say(f"[{index}/{total}] {run.name}: postponed: {why}")
                    postponed.append((index, run))
                    continue
                rc, elapsed = self.train(run, index, total)
                if rc == 0 and self.finished_in_runs(run.name):
                    self.copy_evidence(run)
                    say(f"[{index}/{total}] {run.name}: finished in {fmt_seconds(elapsed)}; "
                        f"{self._summary(run.name)}; evidence/{run.name}/ written "
                        f"(driver total {fmt_seconds(time.time() - t0)})")
                    outcome["done"].append(run.name)
                    progressed = True
                else:
                    say(f"[{index}/{total}] {run.name}: CRASHED (exit code {rc}) after "
                        f"{fmt_seconds(elapsed)}; going on with the next run. Last lines of "
                        f"{self.model_dir(run.name) / 'driver.log'}:\n{self.tail(run.name)}")
                    outcome["crashed"].append(run.name)
            if not postponed or not progressed:
                for index, run in postponed:
                    missing = [d for d in run.depends_on if not self.dependency_ready(d)]
                    say(f"[{index}/{total}] {run.name}: BLOCKED: "
                        + "; ".join(self._dependency_problem(d) for d in missing))
                    outcome["blocked"].append(run.name)
                break
            pending = postponed
        return outcome

    def rebuildable(self, dep):
        """A dependency finished on another machine: its evidence is committed, its trained
        network (runs/ is not) is not here, and it has not been rebuilt here yet."""
        return (dep in self.all_runs and self.has_evidence(dep)
                and not self.finished_in_runs(dep) and dep not in self.rebuilt)

    def rebuild(self, dep, dependent, index, total):
        """Retrains a finished dependency into runs_root (its own command and seed) so that its
        dependents can read the network. evidence/<dep>/ keeps the original results: the
        retrained network is not the one behind them (CPU training is not bit-for-bit
        reproducible), so its top-1 is said beside the original's, and every dependent's
        results.json records the top-1 of the teacher it actually used."""
        self.rebuilt.add(dep)
        say(f"[{index}/{total}] {dependent}: needs the trained network of {dep}, which "
            f"finished elsewhere (evidence/{dep}/results.json) but is not in "
            f"{self.model_dir(dep)} (runs/ is not committed): retraining {dep} there; "
            f"evidence/{dep}/ keeps the original results")
        rc, elapsed = self.train(self.all_runs[dep], index, total)
        if rc == 0 and self.finished_in_runs(dep):
            original = _student_top1(self.evidence_dir(dep) / DONE_FILE)
            again = _student_top1(self.model_dir(dep) / DONE_FILE)
            (self.model_dir(dep) / "rebuilt.json").write_text(json.dumps(
                {"evidence_top1": original, "retrained_top1": again,
                 "finished": datetime.datetime.now().isoformat(timespec="seconds")},
                indent=2) + "\n")
            say(f"[{index}/{total}] {dep}: retrained in {fmt_seconds(elapsed)}: top-1 "
                f"{again} (the committed run: {original}); evidence/{dep}/ unchanged")
        else:
            say(f"[{index}/{total}] {dep}: retraining CRASHED (exit code {rc}); last lines of "
                f"{self.model_dir(dep) / 'driver.log'}:\n{self.tail(dep)}")

    def _dependency_problem(self, dep):
        d = self.model_dir(dep)
        if (d / DONE_FILE).exists():
            return f"dependency {dep} finished but {d / 'model.keras'} is missing"
        if self.has_evidence(dep):
            return (f"dependency {dep} has evidence but no trained network in {d} (runs/ is not "
                    "committed)" + (": retraining it failed" if dep in self.rebuilt else
                                    ", and it is not in the plan to retrain"))
        if dep not in {r.name for r in self.runs}:
            return f"dependency {dep} has not finished (and --only leaves it out)"
        return f"dependency {dep} has not finished"

    def _summary(self, name):
        try:
            r = json.loads((self.model_dir(name) / DONE_FILE).read_text())
            s = f"top-1 {r['student']['top1']:.4f} on {r['student']['examples']} images"
            if r.get("train_images_per_s"):
                s += f", {r['train_images_per_s']:.0f} img/s"
            return s
        except (OSError, ValueError, KeyError, TypeError):
            return "results.json unreadable"

    def terminate_child(self):
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.child.kill()


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m experiments.run", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help="run only the planned runs whose name matches this regex "
                   "(re.search)")
    p.add_argument("--list", action="store_true",
                   help="list the plan with each run's state and the training time left, "
                        "estimated from the finished runs' per-epoch wall times")
    p.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--threads", type=int, help="CPU threads of each training subprocess "
                   "(TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS, OMP_NUM_THREADS)")
    p.add_argument("--force", action="store_true", help="run even when evidence/<name> exists "
                   "(a finished model_dir is only re-evaluated) and copy its results again")
    p.add_argument("--runs_root", default=str(DEFAULT_RUNS_ROOT), help="model_dirs go here "
                   "(default runs/evidence)")
    p.add_argument("--evidence_root", default=str(DEFAULT_EVIDENCE_ROOT),
                   help="finished runs' small results go here (default evidence/)")
    p.add_argument("--python", default=sys.executable, help="interpreter of the training runs")
    p.add_argument("--extra_flag", action="append", default=[], metavar="--FLAG=VALUE",
                   help="appended to every training command (last wins: e.g. "
                   "--extra_flag=--epochs=1 for a smoke test into another --runs_root)")
    p.add_argument("--heartbeat", type=float, default=600,
                   help="seconds between progress lines while a run trains")
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    return args


def select(runs, only):
    if not only:
        return list(runs)
    try:
        pattern = re.compile(only)
    except re.error as e:
        raise SystemExit(f"error: --only={only!r} is not a regex: {e}") from None
    chosen = [r for r in runs if pattern.search(r.name)]
    if not chosen:
        raise SystemExit(f"error: --only={only!r} matches no planned run (see --list)")
    return chosen


def training_kind(run):
    """What a run trains, for time estimates: its method in the main table; every
    small-budget run (ablation, sigma, kernel sign) trains a PKKD teacher-student pair."""
    return run.label.get("method", "pkkd")


MIN_EPOCHS_FOR_RATE = 3   # a driver session shorter than this is mostly start-up and evaluation


def run_rate(machine, progress, epochs):
    """Wall seconds per epoch of one finished run: the quickest of its driver sessions that
    trained at least MIN_EPOCHS_FOR_RATE epochs (machine.json `sessions`: a session's epochs
    run from its `resumed_after_epoch` to the next session's, or to `epochs`), so a session
    slowed by other work on the CPU does not count; else progress.json's wall time over all
    epochs; None where neither is readable."""
    sessions = machine.get("sessions") or []
    rates = []
    for i, sess in enumerate(sessions):
        try:
            start = int(sess.get("resumed_after_epoch") or 0)
            end = int(sessions[i + 1].get("resumed_after_epoch") or 0) \
                if i + 1 < len(sessions) else int(epochs)
            elapsed = float(sess["driver_elapsed_s"])
        except (KeyError, TypeError, ValueError):
            continue
        if end - start >= MIN_EPOCHS_FOR_RATE and elapsed > 0:
            rates.append(elapsed / (end - start))
    if rates:
        return min(rates)
    try:
        done, wall = int(progress["finished_epochs"]), float(progress["wall_seconds"])
    except (KeyError, TypeError, ValueError):
        return None
    return wall / done if done > 0 and wall > 0 else None


def seconds_per_epoch(driver):
    """{training kind: median over the finished runs of that kind of their run_rate}, read
    from evidence/<run>/ (machine.json, progress.json, results.json)."""
    rates = {}
    for run in driver.all_runs.values():
        d = driver.evidence_dir(run.name)
        try:
            results = json.loads((d / DONE_FILE).read_text())
            machine = json.loads((d / "machine.json").read_text())
            progress = json.loads((d / "progress.json").read_text())
        except (OSError, ValueError):
            continue
        rate = run_rate(machine, progress, results.get("epochs", run.epochs))
        if rate is not None:
            rates.setdefault(training_kind(run), []).append(rate)
    return {kind: statistics.median(v) for kind, v in rates.items()}


def pending_rebuilds(driver):
    """The dependencies of unfinished selected runs that the driver will retrain here."""
    return sorted({d for r in driver.runs for d in r.depends_on if driver.rebuildable(d)
                   and not (driver.has_evidence(r.name) or driver.finished_in_runs(r.name))})


def remaining_estimate(driver):
    """(seconds, names of unfinished runs with no measured rate, rates): the epochs left of the
    selected unfinished runs at the measured per-epoch times of their kind."""
    rates = seconds_per_epoch(driver)
    seconds, unknown = 0.0, []
    todo = [r for r in driver.runs
            if not (driver.has_evidence(r.name) or driver.finished_in_runs(r.name))]
    # Dependencies the driver will retrain here (finished on another machine) count in full.
    for run in todo + [driver.all_runs[d] for d in pending_rebuilds(driver)]:
        rate = rates.get(training_kind(run))
        if rate is None:
            unknown.append(run.name)
            continue
        seconds += max(run.epochs - (driver._progress(run.name) or 0), 0) * rate
    return seconds, unknown, rates


def list_plan(driver):
    total = len(driver.runs)
    for i, run in enumerate(driver.runs, 1):
        if driver.has_evidence(run.name):
            state = "done"
        elif driver.finished_in_runs(run.name):
            state = "finished (evidence not copied yet)"
        else:
            done = driver._progress(run.name)
            state = f"partial: {done}/{run.epochs} epochs" if done else "pending"
        deps = f"  after {', '.join(run.depends_on)}" if run.depends_on else ""
        print(f"{i:2d}/{total} {run.name:38s} {run.group:10s} {run.recipe:38s} "
              f"epochs {run.epochs:2d} seed {run.seed}  {state}{deps}")
    seconds, unknown, rates = remaining_estimate(driver)
    if rates:
        print("# wall time per epoch (median over the finished runs of each one's quickest "
              "driver session): "
              + ", ".join(f"{kind} {fmt_seconds(rates[kind])}" for kind in sorted(rates)))
    print(f"# left: about {fmt_seconds(seconds)} of training at those rates"
          + (f", plus {len(unknown)} run(s) of a kind not measured yet ({', '.join(unknown)})"
             if unknown else "")
          + "; fixed-teacher ablations take the PKKD rate, so they are overestimated; a CPU "
          "shared with other work is slower"
          + "".join(f"; includes retraining {d} (finished elsewhere, its network is not here)"
                    for d in pending_rebuilds(driver)))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    runs = select(plan_mod.PLAN, args.only)
    driver = Driver(runs, runs_root=args.runs_root, evidence_root=args.evidence_root,
                    python=args.python, threads=args.threads, extra_flags=args.extra_flag,
                    force=args.force, heartbeat_s=args.heartbeat, all_runs=plan_mod.PLAN)
    if args.list:
        list_plan(driver)
        return 0
    if args.dry_run:
        missing = [p for p in (driver.train_data, driver.eval_data) if not p.is_file()]
        if missing:
            print(f"# warning: data missing: {', '.join(map(str, missing))}", flush=True)
        print(f"# threads: {args.threads or 'TF default'}; environment: "
              + (" ".join(f"{k}={v}" for k, v in thread_env(args.threads, {}).items()
                          if k.endswith("THREADS")) or "unchanged"), flush=True)
        driver.execute(dry_run=True)
        return 0
    driver.check_data()
    driver.runs_root.mkdir(parents=True, exist_ok=True)
    lock = open(driver.runs_root / ".driver.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.seek(0)
        raise SystemExit(f"error: another experiments.run holds {driver.runs_root}/.driver.lock"
                         f" (pid {lock.read().strip() or '?'}); let it finish or stop it first")
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()

    def on_signal(signum, frame):
        say(f"signal {signum}: stopping the current run (its last finished epoch is "
            "checkpointed; run the driver again to resume)")
        driver.terminate_child()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)  # SIGHUP is left alone (nohup ignores it)
    cpu = cpu_info()
    say(f"{len(runs)} run(s) planned; runs root {driver.runs_root}, evidence root "
        f"{driver.evidence_root}; threads {args.threads or 'TF default'}; nice {os.nice(0)}; "
        f"CPU {cpu['label']}; pid {os.getpid()}")
    t0 = time.time()
    try:
        outcome = driver.execute()
    except KeyboardInterrupt:
        driver.terminate_child()
        say("interrupted; run the driver again to resume")
        return 130
    say(f"all done in {fmt_seconds(time.time() - t0)}: {len(outcome['done'])} finished, "
        f"{len(outcome['skipped'])} skipped (already done), {len(outcome['crashed'])} crashed"
        + (f" ({', '.join(outcome['crashed'])})" if outcome["crashed"] else "")
        + f", {len(outcome['blocked'])} blocked"
        + (f" ({', '.join(outcome['blocked'])})" if outcome["blocked"] else ""))
    return 1 if outcome["crashed"] or outcome["blocked"] else 0


if __name__ == "__main__":
    sys.exit(main())
