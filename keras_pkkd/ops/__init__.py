"""The adder op: compiled kernels loaded once, a pure-TF fallback, the AdderNet gradients."""

from keras_pkkd.ops.adder_conv2d import adder_conv2d
from keras_pkkd.ops.loader import (
    CompiledOpUnavailableError,
    build_info,
    cpu_isa,
    custom_op_available,
    unavailable_reason,
)

__all__ = [
    "adder_conv2d",
    "custom_op_available",
    "unavailable_reason",
    "build_info",
    "cpu_isa",
    "CompiledOpUnavailableError",
]
