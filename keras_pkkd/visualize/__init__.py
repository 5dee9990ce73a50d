"""Pictures of what keras_pkkd builds and trains (issue #11).

    from keras_pkkd import visualize
    visualize.ops(model="resnet20", output="figs", dtype="float32")       # op / energy table
    visualize.weights(model_dirs=["runs/r20_pkkd"], output="figs")        # weight histograms
    visualize.curves(model_dirs=["runs/r20_cnn", "runs/r20_ann", "runs/r20_pkkd"], output="figs")
    visualize.attribution(model_dirs=[cnn, ann, pkkd], output="figs")     # tf-keras-vis maps
    visualize.features(model_dirs=[cnn, ann, pkkd], output="figs")        # papers' Figure 1

Each function writes PNG files (matplotlib, Agg backend) and returns a dict whose "paths" lists
them, with the numbers behind them. The same from the shell:
`python -m keras_pkkd.visualize <ops|weights|curves|attribution|features> --help`.
Problems with the inputs raise `VisualizeError`. docs/visualize.md shows every figure.
"""

from keras_pkkd.visualize.runs import VisualizeError

COMMANDS = ("ops", "weights", "curves", "attribution", "features")


def ops(**kwargs):
    """keras_pkkd.visualize.ops_energy.ops: operations and energy per image."""
    from keras_pkkd.visualize import ops_energy
    return ops_energy.ops(**kwargs)


def weights(**kwargs):
    """keras_pkkd.visualize.weight_histograms.weights: histograms, Laplace / Gaussian fits."""
    from keras_pkkd.visualize import weight_histograms as module
    return module.weights(**kwargs)


def curves(**kwargs):
    """keras_pkkd.visualize.training_curves.curves: accuracy curves of runs, PKKD loss parts."""
    from keras_pkkd.visualize import training_curves as module
    return module.curves(**kwargs)


def attribution(**kwargs):
    """keras_pkkd.visualize.attribution_maps.attribution: Saliency, GradCAM, GradCAM++."""
    from keras_pkkd.visualize import attribution_maps as module
    return module.attribution(**kwargs)


def features(**kwargs):
    """keras_pkkd.visualize.feature_space.features: penultimate features in 2-D (Figure 1)."""
    from keras_pkkd.visualize import feature_space as module
    return module.features(**kwargs)


__all__ = ["COMMANDS", "VisualizeError", "attribution", "curves", "features", "ops", "weights"]
