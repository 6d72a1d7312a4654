"""``tinykeras tune``: hardware-aware model search with Keras Tuner (the search lives in ``search``)."""

from tinykeras.tune.search import *  # noqa: F403
from tinykeras.tune.search import _bayesian_class, import_keras_tuner  # noqa: F401
