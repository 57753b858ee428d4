"""affectlab: facial action units, expressions and valence/arousal, estimated jointly.

Importing affectlab installs the torchvision compatibility hook (:mod:`affectlab.compat`) so that
torchvision imports cleanly even where its compiled operators cannot load.
"""
from affectlab import compat as _compat

__version__ = "0.1.0"

_compat.install_torchvision_hook()

# The everyday entry points, imported on first use so that `import affectlab` stays light (no torch).
_LAZY = {"load_model": "affectlab.models", "create_model": "affectlab.models", "list_models": "affectlab.models",
         "Analyzer": "affectlab.analyze.analyzer"}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'affectlab' has no attribute {name!r}")
