"""`curves`: training and test accuracy of several runs on one plot (the papers' Figure 2), and
the loss parts of each distillation run (CE, logit KD, feature loss, the 1x1 heads' norms).

Reads each run's `log.csv` (Keras CSVLogger, one row per epoch; keras_pkkd.training.plots'
reader): `accuracy` is the top-1 on the augmented training batches during the epoch,
`val_accuracy` the top-1 on the run's evaluation images after it. A run still training works
too (its log so far).
"""

from __future__ import annotations

import pathlib

from keras_pkkd.training.plots import read_log
from keras_pkkd.visualize.runs import LOG_FILE, METHOD_LABELS, VisualizeError, load_run, \
    progress, save

ACCURACY_FIGSIZE = (8.0, 5.0)
PARTS_FIGSIZE = (12.0, 4.5)
# (column, label) of the loss-parts panel; val_<column> is drawn dashed beside it.
LOSS_PARTS = (("loss", "student total"), ("ce", "CE"), ("kd", "logit KD"),
              ("feat", "feature loss"), ("teacher_loss", "teacher CE"))
HEAD_NORMS = (("student_head_norm", "student (ANN) 1x1 heads"),
              ("teacher_head_norm", "teacher (CNN) 1x1 heads"))


def run_label(run):
    return METHOD_LABELS.get(run.method, run.method.upper() if run.method else run.name)


def load_logs(model_dirs, labels=None):
    """[(label, run, columns)] of every model_dir, labels unique (run names added).

    Raises:
        VisualizeError: a missing folder or log.csv, a log without accuracy, a label count that
            does not match.
    """
    if not model_dirs:
        raise VisualizeError("no run given: pass --model_dir (repeatable)")
    if labels and len(labels) != len(model_dirs):
        raise VisualizeError(f"{len(labels)} --label for {len(model_dirs)} --model_dir: give "
                             "one label per run, or none")
    logs = []
    for model_dir in model_dirs:
        run = load_run(model_dir)
        path = run.path / LOG_FILE
        if not path.is_file():
            raise VisualizeError(f"{path} not found: --model_dir must be a keras_pkkd.train "
                                 "run (log.csv is written after every epoch)")
        columns = read_log(path)
        if "accuracy" not in columns and "val_accuracy" not in columns:
            raise VisualizeError(f"{path} has no accuracy / val_accuracy column (an empty log, "
                                 "or not a keras_pkkd.train log)")
        logs.append([run_label(run), run, columns])
    if labels:
        for entry, label in zip(logs, labels):
            entry[0] = label
    names = [entry[0] for entry in logs]
    for entry in logs:
        if names.count(entry[0]) > 1:
            entry[0] = f"{entry[0]} ({entry[1].name})"
    return [tuple(entry) for entry in logs]


def teacher_label(label):
    """"PKKD ANN" -> "PKKD teacher (CNN)"."""
    return label.replace(" ANN", "", 1) + " teacher (CNN)" if " ANN" in label \
        else f"{label} teacher (CNN)"


def plot_accuracy(logs, png_path, teachers=False, title=None):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=ACCURACY_FIGSIZE)
    for i, (label, _, columns) in enumerate(logs):
        color = f"C{i % 10}"
        lines = [("val_accuracy", f"{label} test", "-"), ("accuracy", f"{label} train", "--")]
        if teachers:
            lines += [("val_teacher_accuracy", f"{teacher_label(label)} test", "-."),
                      ("teacher_accuracy", f"{teacher_label(label)} train", ":")]
        for column, name, style in lines:
            if column in columns:
                epochs, values = zip(*columns[column])
                ax.plot(epochs, [100 * v for v in values], style, color=color,
                        marker="." if len(epochs) < 30 else None, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "training (dashed) and test (solid) top-1 accuracy"
                 + (";\nteachers: training dotted, test dash-dot" if teachers else ""))
    fig.tight_layout()
    return save(fig, png_path)


def plot_loss_parts(label, columns, png_path):
    """Loss parts (train solid, eval dashed) and the 1x1 heads' mean kernel norms of one
    distillation run."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax_loss, ax_norm) = plt.subplots(1, 2, figsize=PARTS_FIGSIZE)
    values_seen = []
    for i, (column, name) in enumerate(LOSS_PARTS):
        for prefix, style in (("", "-"), ("val_", "--")):
            if prefix + column in columns:
                epochs, values = zip(*columns[prefix + column])
                values_seen += [v for v in values if v > 0]
                ax_loss.plot(epochs, values, style, color=f"C{i}",
                             label=name if not prefix else None,
                             marker="." if len(epochs) < 30 else None)
    if values_seen and max(values_seen) / min(values_seen) > 20:
        ax_loss.set_yscale("log")
    ax_loss.set_title(f"{label}: loss parts (solid: training, dashed: eval)")
    norms = [(c, n) for c, n in HEAD_NORMS if c in columns]
    for i, (column, name) in enumerate(norms):
        epochs, values = zip(*columns[column])
        ax_norm.plot(epochs, values, color=f"C{i + 5}", label=name,
                     marker="." if len(epochs) < 30 else None)
    if not norms:
        ax_norm.text(0.5, 0.5, "no 1x1 heads logged\n(not a kernel / conv feature-KD run)",
                     ha="center", va="center", transform=ax_norm.transAxes)
    ax_norm.set_title(f"{label}: mean L2 norm of the 1x1 heads' kernels")
    for ax in (ax_loss, ax_norm):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:  # below the axes: the curves fill every corner
            ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.tight_layout()
    return save(fig, png_path)


def _slug(text):
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


def curves(model_dirs, output=".", labels=None, teachers=False):
    """Writes `curves_accuracy.png` (all runs) and `curves_loss_parts_<run>.png` for every run
    that logged distillation terms (ce / kd / feat).

    Args:
        model_dirs: training runs (finished or still training).
        labels: one legend label per run (default: the method, PKKD ANN, CNN, ...).
        teachers: also draw the progressive teachers' accuracy of KD runs.

    Returns:
        dict: "paths", "runs" ({label: {column: [(epoch, value)]}}).

    Raises:
        VisualizeError: missing folders or logs.
    """
    logs = load_logs(model_dirs, labels)
    out = pathlib.Path(output)
    progress(f"{len(logs)} run(s): " + ", ".join(f"{label} ({len(cols.get('val_accuracy', []))}"
                                                  " epochs)" for label, _, cols in logs))
    paths = [plot_accuracy(logs, out / "curves_accuracy.png", teachers)]
    for label, run, columns in logs:
        if any(c in columns for c in ("ce", "kd", "feat")):
            paths.append(plot_loss_parts(label, columns,
                                         out / f"curves_loss_parts_{_slug(run.name)}.png"))
    return {"paths": paths, "runs": {label: columns for label, _, columns in logs}}


def add_parser(subparsers):
    p = subparsers.add_parser("curves", help="accuracy curves of runs; PKKD loss parts",
                              description=__doc__.splitlines()[0])
    p.add_argument("--model_dir", action="append", default=[], help="a training run "
                                                                    "(repeatable)")
    p.add_argument("--label", action="append", default=[],
                   help="legend label of each run, in --model_dir order (default: the method)")
    p.add_argument("--teachers", action="store_true",
                   help="also draw the progressive teachers' accuracy")
    return p


def check_args(parser, args):
    if not args.model_dir:
        parser.error("curves: give --model_dir (repeatable)")
    if args.label and len(args.label) != len(args.model_dir):
        parser.error(f"curves: {len(args.label)} --label for {len(args.model_dir)} --model_dir")


def main(args):
    return curves(args.model_dir, args.output, args.label or None, args.teachers)
