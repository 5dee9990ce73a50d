"""Training curves of a run (from its CSV log) as a PNG."""

from __future__ import annotations

import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# (panel title, [(column, label)]) of the figure; columns absent from the log are left out.
PANELS = (
    ("loss", [("loss", "student train"), ("val_loss", "student eval"),
              ("teacher_loss", "teacher train"), ("val_teacher_loss", "teacher eval")]),
    ("top-1 accuracy", [("accuracy", "student train"), ("val_accuracy", "student eval"),
                        ("teacher_accuracy", "teacher train"),
                        ("val_teacher_accuracy", "teacher eval")]),
    ("distillation terms", [("ce", "CE"), ("kd", "logit KD"), ("feat", "feature")]),
)


def read_log(path):
    """{column: [(epoch, value)]} of a Keras CSVLogger file (epochs from 1)."""
    columns = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            epoch = int(row["epoch"]) + 1
            for key, value in row.items():
                if key == "epoch" or value in ("", None):
                    continue
                try:
                    number = float(value)
                except ValueError:
                    continue
                columns.setdefault(key, []).append((epoch, number))
    return columns


def plot_curves(csv_path, png_path, title):
    """Writes the curves of `csv_path` to `png_path`; returns False when there is nothing to
    plot (an empty log)."""
    columns = read_log(csv_path)
    panels = [(t, [(c, lbl) for c, lbl in lines if c in columns]) for t, lines in PANELS]
    panels = [(t, lines) for t, lines in panels if lines]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (panel_title, lines) in zip(axes[0], panels):
        for column, label in lines:
            epochs, values = zip(*columns[column])
            ax.plot(epochs, values, marker="." if len(epochs) < 30 else None, label=label)
        ax.set_title(panel_title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return True
