"""Test-only generators, registered in every process that imports this file.

Dask workers load it with `sonic-catalog worker ... --preload tests/dask_stand_ins.py`; the
flow's process imports it too (it needs the generator's name and version for content keys).
Everything else on the path (materialize, render_video, encode, QA, publish) is the real code.

- `slow-preview`: the CPU preview generator, after sleeping SONIC_TEST_RENDER_DELAY_S (default
  0) so a test can kill a worker while it renders. Before sleeping it drops a marker file
  `<SONIC_TEST_MARKER_DIR>/rendering-<pid>-<n>` so the test knows which process is rendering.
- `lost-model`: loads, then raises mid-row like a GPU that fell off the bus; each attempt leaves
  a marker `<SONIC_TEST_MARKER_DIR>/lost-<pid>-<n>`, so a test can count the attempts.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

from sonic_model.generators import register_generator
from sonic_model.preview.generator import PreviewGenerator

_COUNTER = itertools.count()


def _mark(kind: str) -> None:
    folder = os.environ.get("SONIC_TEST_MARKER_DIR")
    if folder:
        Path(folder, f"{kind}-{os.getpid()}-{next(_COUNTER)}").touch()


class SlowPreviewGenerator(PreviewGenerator):
    name = "slow-preview"
    version = "1.0-test"

    def frames(self, portrait_rgb, audio, params, *, face_box=None):
        _mark("rendering")
        time.sleep(float(os.environ.get("SONIC_TEST_RENDER_DELAY_S", "0")))
        yield from super().frames(portrait_rgb, audio, params, face_box=face_box)


class LostModelGenerator(PreviewGenerator):
    name = "lost-model"
    version = "1.0-test"

    def frames(self, portrait_rgb, audio, params, *, face_box=None):
        _mark("lost")
        raise RuntimeError("CUDA error: an illegal memory access was encountered (simulated: the model is gone)")
        yield  # pragma: no cover - a generator function


register_generator("slow-preview", SlowPreviewGenerator)
register_generator("lost-model", LostModelGenerator)


def dask_setup(worker) -> None:  # noqa: ARG001 - Dask's preload hook; registering at import is enough
    pass


def cli_main(argv: list[str]) -> int:
    """The real `sonic-catalog` entry point; `--generator` accepts the names above because the
    CLI offers every generator registered when it builds its parser."""
    from sonic_catalog.cli import main

    return main(argv)
