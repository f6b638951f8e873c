"""``python -m islr`` (also what ``torchrun -m islr`` runs)."""

import sys

from islr.cli import main

sys.exit(main())
