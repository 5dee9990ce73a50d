"""The training CLI's flags (`define_flags`) and flagfile resolution (`expand_flagfiles`).

    python -m keras_pkkd.train --flagfile=resnet20.flags --epochs=10 --model_dir=runs/r20

Flagfiles hold one `--flag=value` per line (`#` and `//` start comment lines) and may include
other flagfiles with `--flagfile=NAME`. A NAME that is not an existing path is looked up next to
the including flagfile, then among the recipes shipped in `keras_pkkd/recipes/` (the `.flags`
suffix may be left out), so the shipped recipes work from any directory. Flags given on the
command line override every flagfile, wherever they appear.
"""

from __future__ import annotations

import pathlib

from absl import flags

RECIPES_DIR = pathlib.Path(__file__).resolve().parent / "recipes"

MODELS = ("resnet20", "resnet32", "vgg_small", "resnet18", "resnet50")
# method -> (student kind, distillation feature_kd or None when the method trains one network)
METHODS = {
    "cnn": ("conv", None),
    "ann": ("adder", None),
    "bnn": ("binary", None),
    "kd": ("adder", "none"),        # logit KD only
    "mmd": ("adder", "mmd"),        # NST / MMD feature distillation baseline
    "pkkd": ("adder", "kernel_conv"),
}
FEATURE_KD = ("default", "kernel_conv", "kernel", "conv", "raw", "mmd", "none")
DATASETS = ("cifar10", "cifar100", "imagenet2012", "none")


class FlagfileError(ValueError):
    """A flagfile that cannot be found or read."""


def shipped_recipes():
    """Names of the flagfiles shipped in keras_pkkd/recipes, sorted."""
    return sorted(p.name for p in RECIPES_DIR.glob("*.flags"))


def resolve_flagfile(name, including_dir=None):
    """The path of flagfile `name`: as given, next to the including file, or a shipped recipe.

    Raises:
        FlagfileError: when none of these exists.
    """
    path = pathlib.Path(name).expanduser()
    candidates = [path]
    if not path.is_absolute():
        if including_dir is not None:
            candidates.append(pathlib.Path(including_dir) / path)
        if len(path.parts) == 1:
            candidates += [RECIPES_DIR / path.name, RECIPES_DIR / (path.name + ".flags")]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise FlagfileError(
        f"flagfile {name!r} not found: it is not a file (from {pathlib.Path.cwd()}) and not one "
        f"of the shipped recipes in {RECIPES_DIR}: {', '.join(shipped_recipes())}")


def _read_flagfile(path, stack):
    if path in stack:
        chain = " -> ".join(str(p) for p in stack + [path])
        raise FlagfileError(f"flagfile include cycle: {chain}")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise FlagfileError(f"cannot read flagfile {path}: {e}") from None
    args = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("//"):
            continue
        if not line.startswith("-"):
            raise FlagfileError(f"{path}:{number}: expected --flag=value, got {line!r}")
        name, _, value = line.lstrip("-").partition("=")
        if name == "flagfile":
            if not value:
                raise FlagfileError(f"{path}:{number}: --flagfile needs a value")
            args += _read_flagfile(resolve_flagfile(value, path.parent), stack + [path])
        else:
            args.append(line)
    return args


def expand_flagfiles(argv):
    """argv (without the program name) with every --flagfile replaced by the flags it holds.

    The flags read from flagfiles come first, in order, then the command line's own flags, so
    the command line wins (absl keeps the last value of a repeated flag).

    Raises:
        FlagfileError: a missing or unreadable flagfile, an include cycle, a malformed line.
    """
    from_files, own = [], []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("--flagfile", "-flagfile"):
            if i + 1 >= len(args):
                raise FlagfileError("--flagfile needs a value")
            from_files += _read_flagfile(resolve_flagfile(args[i + 1]), [])
            i += 2
            continue
        if arg.startswith(("--flagfile=", "-flagfile=")):
            from_files += _read_flagfile(resolve_flagfile(arg.split("=", 1)[1]), [])
        else:
            own.append(arg)
        i += 1
    return from_files + own


def define_flags(flag_values=flags.FLAGS):
    """Declares every flag of `python -m keras_pkkd.train` in `flag_values`; returns it."""
    fv = flag_values
    # What to train.
    flags.DEFINE_enum("model", "resnet20", MODELS, "Network architecture (teacher and student "
                      "share it).", flag_values=fv)
    flags.DEFINE_enum("method", "pkkd", list(METHODS),
                      "cnn / ann / bnn: the network alone; kd: ANN with logit KD from a CNN; "
                      "mmd: ANN with MMD feature KD (+ logit KD); pkkd: the method (kernel maps "
                      "+ 1x1 heads + logit KD, progressive teacher).", flag_values=fv)
    flags.DEFINE_enum("feature_kd", "default", FEATURE_KD,
                      "Feature distillation of the KD methods; default: the method's own "
                      "(pkkd: kernel_conv, mmd: mmd, kd: none). The ablation of METHOD.md "
                      "Table 1 uses raw / conv / kernel / kernel_conv.", flag_values=fv)
    flags.DEFINE_enum("teacher", "progressive", ["progressive", "fixed"],
                      "progressive: the CNN teacher trains in the same step on the same batch; "
                      "fixed: a trained teacher (--teacher_model) stays frozen.", flag_values=fv)
    flags.DEFINE_string("teacher_model", None,
                        "A trained teacher (.keras file, or the model_dir of a finished cnn "
                        "run). Required with --teacher=fixed; with progressive it initializes "
                        "the teacher.", flag_values=fv)
    flags.DEFINE_float("sigma", 1.0, "Kernel width of both kernel maps (sigma_a = sigma_c).",
                       flag_values=fv)
    flags.DEFINE_float("sigma_a", None, "Overrides sigma for the ANN's Laplace kernel.",
                       flag_values=fv)
    flags.DEFINE_float("sigma_c", None, "Overrides sigma for the CNN's Gaussian-alike kernel.",
                       flag_values=fv)
    flags.DEFINE_enum("cnn_kernel", "a", ["a", "b"], "Reading of the CNN kernel map "
                      "(docs/pkkd.md).", flag_values=fv)
    flags.DEFINE_float("alpha", 0.1, "Weight of the logit KD term (1 - alpha on CE).",
                       flag_values=fv)
    flags.DEFINE_float("tau", 4.0, "Temperature of the logit KD term.", flag_values=fv)
    flags.DEFINE_float("beta", 0.1, "Weight of the feature loss (docs/pkkd.md: why 0.1).",
                      flag_values=fv)
    flags.DEFINE_float("eta", 0.2, "Adaptive learning-rate scaling of the adder layers "
                       "(0 turns it off).", flag_values=fv)
    # Data.
    flags.DEFINE_enum("dataset", "cifar10", list(DATASETS),
                      "tensorflow-datasets name; with --train_data/--eval_data it only picks "
                      "the normalization constants and class names (none: local data only, "
                      "constants computed from the training data).", flag_values=fv)
    flags.DEFINE_string("data_dir", None, "tensorflow-datasets data_dir (default: tfds').",
                        flag_values=fv)
    flags.DEFINE_string("manual_dir", None, "tfds manual download dir (imagenet2012 tars).",
                        flag_values=fv)
    flags.DEFINE_bool("download", True, "Let tensorflow-datasets download a missing dataset "
                      "(fails fast when offline).", flag_values=fv)
    flags.DEFINE_string("train_data", None, "Local training data instead of tfds: an .npz "
                        "file (x uint8 NHWC, y int) or an image folder (one subfolder per "
                        "class).", flag_values=fv)
    flags.DEFINE_string("eval_data", None, "Local evaluation data, same formats.",
                        flag_values=fv)
    flags.DEFINE_integer("train_examples", None, "Use only the first N training examples.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("eval_examples", None, "Use only the first N evaluation examples.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("image_size", None, "Input side; default 32 for CIFAR models, 224 for "
                         "ImageNet models.", lower_bound=8, flag_values=fv)
    # Optimization (METHOD.md section 5).
    flags.DEFINE_integer("epochs", 400, "Training epochs.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("batch_size", 256, "Global batch size (split across replicas).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("eval_batch_size", None, "Default: --batch_size.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_float("lr", 0.1, "Peak learning rate (teacher and student).", flag_values=fv)
    flags.DEFINE_enum("lr_schedule", "cosine", ["cosine", "constant"],
                      "cosine: decays to 0 over the run (after the warmup).", flag_values=fv)
    flags.DEFINE_float("warmup_epochs", 0.0, "Linear warmup from 0 to --lr.", lower_bound=0.0,
                       flag_values=fv)
    flags.DEFINE_float("momentum", 0.9, "SGD momentum.", lower_bound=0.0, flag_values=fv)
    flags.DEFINE_bool("nesterov", False, "Nesterov momentum.", flag_values=fv)
    flags.DEFINE_float("weight_decay", 5e-4, "L2 weight decay added to the gradient, as in "
                       "PyTorch's SGD (all trainable variables).", lower_bound=0.0,
                       flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of weights, data order and augmentation.",
                         flag_values=fv)
    flags.DEFINE_enum("mixed_precision", "none", ["none", "float16", "bfloat16"],
                      "Mixed precision compute dtype (variables stay float32; float16 uses "
                      "loss scaling).", flag_values=fv)
    # Execution.
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                      "tf.distribute strategy; multi_worker reads the cluster from TF_CONFIG "
                      "(docs/training.md).", flag_values=fv)
    flags.DEFINE_integer("cpu_devices", None, "Split the CPU into N logical devices (to run "
                         "--strategy=mirrored on a CPU-only machine).", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_enum("ops", "auto", ["auto", "compiled", "python"],
                      "Adder op implementation (KERAS_PKKD_OPS).", flag_values=fv)
    flags.DEFINE_bool("deterministic", False, "Bit-identical reruns: TF op determinism; also "
                      "set TF_ENABLE_ONEDNN_OPTS=0 in the environment (oneDNN's CPU kernels are "
                      "not deterministic when ops overlap).", flag_values=fv)
    flags.DEFINE_integer("bn_recalibration_batches", 50, "After training, recompute every BN "
                         "layer's moving statistics as the average over this many training "
                         "batches with the final weights (precise BN; adder networks need it: "
                         "docs/training.md). 0: keep the moving averages of training.",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("validation_bn_batches", 0, "Before each per-epoch validation, "
                         "recompute the BN statistics over this many training batches (precise "
                         "BN, keras_pkkd.callbacks.PreciseBN): val_* then show what the weights "
                         "give, not training's lagging moving averages, at the cost of N "
                         "forward passes per validation. 0: validate with the moving averages.",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("steps_per_execution", 1, "Training steps per tf.function call.",
                         lower_bound=1, flag_values=fv)
    # Output.
    flags.DEFINE_string("model_dir", None, "Where checkpoints, logs, flags and results go "
                        "(default: runs/<model>_<dataset>_<method>).", flag_values=fv)
    flags.DEFINE_bool("resume", True, "Continue from the last checkpoint in --model_dir. With "
                      "--noresume an existing checkpoint is an error (nothing is overwritten).",
                      flag_values=fv)
    flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept (one per epoch).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("validate_every", 1, "Evaluate on the eval data every N epochs "
                         "(0: only at the end).", lower_bound=0, flag_values=fv)
    flags.DEFINE_enum("verbose", "auto", ["auto", "0", "1", "2"], "Keras progress output: "
                      "auto = bar on a terminal, one line per epoch otherwise.", flag_values=fv)
    return fv


def validate(fv):
    """Checks combinations the single-flag validators cannot; returns a list of error strings."""
    errors = []
    kind, feature_kd = METHODS[fv.method]
    if fv.feature_kd != "default" and feature_kd is None:
        errors.append(f"--feature_kd={fv.feature_kd} needs a KD method (kd, mmd, pkkd), not "
                      f"--method={fv.method}")
    if fv.teacher == "fixed" and feature_kd is not None and not fv.teacher_model:
        errors.append("--teacher=fixed needs --teacher_model (a trained CNN: a .keras file or "
                      "the model_dir of a finished cnn run)")
    for name in ("sigma", "sigma_a", "sigma_c", "tau", "lr"):
        value = getattr(fv, name)
        if value is not None and not value > 0:
            errors.append(f"--{name} must be > 0, got {value}")
    if not 0.0 <= fv.alpha <= 1.0:
        errors.append(f"--alpha must be in [0, 1], got {fv.alpha}")
    if fv.beta < 0:
        errors.append(f"--beta must be >= 0, got {fv.beta}")
    if fv.eta < 0:
        errors.append(f"--eta must be >= 0, got {fv.eta}")
    if fv.warmup_epochs >= fv.epochs:
        errors.append(f"--warmup_epochs ({fv.warmup_epochs}) must be < --epochs ({fv.epochs})")
    if fv.dataset == "none" and not fv.train_data:
        errors.append("--dataset=none needs --train_data and --eval_data")
    if bool(fv.train_data) != bool(fv.eval_data):
        errors.append("--train_data and --eval_data go together (give both, or neither to use "
                      "tensorflow-datasets)")
    if fv.strategy == "multi_worker" and fv.cpu_devices:
        errors.append("--cpu_devices is for --strategy=mirrored on one machine")
    return errors


def student_feature_kd(fv):
    """(student kind, PKKDModel feature_kd or False when the method trains a single network)."""
    kind, default = METHODS[fv.method]
    if default is None:
        return kind, False
    chosen = default if fv.feature_kd == "default" else fv.feature_kd
    return kind, (None if chosen == "none" else chosen)
