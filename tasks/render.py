"""Render task: a probed row -> an MP4 in scratch space (local, or shared storage on a cluster).

The inputs are materialized (copied from their fsspec URL to a local scratch directory) and
re-hashed, so what is rendered is exactly what was hashed; the video is written locally and
only the publish task moves it into the catalog.

Scratch: in one process (no cluster) the row's scratch stays in a local temporary directory,
which QA and publish read in place. On a cluster, QA and publish may run on another machine
than the render, so the render task copies the video and its input copies to `scratch_url`
(the flow passes `<catalog>/_runs/<run_id>/scratch`, any fsspec URL) under a fresh attempt
folder and removes its local files; `tasks.scratch.localized()` gives QA/publish local paths
(in place for a local or shared filesystem, a temporary download otherwise) and
`tasks.scratch.discard_scratch()` deletes the attempt folder once the row is published or
rejected. A render killed halfway leaves only an unreferenced attempt folder, which the flow
removes with the whole scratch area at the end.

Generation slots: on a GPU worker each render task holds half a GPU (`RENDERS_PER_GPU`), so two
renders are in flight per GPU, but the generation itself (`render_video`) takes one of the
worker's generation slots, one per GPU (`generation_slot`). While one row generates, the next
one starts its task, fetches and hashes its inputs and waits at the slot; the one before it
uploads its video. The GPU goes from one row to the next without waiting for Prefect, Dask or
storage (benchmarks/fanout_scaling.py: the gap between renders fell from ~55 ms to a few ms).
Outside a GPU worker (a local run) there are no slots and nothing waits.

Generators come from the one registry, `sonic_model.generators` (names, factories, versions;
a test or benchmark registers a stand-in there, in every worker with `sonic-catalog worker
--preload`). The generator is created once per worker process and kept (`_GENERATORS`): Sonic's
weights take tens of seconds to load, a row seconds. A render that fails with anything
but a bad-input error (`SonicCatalogError`) drops the cached generator, so a lost GPU/model is
loaded afresh by the retry (Prefect task retries, `render_task_options`).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from sonic_model.digest import sha256_file
from sonic_model.errors import SonicCatalogError
from sonic_model.generators import RenderParams, create_generator, generator_version
from sonic_model.render import render_video
from tasks.records import RenderedVideo, RowInfo, content_key, frames_key, script_sha256
from tasks.scratch import join_uri, upload_to_scratch

_GENERATORS: dict[tuple[str, str], Any] = {}
_GENERATORS_LOCK = threading.Lock()

DEFAULT_RENDER_RETRIES = 2
DEFAULT_RETRY_DELAY_S = 5.0

# The Dask resource a GPU worker offers (`sonic-catalog worker --gpus N`: GPU=N) and render
# tasks ask for. Render tasks in flight per GPU: one generating, one getting ready beside it.
GPU_RESOURCE = "GPU"
RENDERS_PER_GPU = 2
_generation_slots: threading.BoundedSemaphore | None = None
_generation_slot_count = 0


def set_generation_slots(gpus: int) -> None:
    """Let at most `gpus` renders generate at once in this process (0: no limit, the default).

    The GPU worker's set-up (`sonic_catalog.worker_setup`) calls it with the worker's GPU count.
    """
    global _generation_slots, _generation_slot_count
    _generation_slot_count = int(gpus) if gpus and gpus >= 1 else 0
    _generation_slots = threading.BoundedSemaphore(_generation_slot_count) if _generation_slot_count else None


def generation_slot_count() -> int:
    """How many renders may generate at once in this process (0: no limit)."""
    return _generation_slot_count


@contextlib.contextmanager
def generation_slot() -> Iterator[None]:
    """Hold one of this process's generation slots (one per GPU) while generating."""
    slots = _generation_slots
    if slots is None:
        yield
        return
    with slots:
        yield


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
            _GENERATORS[key] = create_generator(name, weights=weights)
        return _GENERATORS[key]


def forget_generator(name: str, weights: str | Path | None = None) -> None:
    """Drop a cached generator (after a failure that may have left it unusable)."""
    with _GENERATORS_LOCK:
        _GENERATORS.pop((name, str(weights) if weights else ""), None)


def choose_generator(name: str, weights: str | Path | None = None) -> GeneratorChoice:
    """Name + version of a registered generator, without loading its weights.

    Raises `ParameterError` for an unknown name and `GeneratorUnavailableError` when the
    generator's code does not import here, before any row is touched."""
    return GeneratorChoice(name=name, version=generator_version(name), weights=str(weights) if weights else None)


def params_dict(params: Any) -> dict:
    """Render parameters as a plain dict, whatever form the probe handed them over in."""
    if params is None:
        return RenderParams().as_dict()
    if isinstance(params, dict):
        return RenderParams(**params).as_dict()
    if is_dataclass(params):
        return asdict(params)
    return dict(params)


def key_for(probed: Any, choice: GeneratorChoice) -> str:
    """The content key of a probed row rendered with `choice`."""
    return keys_for(probed, choice, probed.portrait_sha256, probed.audio_sha256, params_dict(probed.params))[0]


def keys_for(probed: Any, choice: GeneratorChoice, portrait_sha: str, audio_sha: str, params: dict) -> tuple[str, str]:
    """(content key, frames key) of a probed row's inputs with these hashes, rendered with
    `choice`: the captions sources (script, captions file) are in the first only."""
    frames = {
        "portrait_sha256": portrait_sha,
        "audio_sha256": audio_sha,
        "generator": choice.name,
        "generator_version": choice.version,
        "params": params,
    }
    script = script_sha256(getattr(probed.row, "script_text", None))
    captions_file = getattr(probed, "captions_sha256", None)
    whole = content_key(**frames, script_sha256=script, captions_file_sha256=captions_file)
    # burn_captions is in the frames key where it changes a rendition (the row has captions).
    return whole, frames_key(**frames, has_captions=script is not None or captions_file is not None)


def render_row(
    probed: Any, choice: GeneratorChoice, *, scratch_root: str | None = None, scratch_url: str | None = None
) -> RenderedVideo:
    """Materialize a probed row's inputs, render it, and describe the result.

    With `scratch_url` the video and input copies end up there (see the module docstring),
    otherwise in a local temporary directory. Raises `SonicCatalogError` subclasses for bad
    input (the caller records the reason); any other failure also drops the cached generator.
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
        key, frames = keys_for(probed, choice, portrait_sha, audio_sha, params)
        # Animate the face the probe approved (not whatever the generator's own detector prefers),
        # as long as the portrait is the one it was measured on; a changed file is detected afresh.
        face_box = tuple(probed.face_box) if portrait_sha == probed.portrait_sha256 else None
        materialized = time.perf_counter()
        out_path = scratch / "video.mp4"
        try:
            with generation_slot():  # the GPU: one row at a time; the rest of this task overlaps
                generator = cached_generator(choice.name, choice.weights)
                result = render_video(
                    generator, portrait_path, audio_path, out_path, RenderParams(**params), face_box=face_box
                )
        except SonicCatalogError:
            raise
        except Exception:
            forget_generator(choice.name, choice.weights)  # a lost GPU / broken model: reload on retry
            raise
        video_loc, portrait_loc, audio_loc, scratch_uri = str(out_path), str(portrait_path), str(audio_path), None
        renditions = [dict(rendition) for rendition in result.renditions]
        if scratch_url:
            # QA and publish may run elsewhere: the videos and the exact inputs they were made
            # from go to shared scratch, under a folder of their own for this attempt.
            scratch_uri = join_uri(scratch_url, info.key_prefix, uuid.uuid4().hex[:12])
            extra = {Path(r["path"]).name: Path(r["path"]) for r in renditions}
            locations = upload_to_scratch(
                scratch_uri,
                {
                    "video.mp4": out_path,
                    "portrait" + portrait_path.suffix: portrait_path,
                    "audio" + audio_path.suffix: audio_path,
                    **extra,
                },
            )
            video_loc, portrait_loc, audio_loc = locations[:3]
            for rendition, location in zip(renditions, locations[3:], strict=False):
                rendition["path"] = location
            shutil.rmtree(scratch, ignore_errors=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return RenderedVideo(
        info=info,
        content_key=key,
        video_path=video_loc,
        portrait_path=portrait_loc,
        audio_path=audio_loc,
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
        scratch_uri=scratch_uri,
        renditions=tuple(renditions),
        captions_source=captions_source(probed),
        frames_key=frames,
    )


def captions_source(probed: Any) -> dict | None:
    """What QA makes the row's captions from: its script and/or its checked captions file."""
    script = getattr(getattr(probed, "row", None), "script_text", None)
    given = getattr(probed, "captions_text", None)
    if not script and not given:
        return None
    return {
        "script_text": script or None,
        "captions_text": given or None,
        "captions_uri": getattr(probed, "captions_uri", None) if given else None,
        "captions_sha256": getattr(probed, "captions_sha256", None) if given else None,
    }


# --- the task and its retry policy ----------------------------------------------------------


def _retry_unless_bad_input(task, task_run, state) -> bool:
    """Retry infrastructure failures (lost GPU/model, worker trouble); never a bad input."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - cannot tell: retrying is the safe side
        return True
    return not isinstance(exc, SonicCatalogError)


def render_task_options(retries: int = DEFAULT_RENDER_RETRIES, retry_delay_s: float = DEFAULT_RETRY_DELAY_S) -> dict:
    """Prefect task options for the render task: `retries` more attempts, `retry_delay_s` apart."""
    return {
        "retries": max(0, int(retries)),
        "retry_delay_seconds": max(0.0, float(retry_delay_s)),
        "retry_condition_fn": _retry_unless_bad_input,
    }


@task(name="render-video", cache_policy=NONE, **render_task_options())
def render_video_task(
    probed: Any, choice: GeneratorChoice, scratch_root: str | None = None, scratch_url: str | None = None
) -> RenderedVideo:
    """Render one probed row with the run's generator, into local scratch or `scratch_url`."""
    return render_row(probed, choice, scratch_root=scratch_root, scratch_url=scratch_url)
