"""Train a paper recipe: `python -m keras_pkkd.train --flagfile=resnet20.flags [--flag=value ...]`.

Flags on the command line override the flagfile. Shipped recipes (keras_pkkd/recipes/, usable
by bare name from any directory): `--flagfile=resnet20.flags` (ResNet-20 ANN by PKKD on
CIFAR-10), `<model>_<dataset>_<method>.flags` for every model / dataset / method of METHOD.md,
`ablation_<feature_kd>_<teacher>.flags`, `sigma_<dataset>_<sigma>.flags`. `--helpfull` lists
every flag; docs/training.md explains them.
"""

from __future__ import annotations

import os
import sys
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags as absl_flags  # noqa: E402

from keras_pkkd import flags as pkkd_flags  # noqa: E402

USAGE = "usage: python -m keras_pkkd.train --flagfile=RECIPE [--flag=value ...]  (--helpfull)"


def parse(argv):
    """(config namespace, resolved flags as flagfile text) from argv without the program name.

    Raises:
        SystemExit: --help / --helpfull (code 0), bad flags or flagfiles (code 2).
    """
    fv = pkkd_flags.define_flags(absl_flags.FlagValues())
    if any(a in ("-h", "--help", "--helpfull", "-help", "--helpshort") for a in argv):
        print(__doc__.strip() + "\n\n" + USAGE + "\n\nFlags:\n" + fv.get_help())
        raise SystemExit(0)
    try:
        args = pkkd_flags.expand_flagfiles(argv)
        rest = fv(["keras_pkkd.train"] + args)
    except (pkkd_flags.FlagfileError, absl_flags.Error) as e:
        print(f"error: {e}\n{USAGE}", file=sys.stderr)
        raise SystemExit(2) from None
    if len(rest) > 1:
        print(f"error: unexpected arguments {rest[1:]} (flags are --name=value)\n{USAGE}",
              file=sys.stderr)
        raise SystemExit(2)
    problems = pkkd_flags.validate(fv)
    if problems:
        print("error: " + "\n       ".join(problems) + f"\n{USAGE}", file=sys.stderr)
        raise SystemExit(2)
    return types.SimpleNamespace(**fv.flag_values_dict()), fv.flags_into_string()


def _deterministic():
    """Bit-identical reruns: TF's op determinism. oneDNN's CPU kernels must be off too (with
    them, runs that overlap many ops, like PKKD's feature losses, differ in the last bits);
    they are chosen when TensorFlow loads, so that takes TF_ENABLE_ONEDNN_OPTS=0 in the
    environment of the command."""
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
        print("warning: --deterministic: oneDNN kernels are on; run the command with "
              "TF_ENABLE_ONEDNN_OPTS=0 in its environment for bit-identical runs",
              file=sys.stderr)
    import tensorflow as tf
    tf.config.experimental.enable_op_determinism()


def main(argv=None):
    """Parses argv, trains, returns the results dict; errors exit with a message, no traceback."""
    cfg, text = parse(sys.argv[1:] if argv is None else list(argv))
    from keras_pkkd.training import strategy  # imports TensorFlow

    if cfg.cpu_devices:
        strategy.split_cpu(cfg.cpu_devices)
    if cfg.deterministic:
        _deterministic()
    from keras_pkkd import data
    from keras_pkkd.training import checkpointing, networks, runner

    expected = (runner.RunError, data.DataError, networks.TeacherModelError,
                checkpointing.CheckpointError, ValueError, OSError)
    try:
        return runner.run(cfg, text)
    except expected as e:
        if os.environ.get("KERAS_PKKD_TRACEBACK"):
            raise
        print(f"error: {e}\n(KERAS_PKKD_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("interrupted: the last finished epoch is checkpointed; run the same command "
              "again to resume", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
