"""fsspec: a filesystem's own path for a URL or a listed name, through public calls only.

The code used `fs._strip_protocol(...)`, a private classmethod. The public
`fsspec.core.strip_protocol(url)` picks the filesystem class from the URL's protocol, so a name a
filesystem lists without its protocol (`bucket/key` from S3) would be read as a local path;
`fs.unstrip_protocol` (public) gives the name its filesystem's protocol first. No private
attribute is used, so there is no version range to check; `tests/test_internals.py` checks the
result against the filesystems this project uses (local, memory, S3).
"""

from __future__ import annotations

import fsspec.core


def fs_path(fs, name: str) -> str:
    """`name` (a URL, or a path or listed name of `fs`) as `fs`'s own path, without its protocol."""
    return fsspec.core.strip_protocol(fs.unstrip_protocol(name))
