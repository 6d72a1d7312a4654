"""tinykeras: Keras model to microcontroller firmware, one honest pipeline."""

import os

# tfmot and tf_keras need Keras 2 semantics; this must be set before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
