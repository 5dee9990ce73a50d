"""Deploying adder networks: TFLite export with an `AdderConv2D` custom op, and running it.

    from keras_pkkd import export
    result = export.to_tflite(model, "ann.tflite")            # custom op AdderConv2D
    interp = export.interpreter("ann.tflite", num_threads=2)   # LiteRT + the native kernel

See docs/export.md (Python, CLI `python -m keras_pkkd.export`, Android).
"""

from keras_pkkd.export.converter import (
    CUSTOM_OP_NAME,
    ExportError,
    ExportResult,
    as_float32,
    to_tflite,
)
from keras_pkkd.export import metadata  # noqa: E402  (after the converter it imports)
from keras_pkkd.export.runtime import (
    RuntimeUnavailableError,
    delegate_path,
    interpreter,
    load_delegate,
    predict,
)

__all__ = ["CUSTOM_OP_NAME", "ExportError", "ExportResult", "RuntimeUnavailableError",
           "as_float32", "delegate_path", "interpreter", "load_delegate", "metadata", "predict",
           "to_tflite"]
