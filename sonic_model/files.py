"""Output files written beside their final name, then moved into place.

A video (or its sound) is written to a hidden temporary file in the destination's own folder,
so the final `os.replace` is an atomic rename on the same filesystem: a killed process leaves a
hidden `.<stem>.*` file, never a half-written file under the final name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sonic_model.errors import OutputError


def temporary_beside(target: str | Path, suffix: str) -> Path:
    """A new, empty hidden file `.<stem>.XXXX<suffix>` next to `target` (its folder made if missing)."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=suffix, dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write output in {target.parent}: {exc.strerror or exc}") from None
    return Path(tmp)
