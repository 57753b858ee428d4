"""affectlab: facial action units, expressions and valence/arousal, estimated jointly.

Importing affectlab does no work: torch and the models load on first use, and the torchvision
compatibility hook (:mod:`affectlab.compat`) is installed where affectlab imports torchvision.
"""
__version__ = "0.1.0"

# The everyday entry points, imported on first use so that `import affectlab` stays light (no torch).
_LAZY = {"load_model": "affectlab.models", "create_model": "affectlab.models", "list_models": "affectlab.models",
         "Analyzer": "affectlab.analyze.analyzer"}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'affectlab' has no attribute {name!r}")
