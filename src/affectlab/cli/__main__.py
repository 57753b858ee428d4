"""``python -m affectlab.cli`` (what ``torchrun -m affectlab.cli train ...`` runs on each process)."""
import sys

from affectlab.cli import main

sys.exit(main())
