"""Render task: a probed row -> an MP4 in local scratch space.

The inputs are materialized (copied from their fsspec URL to a local scratch directory) and
re-hashed, so what is rendered is exactly what was hashed; the video is written locally and
only the publish task moves it into the catalog. The generator is created once per worker
process and kept (`_GENERATORS`): Sonic's weights take tens of seconds to load, a row seconds.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from sonic_model.render import RenderParams, get_generator, render_video
from tasks.records import CheckedVideo, RenderedVideo, RowInfo, content_key

_GENERATORS: dict[tuple[str, str], Any] = {}
_GENERATORS_LOCK = threading.Lock()


@dataclass(frozen=True)
class GeneratorChoice:
    """Which generator a run uses, and its version (part of every content key)."""

    name: str
    version: str
    weights: str | None = None


def cached_generator(name: str, weights: str | Path | None = None):
    """The generator for (name, weights), created on first use in this process and kept."""
    key = (name, str(weights) if weights else "")
    with _GENERATORS_LOCK:
        if key not in _GENERATORS:
            _GENERATORS[key] = get_generator(name, weights=weights)
        return _GENERATORS[key]


def choose_generator(name: str, weights: str | Path | None = None) -> GeneratorChoice:
    """Name + version of a generator, without loading weights where the class says its version."""
    version = None
    if name == "sonic":
        try:
            from sonic_model.sonic import SonicGenerator

            version = getattr(SonicGenerator, "version", None)
            version = version if isinstance(version, str) else None
        except ImportError:
            version = None
    if version is None:
        version = cached_generator(name, weights).version
    return GeneratorChoice(name=name, version=str(version), weights=str(weights) if weights else None)


def params_dict(params: Any) -> dict:
    """Render parameters as a plain dict, whatever form the probe handed them over in."""
    if params is None:
        return RenderParams().as_dict()
    if isinstance(params, dict):
        return RenderParams(**params).as_dict()
    if is_dataclass(params):
        return asdict(params)
    return dict(params)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def key_for(probed: Any, choice: GeneratorChoice) -> str:
    """The content key of a probed row rendered with `choice`."""
    return content_key(
        portrait_sha256=probed.portrait_sha256,
        audio_sha256=probed.audio_sha256,
        generator=choice.name,
        generator_version=choice.version,
        params=params_dict(probed.params),
    )


def render_row(probed: Any, choice: GeneratorChoice, *, scratch_root: str | None = None) -> RenderedVideo:
    """Materialize a probed row's inputs, render it, and describe the local result.

    Raises `SonicCatalogError` subclasses for bad input (the caller records the reason).
    """
    from tasks.storage import materialize

    started = time.perf_counter()
    info = RowInfo.from_row(probed.row)
    scratch = Path(tempfile.mkdtemp(prefix="sonic-row-", dir=scratch_root))
    try:
        inputs = scratch / "inputs"
        inputs.mkdir()
        portrait_path = Path(materialize(probed.portrait_uri, inputs / "portrait"))
        audio_path = Path(materialize(probed.audio_uri, inputs / "audio"))
        # Hash what we render, not what was there when probed: the content key must describe
        # the video, even if a file changed between probe and render.
        portrait_sha = sha256_file(portrait_path)
        audio_sha = sha256_file(audio_path)
        params = params_dict(probed.params)
        key = content_key(
            portrait_sha256=portrait_sha,
            audio_sha256=audio_sha,
            generator=choice.name,
            generator_version=choice.version,
            params=params,
        )
        materialized = time.perf_counter()
        generator = cached_generator(choice.name, choice.weights)
        out_path = scratch / "video.mp4"
        result = render_video(generator, portrait_path, audio_path, out_path, RenderParams(**params))
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return RenderedVideo(
        info=info,
        content_key=key,
        video_path=str(out_path),
        portrait_path=str(portrait_path),
        audio_path=str(audio_path),
        portrait_uri=str(probed.portrait_uri),
        audio_uri=str(probed.audio_uri),
        portrait_sha256=portrait_sha,
        audio_sha256=audio_sha,
        generator=result.generator,
        generator_version=result.generator_version,
        params=params,
        audio_duration_s=float(result.audio_duration_s),
        render=result.as_dict(),
        timings={"materialize_s": round(materialized - started, 3), "render_s": round(result.seconds, 3)},
    )


def discard_scratch(rendered: RenderedVideo) -> None:
    """Remove a rendered row's local scratch directory (video and input copies)."""
    shutil.rmtree(Path(rendered.video_path).parent, ignore_errors=True)


@task(name="render-video", cache_policy=NONE)
def render_video_task(probed: Any, choice: GeneratorChoice, scratch_root: str | None = None) -> RenderedVideo:
    """Render one probed row to local scratch space with the run's generator."""
    return render_row(probed, choice, scratch_root=scratch_root)


def check_rendered(rendered: RenderedVideo, thresholds: Any = None) -> CheckedVideo:
    """Run automatic QA on a rendered video against its own inputs."""
    from sonic_model.audio import load_audio
    from sonic_model.image import load_image
    from sonic_model.qa import QAThresholds, check_video

    started = time.perf_counter()
    result = check_video(rendered.video_path, load_image(rendered.portrait_path), load_audio(rendered.audio_path), thresholds or QAThresholds())
    return CheckedVideo(
        rendered=rendered,
        passed=bool(result.passed),
        failures=tuple(str(f) for f in result.failures),
        figures=dict(result.figures),
        mouth_series=tuple(result.mouth_series),
        envelope_series=tuple(result.envelope_series),
        speech_series=tuple(bool(s) for s in getattr(result, "speech_series", ())),
        timings={"qa_s": round(time.perf_counter() - started, 3)},
    )


@task(name="check-video", cache_policy=NONE)
def check_video_task(rendered: RenderedVideo, thresholds: Any = None) -> CheckedVideo:
    """QA one rendered video (duration, sync, face, identity, flicker, loudness)."""
    return check_rendered(rendered, thresholds)
