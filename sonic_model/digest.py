"""SHA-256 of a local file, streamed: the content hash of inputs (content keys) and of signed parents (C2PA)."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK_BYTES = 1 << 20  # 1 MiB reads: memory stays flat whatever the file's size


def sha256_file(path: str | Path) -> str:
    """The file's SHA-256 as hex, read in 1 MiB blocks (a 2 GB video never sits in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()
