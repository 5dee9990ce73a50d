"""The evidence runs of issue #12, in the order the driver runs them.

Every run is a shipped recipe (keras_pkkd/recipes/) plus command-line overrides: the local
real CIFAR-10 files, the budget (--epochs), the seed and --model_dir=runs/evidence/<name>
(the recipes' own --model_dir and --teacher_model are overridden: flags on the command line
win over every flagfile). `python -m experiments.run --list` prints the plan.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
RECIPES_DIR = ROOT / "keras_pkkd" / "recipes"

# Real CIFAR-10 (../shared/data/cifar10/README.md): the first 20,000 official training images
# and the whole 10,000-image official test set. Relative to the repo root; the driver resolves
# them to absolute paths and refuses to start when they are absent.
TRAIN_DATA = "../shared/data/cifar10/train_20k.npz"
EVAL_DATA = "../shared/data/cifar10/test_10k.npz"

# Budgets. Measured training speed of ResNet-20 on this 2-core CPU (AMD EPYC, Zen 4;
# benchmarks/bench_throughput.py, docs/data.md): ANN ~380 img/s, PKKD ~92 img/s at batch 64
# (~227 and ~90 img/s at the recipes' batch 256); 20k images per epoch, so one PKKD epoch is
# ~220 s and a 15-epoch PKKD run ~1 hour with the two cores to itself (plus ~10% for the
# per-epoch evaluation on the 10k test images). 15 epochs is the most that lets the slowest
# method (PKKD) finish within one working session in the background; the same budget for every
# method of the main table. The ablation, sigma, kernel-sign and spread runs (17 of them) get 5
# epochs, ~20 min each for PKKD (less with a fixed teacher), about 5 hours in all.
MAIN_EPOCHS = 15
SMALL_EPOCHS = 5
# Three seeds per method of the main table (the issue asks for at least 3 for the ANN methods;
# the CNN gets the same, it is the cheapest); one seed for the small-budget comparisons.
MAIN_SEEDS = (0, 1, 2)
# Two more seeds of the two methods the central question compares (PKKD ANN against vanilla
# ANN). With 3 seeds a side no test can call a difference significant at 5%: the exact
# permutation test's smallest two-sided p is 2 / C(6, 3) = 0.1. With 5 a side it is
# 2 / C(10, 5) = 0.008. They run after the main table's required seeds, before the
# small-budget runs.
EXTRA_SEEDS = (3, 4)
SMALL_SEED = 0
# More seeds of the shipped default at the small budget (the run SHARED_DEFAULT_RUN, below, is
# its seed SMALL_SEED). The small-budget tables compare single runs; whether a setting wins
# beyond chance needs one run's seed spread at that budget, and the main table's spread is
# measured at MAIN_EPOCHS only. They run right after the sigma sweep, before the rest of the
# small-budget runs: every small-budget verdict is judged against them, and the main table's
# 15-epoch spread that stands in meanwhile is wider than a 5-epoch one need be.
SPREAD_SEEDS = (1, 2)
# The recipes' batch size (256, METHOD.md section 5) is kept: the budget is cut in epochs only,
# so every run is the paper recipe truncated (cosine schedule over the shorter run).

MAIN_METHODS = ("cnn", "ann", "bnn", "mmd", "pkkd")   # Table 2's columns
ANN_METHODS = ("ann", "bnn", "mmd", "pkkd")
# Seed 0 of every method first (in this order), then seeds 1 and 2 of the two methods the
# central question compares, then the rest of the main table, then EXTRA_SEEDS of those two,
# then the small-budget runs.
FIRST_SEED0_ORDER = ("pkkd", "ann", "cnn", "mmd", "bnn")
SECOND = ("ann", "pkkd")

# METHOD.md Table 1 rows, after a control the paper does not have: no feature KD (logit KD
# only), which shows what the rows' feature terms add to the logit KD they all share.
ABLATION_KD = ("none", "raw", "conv", "kernel", "kernel_conv")
ABLATION_TEACHERS = ("fixed", "progressive")
SIGMAS = ("0.1", "0.5", "1", "5", "10")                  # Table 3 (recipe file spelling)
DEFAULT_SIGMA = "10"   # the PKKD recipe's --sigma (resnet20_cifar10_pkkd.flags; tested)
CNN_KERNELS = ("a", "b")                                 # --cnn_kernel (METHOD.md section 3)

# The ablation's winner checked at the main budget. At SMALL_EPOCHS the raw feature term
# (with the progressive teacher: the PKKD recipe with --feature_kd=raw) beat the shipped kernel
# + 1x1 conv by 7.6 points, beyond the 1.56-point chance band (docs/results.md). A 5-epoch,
# one-seed reading does not say what it gives where the main table's question is asked, so
# these seeds train the PKKD recipe with only --feature_kd changed for MAIN_EPOCHS, and the
# report compares them with the main table's vanilla, MMD and PKKD ANN seeds.
CONFIRM_KD = "raw"
CONFIRM_SEEDS = (0, 1, 2)

# The fixed-teacher ablations read this finished CNN run (its model_dir's model.keras).
TEACHER_RUN = f"main_cnn_e{MAIN_EPOCHS}_s0"

# Three cells of the small-budget tables are the same configuration: the PKKD recipe (kernel +
# 1x1 conv, progressive teacher, sigma 10, --cnn_kernel=a, the defaults) at SMALL_EPOCHS. It is
# trained once, as the sigma = 10 run, and the ablation's kernel_conv / progressive cell and
# the kernel-sign reading (a) show that run (tests/test_experiments.py checks that the resolved
# flags are identical but for --model_dir). Saves two 20-minute PKKD runs. It is also seed
# SMALL_SEED of the small-budget spread (SPREAD_SEEDS).
SHARED_DEFAULT_RUN = f"sigma_10_e{SMALL_EPOCHS}_s{SMALL_SEED}"


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run: recipe + overrides, written to runs/evidence/<name>."""
    name: str
    recipe: str                  # file name in keras_pkkd/recipes/
    group: str                   # main / sigma / spread / ablation / cnn_kernel / confirm
    epochs: int
    seed: int
    overrides: tuple = ()        # extra ("flag", "value") pairs, in order
    depends_on: tuple = ()       # names of runs whose model_dir this run reads
    labels: tuple = ()           # (key, value) pairs the report uses (method, feature_kd...)

    @property
    def label(self):
        return dict(self.labels)

    @property
    def recipe_path(self):
        return RECIPES_DIR / self.recipe

    def paper_top1(self):
        """The paper's top-1 (%) the recipe's comment names, or None."""
        return paper_top1(self.recipe_path)


def paper_top1(recipe_path):
    """The first 'Paper top-1 ...: NN.NN%' of a recipe's comment lines, as a float, or None."""
    try:
        text = pathlib.Path(recipe_path).read_text()
    except OSError:
        return None
    m = re.search(r"^#.*Paper top-1[^:\n]*:\s*([0-9.]+)%", text, re.M)
    return float(m.group(1)) if m else None


def _main(method, seed):
    return Run(name=f"main_{method}_e{MAIN_EPOCHS}_s{seed}",
               recipe=f"resnet20_cifar10_{method}.flags", group="main", epochs=MAIN_EPOCHS,
               seed=seed, labels=(("method", method),))


def _ablation(kd, teacher):
    fixed = teacher == "fixed"
    return Run(name=f"ablation_{kd}_{teacher}_e{SMALL_EPOCHS}_s{SMALL_SEED}",
               recipe=f"ablation_{kd}_{teacher}.flags", group="ablation", epochs=SMALL_EPOCHS,
               seed=SMALL_SEED,
               overrides=(("teacher_model", f"@run:{TEACHER_RUN}"),) if fixed else (),
               depends_on=(TEACHER_RUN,) if fixed else (),
               labels=(("feature_kd", kd), ("teacher", teacher)))


def _sigma(sigma):
    return Run(name=f"sigma_{sigma}_e{SMALL_EPOCHS}_s{SMALL_SEED}",
               recipe=f"sigma_cifar10_{sigma}.flags", group="sigma", epochs=SMALL_EPOCHS,
               seed=SMALL_SEED, labels=(("sigma", sigma),))


def _cnn_kernel(reading):
    return Run(name=f"cnn_kernel_{reading}_e{SMALL_EPOCHS}_s{SMALL_SEED}",
               recipe="resnet20_cifar10_pkkd.flags", group="cnn_kernel", epochs=SMALL_EPOCHS,
               seed=SMALL_SEED, overrides=(("cnn_kernel", reading),),
               labels=(("cnn_kernel", reading),))


def _spread(seed):
    return Run(name=f"spread_default_e{SMALL_EPOCHS}_s{seed}",
               recipe=f"sigma_cifar10_{DEFAULT_SIGMA}.flags", group="spread", epochs=SMALL_EPOCHS, seed=seed,
               labels=(("sigma", DEFAULT_SIGMA),))


def _confirm(seed):
    return Run(name=f"confirm_{CONFIRM_KD}_e{MAIN_EPOCHS}_s{seed}",
               recipe="resnet20_cifar10_pkkd.flags", group="confirm", epochs=MAIN_EPOCHS,
               seed=seed, overrides=(("feature_kd", CONFIRM_KD),),
               labels=(("method", "pkkd"), ("feature_kd", CONFIRM_KD)))


def build_plan():
    """The runs in the order the driver runs them (dependencies before their dependents)."""
    runs = [_main(m, 0) for m in FIRST_SEED0_ORDER]
    runs += [_main(m, s) for s in MAIN_SEEDS[1:] for m in SECOND]
    runs += [_main(m, s) for m in MAIN_METHODS if m not in SECOND for s in MAIN_SEEDS[1:]]
    runs += [_main(m, s) for s in EXTRA_SEEDS for m in SECOND]
    # The sigma sweep first: at the recipe's sigma 10 the kernel maps are nearly affine and
    # the feature term's gradient is under 1% of the cross-entropy's (docs/results.md), so
    # which sigma wins is the small-budget question that matters most.
    runs += [_sigma(s) for s in SIGMAS]
    runs += [_spread(s) for s in SPREAD_SEEDS]
    runs += [_ablation(kd, t) for t in ABLATION_TEACHERS for kd in ABLATION_KD
             if not (kd == "kernel_conv" and t == "progressive")]
    runs += [_cnn_kernel(r) for r in CNN_KERNELS if r != "a"]
    runs += [_confirm(s) for s in CONFIRM_SEEDS]
    return runs


PLAN = build_plan()
BY_NAME = {r.name: r for r in PLAN}

# Cells of the report's tables that show another run (see SHARED_DEFAULT_RUN), with the recipe
# whose comment names the paper's number for that cell.
ALIASES = {
    f"ablation_kernel_conv_progressive_e{SMALL_EPOCHS}_s{SMALL_SEED}":
        (SHARED_DEFAULT_RUN, "ablation_kernel_conv_progressive.flags"),
    f"cnn_kernel_a_e{SMALL_EPOCHS}_s{SMALL_SEED}": (SHARED_DEFAULT_RUN, None),
}


def command(run, *, python, train_data, eval_data, model_dir, dependency_dir):
    """The argv of `python -m keras_pkkd.train` for `run`.

    Args:
        python: the interpreter (argv[0]).
        train_data, eval_data: the data files (str; the driver passes absolute paths).
        model_dir: this run's model_dir.
        dependency_dir: function name -> model_dir of another run (for --teacher_model).
    """
    argv = [str(python), "-m", "keras_pkkd.train", f"--flagfile={run.recipe}",
            "--dataset=cifar10", f"--train_data={train_data}", f"--eval_data={eval_data}",
            f"--epochs={run.epochs}", f"--seed={run.seed}"]
    for flag, value in run.overrides:
        if isinstance(value, str) and value.startswith("@run:"):
            value = dependency_dir(value[len("@run:"):])
        argv.append(f"--{flag}={value}")
    argv.append(f"--model_dir={model_dir}")
    return argv
