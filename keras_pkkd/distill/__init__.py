"""Knowledge distillation of a CNN teacher into an ANN student: kernel maps, losses, PKKDModel."""

from keras_pkkd.distill import kernels, losses
from keras_pkkd.distill.pkkd_model import TEACHER_MODES, PKKDModel

__all__ = ["PKKDModel", "TEACHER_MODES", "kernels", "losses"]
