"""Runtimes: what runs the model on the board (``tflm``: a TFLite-Micro library; ``aot``: tinykeras' generated C).

Each gives its sources, plans its arena and states its flash/RAM costs. No TensorFlow.
"""
