"""tinykeras: Keras model to microcontroller firmware, one honest pipeline."""

import os

# tfmot and tf_keras need Keras 2 semantics; this must be set before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's native log lines (CUDA probing on CPU machines) drown the real output; errors still raise.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if os.environ.get("TINYKERAS_DEBUG") else "3")

__version__ = "0.1.0"

_API = ("quantize", "validate", "build")  # not "emulate": tinykeras.emulate is the module


def __getattr__(name: str):  # noqa: ANN202 - lazy API: TensorFlow loads only when a model is converted
    """``tinykeras.quantize`` / ``validate`` / ``build`` (see :mod:`tinykeras.api`)."""
    if name in _API:
        from tinykeras import api

        return getattr(api, name)
    raise AttributeError(f"module 'tinykeras' has no attribute {name!r}")
