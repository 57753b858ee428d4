"""The inference layer, below the apps (analyze, train, interpret): models run on faces.

- :mod:`~affectlab.inference.outputs`: logits to probabilities (the one place), :class:`FaceOutputs`.
- :mod:`~affectlab.inference.backends`: the :class:`Backend` contract, its PyTorch and onnxruntime
  implementations, and :func:`open_backend`, the one place a backend is chosen (torch-free on import).
- :mod:`~affectlab.inference.batch`: a model or an ensemble over a sample table, and its scores (imports torch).
- :mod:`~affectlab.inference.smoothing`: temporal smoothing of a model's features, SMM eq. 9 (imports torch).
"""
from affectlab.inference.backends import Backend, OnnxBackend, TorchBackend, open_backend
from affectlab.inference.outputs import FaceOutputs, probabilities

__all__ = ["Backend", "FaceOutputs", "OnnxBackend", "TorchBackend", "open_backend", "probabilities"]
