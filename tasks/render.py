"""Render task: a probed row -> an MP4 in scratch space (local, or shared storage on a cluster).

The inputs are materialized (copied from their fsspec URL to a local scratch directory) and
re-hashed, so what is rendered is exactly what was hashed; the video is written locally and
only the publish task moves it into the catalog.

Scratch: in one process (no cluster) the row's scratch stays in a local temporary directory,
which QA and publish read in place. On a cluster, QA and publish may run on another machine
than the render, so the render task copies the video and its input copies to `scratch_url`
(the flow passes `<catalog>/_runs/<run_id>/scratch`, any fsspec URL) under a fresh attempt
folder and removes its local files; `localized()` gives QA/publish local paths (in place for a
local or shared filesystem, a temporary download otherwise) and `discard_scratch()` deletes
the attempt folder once the row is published or rejected. A render killed halfway leaves only
an unreferenced attempt folder, which the flow removes with the whole scratch area at the end.

Generation slots: on a GPU worker each render task holds half a GPU (`RENDERS_PER_GPU`), so two
renders are in flight per GPU, but the generation itself (`render_video`) takes one of the
worker's generation slots, one per GPU (`generation_slot`). While one row generates, the next
one starts its task, fetches and hashes its inputs and waits at the slot; the one before it
uploads its video. The GPU goes from one row to the next without waiting for Prefect, Dask or
storage (benchmarks/fanout_scaling.py: the gap between renders fell from ~55 ms to a few ms).
Outside a GPU worker (a local run) there are no slots and nothing waits.

Generator cache: the generator is created once per worker process and kept (`_GENERATORS`):
Sonic's weights take tens of seconds to load, a row seconds. A render that fails with anything
but a bad-input error (`SonicCatalogError`) drops the cached generator, so a lost GPU/model is
loaded afresh by the retry (Prefect task retries, `render_task_options`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, is_dataclass, replace
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from sonic_model.errors import SonicCatalogError
from sonic_model.render import RenderParams, get_generator, render_video
from tasks.records import RenderedVideo, RowInfo, content_key

_GENERATORS: dict[tuple[str, str], Any] = {}
_GENERATORS_LOCK = threading.Lock()
# Extra generator factories by name, per process (e.g. a stand-in a test or benchmark registers
# in every worker with `sonic-catalog worker --preload`); the built-in names come from sonic_model.
_FACTORIES: dict[str, Callable[..., Any]] = {}

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


def register_generator(name: str, factory: Callable[..., Any]) -> None:
    """Make `factory(weights=...)` the generator called `name` in this process."""
    _FACTORIES[name] = factory


def cached_generator(name: str, weights: str | Path | None = None):
    """The generator for (name, weights), created on first use in this process and kept."""
    key = (name, str(weights) if weights else "")
    with _GENERATORS_LOCK:
        if key not in _GENERATORS:
            factory = _FACTORIES.get(name)
            _GENERATORS[key] = factory(weights=weights) if factory else get_generator(name, weights=weights)
        return _GENERATORS[key]


def forget_generator(name: str, weights: str | Path | None = None) -> None:
    """Drop a cached generator (after a failure that may have left it unusable)."""
    with _GENERATORS_LOCK:
        _GENERATORS.pop((name, str(weights) if weights else ""), None)


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
    if version is None and name in _FACTORIES:
        version = getattr(_FACTORIES[name], "version", None)
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


def render_row(probed: Any, choice: GeneratorChoice, *, scratch_root: str | None = None,
               scratch_url: str | None = None) -> RenderedVideo:
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
        key = content_key(
            portrait_sha256=portrait_sha,
            audio_sha256=audio_sha,
            generator=choice.name,
            generator_version=choice.version,
            params=params,
        )
        materialized = time.perf_counter()
        out_path = scratch / "video.mp4"
        try:
            with generation_slot():  # the GPU: one row at a time; the rest of this task overlaps
                generator = cached_generator(choice.name, choice.weights)
                result = render_video(generator, portrait_path, audio_path, out_path, RenderParams(**params))
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
            scratch_uri = _join(scratch_url, info.key_prefix, uuid.uuid4().hex[:12])
            extra = {Path(r["path"]).name: Path(r["path"]) for r in renditions}
            locations = _upload(scratch_uri, {
                "video.mp4": out_path, "portrait" + portrait_path.suffix: portrait_path, "audio" + audio_path.suffix: audio_path,
                **extra,
            })
            video_loc, portrait_loc, audio_loc = locations[:3]
            for rendition, location in zip(renditions, locations[3:]):
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
    )


# --- scratch space ----------------------------------------------------------------------------


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


def _fs(url: str):
    from fsspec.core import url_to_fs

    from tasks.storage import _local_path, is_local

    if is_local(url):
        import fsspec

        return fsspec.filesystem("file"), os.path.abspath(_local_path(url)), True
    fs, path = url_to_fs(url)
    return fs, path, False


def _upload(scratch_uri: str, files: dict[str, Path]) -> tuple[str, ...]:
    """Copy local `files` (name -> path) into the folder `scratch_uri`; their new locations."""
    fs, root, local = _fs(scratch_uri)
    fs.makedirs(root, exist_ok=True)
    locations = []
    for name, path in files.items():
        target = f"{root}/{name}"
        fs.put_file(str(path), target)
        locations.append(target if local else _join(scratch_uri, name))
    return tuple(locations)


def _is_here(location: str) -> bool:
    from tasks.storage import _local_path, is_local

    return is_local(location) and Path(_local_path(location)).is_file()


@contextlib.contextmanager
def localized(rendered: RenderedVideo) -> Iterator[RenderedVideo]:
    """`rendered` with local file paths: in place when they are on this machine's filesystem
    (one process, or a shared catalog disk), else downloaded to a temporary directory that is
    removed on exit. The scratch itself is left alone (see `discard_scratch`)."""
    wanted = (rendered.video_path, rendered.portrait_path, rendered.audio_path, *(r["path"] for r in rendered.renditions))
    if all(_is_here(location) for location in wanted):
        yield rendered
        return
    import fsspec

    download = Path(tempfile.mkdtemp(prefix="sonic-scratch-"))
    try:
        local = []
        for location in wanted:
            if _is_here(location):
                local.append(location)
                continue
            target = download / location.rstrip("/").rsplit("/", 1)[-1]
            with fsspec.open(location, "rb") as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
            local.append(str(target))
        renditions = tuple({**rendition, "path": path} for rendition, path in zip(rendered.renditions, local[3:]))
        yield replace(rendered, video_path=local[0], portrait_path=local[1], audio_path=local[2], renditions=renditions)
    finally:
        shutil.rmtree(download, ignore_errors=True)


def discard_scratch(rendered: RenderedVideo) -> None:
    """Remove a rendered row's scratch (its shared-storage attempt folder, or local directory)."""
    if rendered.scratch_uri:
        remove_tree(rendered.scratch_uri)
        return
    shutil.rmtree(Path(rendered.video_path).parent, ignore_errors=True)


def remove_tree(url: str) -> None:
    """Delete a scratch folder (any fsspec URL); a missing one is fine."""
    fs, root, local = _fs(url)
    if local:
        shutil.rmtree(root, ignore_errors=True)
        return
    try:
        if fs.exists(root):
            fs.rm(root, recursive=True)
    except (FileNotFoundError, OSError):
        pass


# --- the task and its retry policy ----------------------------------------------------------


def _retry_unless_bad_input(task, task_run, state) -> bool:
    """Retry infrastructure failures (lost GPU/model, worker trouble); never a bad input."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - cannot tell: retrying is the safe side
        return True
    return not isinstance(exc, SonicCatalogError)


class RenderFailed(RuntimeError):
    """A render kept failing for reasons other than its inputs, through every retry."""


def render_task_options(retries: int = DEFAULT_RENDER_RETRIES, retry_delay_s: float = DEFAULT_RETRY_DELAY_S) -> dict:
    """Prefect task options for the render task: `retries` more attempts, `retry_delay_s` apart."""
    return {
        "retries": max(0, int(retries)),
        "retry_delay_seconds": max(0.0, float(retry_delay_s)),
        "retry_condition_fn": _retry_unless_bad_input,
    }


@task(name="render-video", cache_policy=NONE, **render_task_options())
def render_video_task(probed: Any, choice: GeneratorChoice, scratch_root: str | None = None,
                      scratch_url: str | None = None) -> RenderedVideo:
    """Render one probed row with the run's generator, into local scratch or `scratch_url`."""
    return render_row(probed, choice, scratch_root=scratch_root, scratch_url=scratch_url)
