"""One rule for progress bars: drawn only when the user wants them and stderr is a terminal.

A bar redraws itself with carriage returns; written to a log file or a CI console those frames
pile up as noise, so there the per-epoch lines and summaries are the only output.
"""

from __future__ import annotations

import sys
from typing import TextIO


def bars_enabled(wanted: bool = True, stream: TextIO | None = None) -> bool:
    """True when a progress bar should be drawn: ``wanted`` and ``stream`` (stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(wanted) and stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
