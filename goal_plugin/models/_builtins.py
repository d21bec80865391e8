"""The built-in backbones beyond ``mlp`` and ``small_cnn``, registered on the first lookup."""

from goal_plugin.models import sequence_backbones as _sequence  # noqa: F401
from goal_plugin.models import text_backbones as _text  # noqa: F401
from goal_plugin.models import torchvision_backbones as _torchvision  # noqa: F401
