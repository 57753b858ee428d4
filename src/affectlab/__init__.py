"""affectlab: facial action units, expressions and valence/arousal, estimated jointly.

Importing affectlab installs the torchvision compatibility hook (:mod:`affectlab.compat`) so that
torchvision imports cleanly even where its compiled operators cannot load.
"""
from affectlab import compat as _compat

__version__ = "0.1.0"

_compat.install_torchvision_hook()
