"""Stage 2 of a row's way: its media, opened and checked (the input probe).

`probe_media` opens one row's files: the portrait decodes and holds one usable face, the audio
decodes, holds speech, is within the length limits and matches the declared duration. Every
problem is an `InputError` subclass with a specific message; `probe_or_quarantine` (and the
task) turn it into a `Quarantine`, so one row's bad media never stops the batch.

Which face is the subject: the largest one (by box area, as `sonic_model.face` orders them).
A second face whose area is more than `AMBIGUOUS_FACE_AREA_RATIO` (50%) of the largest is
refused as ambiguous: two people of similar size in one photo means we cannot know who the
presenter is, and animating the wrong person is worse than asking. Smaller background faces
(a poster on the wall, people far behind) are ignored.

`probe_row_task` is the thin Prefect wrapper; the pure functions work without Prefect.
"""

from __future__ import annotations

import codecs
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np
from prefect import task
from prefect.cache_policies import NONE as NO_CACHE

from manifests.schema import ManifestRow, resolve_uri
from sonic_model.errors import (
    AmbiguousFaceError,
    AudioTooShortError,
    CaptionsError,
    DurationMismatchError,
    InputError,
    MediaErrors,
    MediaNotFoundError,
    NoFaceError,
    NoSpeechError,
    SonicCatalogError,
    StorageReadError,
    TruncatedAudioError,
)
from sonic_model.generators import RenderParams
from tasks.limits import MediaLimits
from tasks.records import ProbedRow, Quarantine, quoted
from tasks.storage import DEFAULT_ALLOWED_SCHEMES, check_uri_allowed, default_roots, read_bytes, redact

# A second face larger than this fraction of the largest face's area makes the subject ambiguous.
AMBIGUOUS_FACE_AREA_RATIO = 0.5
# The Sonic workflow's tolerance between the declared script duration and the real audio.
DURATION_TOLERANCE_S = 0.1
PROBE_STAGE = "probe"

# A header (mp3 Xing/Info, MP4 moov, FLAC STREAMINFO, ...) may overstate the decodable audio by
# a frame or an estimate's error; more than this is a file cut short (a failed upload or copy).
TRUNCATION_TOLERANCE_S = 1.0
TRUNCATION_TOLERANCE_RATIO = 0.25


def probe_media(
    row: ManifestRow,
    manifest_url: str,
    limits: MediaLimits = MediaLimits(),
    *,
    allowed_schemes: Iterable[str] = DEFAULT_ALLOWED_SCHEMES,
    allowed_roots: Iterable[str] | None = None,
    defaults: RenderParams = RenderParams(),
) -> ProbedRow:
    """Open and check one row's portrait and audio; return what the renderer needs.

    Raises an `InputError` subclass whose message names the specific problem; when both the
    portrait and the audio are bad, `MediaErrors` holding both.
    """
    allowed_schemes = tuple(allowed_schemes)
    roots = list(allowed_roots) if allowed_roots is not None else default_roots(manifest_url)
    params = row.render_params(defaults)
    errors: list[InputError] = []
    portrait = audio = None
    try:
        portrait = _probe_portrait(row, manifest_url, limits, allowed_schemes, roots)
    except InputError as exc:
        errors.append(exc)
    try:
        audio = _probe_audio(row, manifest_url, limits, allowed_schemes, roots)
    except InputError as exc:
        errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise MediaErrors(errors)
    portrait_uri, portrait_sha256, face_box = portrait
    audio_uri, audio_sha256, duration_s = audio
    captions_text = captions_uri = captions_sha256 = None
    if row.captions_uri:
        captions_uri, captions_sha256, captions_text = _probe_captions(
            row, manifest_url, limits, allowed_schemes, roots, duration_s
        )
    return ProbedRow(
        row=row,
        portrait_uri=portrait_uri,
        audio_uri=audio_uri,
        audio_duration_s=duration_s,
        face_box=face_box,
        portrait_sha256=portrait_sha256,
        audio_sha256=audio_sha256,
        params=params,
        captions_text=captions_text,
        captions_uri=captions_uri,
        captions_sha256=captions_sha256,
    )


def _open(row_uri: str, column: str, manifest_url: str, limits: MediaLimits, schemes, roots) -> tuple[str, bytes]:
    """Resolve, check against the allow-list, read (size-limited). Errors keep their class."""
    try:
        uri = check_uri_allowed(resolve_uri(manifest_url, row_uri), schemes, roots)
        return uri, read_bytes(uri, limits.max_file_bytes)
    except InputError as exc:
        raise type(exc)(f"{column} {quoted(redact(row_uri))}: {exc}") from None


def _probe_portrait(row, manifest_url, limits, schemes, roots):
    from sonic_model.image import load_image

    uri, data = _open(row.portrait_uri, "portrait_uri", manifest_url, limits, schemes, roots)
    digest = hashlib.sha256(data).hexdigest()
    try:
        rgb = load_image(data, max_pixels=limits.max_pixels)
    except InputError as exc:
        raise type(exc)(f"{exc} ({redact(uri)})") from None
    faces = _faces(digest, rgb)
    height, width = rgb.shape[:2]
    if not faces:
        raise NoFaceError(
            f"no face found in the {width}x{height} portrait ({redact(uri)}); use a photo with one clearly "
            "visible, roughly frontal face"
        )
    if len(faces) > 1 and faces[1].area > AMBIGUOUS_FACE_AREA_RATIO * faces[0].area:
        ratio = faces[1].area / faces[0].area
        raise AmbiguousFaceError(
            f"portrait has {len(faces)} faces and the second largest is {ratio:.0%} of the largest's area "
            f"(over {AMBIGUOUS_FACE_AREA_RATIO:.0%}), so the presenter is ambiguous; crop the photo to one person "
            f"({redact(uri)})"
        )
    box = faces[0]
    return uri, digest, (float(box.x), float(box.y), float(box.w), float(box.h))


# Same portrait in many rows (one presenter, many languages): detect its faces once.
_FACE_CACHE: OrderedDict = OrderedDict()
_FACE_CACHE_LOCK = threading.Lock()
_FACE_CACHE_SIZE = 64


def _faces(digest: str, rgb: np.ndarray) -> list:
    from sonic_model.face import detect_faces  # deferred: loads the face models

    with _FACE_CACHE_LOCK:
        if digest in _FACE_CACHE:
            _FACE_CACHE.move_to_end(digest)
            return _FACE_CACHE[digest]
    try:
        faces = detect_faces(rgb)
    except SonicCatalogError:
        raise
    except Exception as exc:  # a detector failure on odd pixels is a row problem, not a crash
        raise NoFaceError(f"face detection failed on the portrait ({type(exc).__name__}: {exc})") from None
    with _FACE_CACHE_LOCK:
        _FACE_CACHE[digest] = faces
        while len(_FACE_CACHE) > _FACE_CACHE_SIZE:
            _FACE_CACHE.popitem(last=False)
    return faces


def _probe_audio(row, manifest_url, limits, schemes, roots):
    from sonic_model.audio import declared_audio_seconds, load_audio, speech_segments

    uri, data = _open(row.audio_uri, "audio_uri", manifest_url, limits, schemes, roots)
    digest = hashlib.sha256(data).hexdigest()
    # The audio stream's own declared duration, never the container's (a video's picture may
    # run longer than its sound without anything being cut).
    header_s = declared_audio_seconds(data)
    try:
        clip = load_audio(data, max_seconds=limits.max_audio_seconds, min_seconds=limits.min_audio_seconds)
    except InputError as exc:
        if header_s is not None and header_s >= limits.min_audio_seconds and isinstance(exc, AudioTooShortError):
            raise TruncatedAudioError(
                f"audio file is truncated: its header says {header_s:.2f} s but almost nothing decodes "
                f"({exc}); upload the complete file ({redact(uri)})"
            ) from None
        raise type(exc)(f"{exc} ({redact(uri)})") from None
    duration = clip.duration_s
    if header_s is not None and header_s - duration > max(
        TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_RATIO * header_s
    ):
        raise TruncatedAudioError(
            f"audio file is truncated: its header says {header_s:.2f} s but only {duration:.2f} s decode; "
            f"upload the complete file ({redact(uri)})"
        )
    declared = row.duration_s
    if declared is not None and abs(declared - duration) > DURATION_TOLERANCE_S:
        raise DurationMismatchError(
            f"declared duration_s {declared:.2f} s differs from the audio's {duration:.2f} s by "
            f"{abs(declared - duration):.2f} s (allowed {DURATION_TOLERANCE_S} s); fix duration_s or the audio file "
            f"({redact(uri)})"
        )
    if not speech_segments(clip):
        raise NoSpeechError(
            f"no speech found in the {duration:.1f} s audio (silence or noise only); check it is the script "
            f"recording ({redact(uri)})"
        )
    return uri, digest, duration


def _probe_captions(row, manifest_url, limits, schemes, roots, audio_s: float) -> tuple[str, str, str]:
    """The row's given captions file: (resolved URI, SHA-256 of its bytes, its text), once it
    parses and fits the audio (CaptionsError if not)."""
    uri, data = _open(row.captions_uri, "captions_uri", manifest_url, limits, schemes, roots)
    return uri, hashlib.sha256(data).hexdigest(), checked_captions_text(row.captions_uri, data, audio_s)


def checked_captions_text(row_uri: str, data: bytes, audio_s: float) -> str:
    """A captions file's bytes as text, once it parses and fits `audio_s` (CaptionsError if not);
    `row_uri` as the manifest gives it, for the message."""
    from sonic_model.captions import check_cues, parse_captions

    # Windows tools save "Unicode" text as UTF-16 with a byte-order mark: unambiguous, so read.
    encoding = "utf-16" if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"
    name = f"captions_uri {quoted(redact(row_uri))}"
    if encoding != "utf-16" and b"\x00" in data:  # no captions text has NUL characters
        raise CaptionsError(f"{name} has NUL bytes (the first at byte {data.index(0)}): UTF-16 without a "
                            "byte-order mark? save it as UTF-8")  # fmt: skip
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        expected = "UTF-16" if encoding == "utf-16" else "UTF-8"
        raise CaptionsError(f"{name} is not {expected} text (byte {exc.start}); save it as UTF-8") from None
    check_cues(parse_captions(text, name), audio_s, name)
    return text


# --- the Prefect task ----------------------------------------------------------------------------


# No cache: a re-run must re-read the files, so a fixed one is picked up.
@task(name="probe-row", task_run_name="probe-{row.row_id}", cache_policy=NO_CACHE)
def probe_row_task(
    row: ManifestRow, manifest_url: str, limits: MediaLimits = MediaLimits(), **options
) -> ProbedRow | Quarantine:
    """`probe_media` as a task, with its options; bad input becomes a `Quarantine`, never an exception."""
    return probe_or_quarantine(row, manifest_url, limits, **options)


# Refusals that say nothing about the media themselves (the next run's plan probes them again).
TRANSIENT_ERRORS = (StorageReadError, MediaNotFoundError)


def probe_or_quarantine(
    row: ManifestRow, manifest_url: str, limits: MediaLimits = MediaLimits(), **kwargs
) -> ProbedRow | Quarantine:
    """`probe_media`, with every failure turned into a `Quarantine` (used by the task and the CLI)."""
    try:
        return probe_media(row, manifest_url, limits, **kwargs)
    except MediaErrors as exc:
        transient = any(isinstance(error, TRANSIENT_ERRORS) for error in exc.errors)
        return Quarantine(row.row_id, PROBE_STAGE, tuple(str(error) for error in exc.errors), transient=transient)
    except SonicCatalogError as exc:
        return Quarantine(row.row_id, PROBE_STAGE, (str(exc),), transient=isinstance(exc, TRANSIENT_ERRORS))
    except Exception as exc:  # a decoder bug on hostile bytes must not take the batch down
        reason = f"media could not be probed ({type(exc).__name__}: {str(exc)[:200]})"
        return Quarantine(row.row_id, PROBE_STAGE, (reason,))
