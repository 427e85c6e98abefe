"""Stand-ins for benchmarks/fanout_scaling.py, loaded by every Dask worker (`--preload`) and by
the flow's process: the generation (`render_video`, what runs in a GPU's generation slot) is a
fixed 1 s that uses no CPU (time.sleep) and copies a prepared video; the media work around the
render that would otherwise dominate a 1 s row (probe, QA, poster) returns prepared results.
Everything else is the real path: the render task and its GPU resource, materializing and
hashing the inputs, the generation slot, the shared-scratch hand-off and publishing through
fsspec.

Reads FANOUT_VIDEO (a prepared MP4), FANOUT_POSTER (a prepared JPEG) and FANOUT_MEDIA (the
folder holding hopper.jpg and de.wav) from the environment; FANOUT_TRACE, if set, gets one line
per generation: worker pid, start and end (wall clock).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

import tasks.probe
import tasks.publish
import tasks.qa
import tasks.render
from sonic_model.generators import register_generator
from tasks.records import ProbedRow

sys.path.insert(0, str(Path(__file__).resolve().parent))  # preloaded as a file: find its siblings
from stand_in_results import passing_qa, prepared_render_result  # noqa: E402

RENDER_S = 1.0
NAME, VERSION = "fixed-cost", "1.0-bench"
_MEDIA = Path(os.environ.get("FANOUT_MEDIA", "."))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


_PORTRAIT, _AUDIO = _MEDIA / "hopper.jpg", _MEDIA / "de.wav"
_PORTRAIT_SHA, _AUDIO_SHA = _sha256(_PORTRAIT), _sha256(_AUDIO)


def fake_probe(row, manifest_url, limits=None, **kwargs):
    return ProbedRow(
        row=row,
        portrait_uri=str(_PORTRAIT),
        audio_uri=str(_AUDIO),
        audio_duration_s=4.58,
        face_box=(0.0, 0.0, 1.0, 1.0),
        portrait_sha256=_PORTRAIT_SHA,
        audio_sha256=_AUDIO_SHA,
        params=row.render_params(),
    )


def fixed_cost_render_video(generator, portrait_path, audio_path, out_path, params=None, *, face_box=None):
    began = time.time()
    time.sleep(RENDER_S)  # the "GPU" time of one row: no CPU
    ended = time.time()
    shutil.copy(os.environ["FANOUT_VIDEO"], out_path)
    if os.environ.get("FANOUT_TRACE"):  # start/end of every generation, for a look at the gaps
        with open(os.environ["FANOUT_TRACE"], "a") as trace:
            trace.write(f"{os.getpid()} {began:.3f} {ended:.3f}\n")
    return prepared_render_result(generator, out_path, ended - began)


tasks.probe.probe_media = fake_probe
tasks.render.render_video = fixed_cost_render_video
tasks.qa.check_rendered = passing_qa
_POSTER = Path(os.environ["FANOUT_POSTER"]).read_bytes() if os.environ.get("FANOUT_POSTER") else b""
tasks.publish.poster_jpeg = lambda path, **kw: _POSTER


class _Named:
    name, version = NAME, VERSION


register_generator(NAME, _Named, version=VERSION)
