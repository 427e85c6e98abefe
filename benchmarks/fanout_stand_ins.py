"""Stand-ins for benchmarks/fanout_scaling.py, loaded by every Dask worker (`--preload`) and by
the flow's process: the generator is a fixed 1 s that uses no CPU (time.sleep), and the media
work around it (probe, QA, poster) is replaced by prepared results, so the benchmark times the
fan-out and its orchestration, not ffmpeg. The render task itself, its GPU resource, the shared
scratch hand-off and publishing through fsspec are the real ones.

Reads FANOUT_VIDEO (a prepared MP4) and FANOUT_POSTER (a prepared JPEG) from the environment.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import tasks.publish
import tasks.qa
import tasks.render
import tasks.validate
from tasks.records import CheckedVideo, RenderedVideo, RowInfo, content_key

RENDER_S = 1.0
NAME, VERSION = "fixed-cost", "1.0-bench"


def fake_probe(row, manifest_url, limits=None, **kwargs):
    digest = hashlib.sha256(row.row_id.encode()).hexdigest()
    return tasks.validate.ProbedRow(
        row=row, portrait_uri="media/hopper.jpg", audio_uri="media/de.wav", audio_duration_s=4.58,
        face_box=(0.0, 0.0, 1.0, 1.0), portrait_sha256=digest, audio_sha256=digest, params=row.render_params(),
    )


def fixed_cost_render(probed, choice, *, scratch_root=None, scratch_url=None, **kwargs):
    began = time.time()
    time.sleep(RENDER_S)  # the "GPU" time of one row: no CPU
    if os.environ.get("FANOUT_TRACE"):  # start/end of every render, for a look at the gaps
        with open(os.environ["FANOUT_TRACE"], "a") as trace:
            trace.write(f"{os.getpid()} {began:.3f} {time.time():.3f}\n")
    info = RowInfo.from_row(probed.row)
    params = tasks.render.params_dict(probed.params)
    key = content_key(portrait_sha256=probed.portrait_sha256, audio_sha256=probed.audio_sha256,
                      generator=choice.name, generator_version=choice.version, params=params)
    video = Path(os.environ["FANOUT_VIDEO"])
    scratch_uri = None
    if scratch_url:  # the real hand-off: the video goes to shared scratch for QA/publish
        scratch_uri = tasks.render._join(scratch_url, info.key_prefix, uuid.uuid4().hex[:12])
        (location,) = tasks.render._upload(scratch_uri, {"video.mp4": video})
    else:
        scratch = Path(tempfile.mkdtemp(prefix="bench-row-"))
        location = str(shutil.copy(video, scratch / "video.mp4"))
    return RenderedVideo(
        info=info, content_key=key, video_path=location, portrait_path=location, audio_path=location,
        portrait_uri=probed.portrait_uri, audio_uri=probed.audio_uri, portrait_sha256=probed.portrait_sha256,
        audio_sha256=probed.audio_sha256, generator=choice.name, generator_version=choice.version, params=params,
        audio_duration_s=4.58, scratch_uri=scratch_uri,
        render={"frames": 114, "fps": 25, "width": 128, "height": 128, "video_duration_s": 4.56, "audio_duration_s": 4.58},
    )


def passing_qa(rendered, thresholds=None):
    return CheckedVideo(rendered=rendered, passed=True, failures=(), figures={"stand_in": "yes"})


tasks.validate.probe_media = fake_probe
tasks.render.render_row = fixed_cost_render
tasks.qa.check_rendered = passing_qa
_POSTER = Path(os.environ["FANOUT_POSTER"]).read_bytes() if os.environ.get("FANOUT_POSTER") else b""
tasks.publish.poster_jpeg = lambda path, **kw: _POSTER


class _Named:
    name, version = NAME, VERSION


def _factory(weights=None):
    return _Named()


_factory.version = VERSION
tasks.render.register_generator(NAME, _factory)
