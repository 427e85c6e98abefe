"""The small typed records that travel between the catalog flow's hops.

Data flows one way (ARCHITECTURE.md, a row's way through the stages): manifest row -> `ProbedRow` (tasks/probe.py) or
`Quarantine` (tasks/table.py, tasks/probe.py) -> `RenderedVideo` -> `CheckedVideo` ->
`RowOutcome` -> ledger row. Every record is a frozen
dataclass of plain values, so it pickles across processes (a distributed task runner) and
prints readably in Prefect's UI.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from manifests.schema import ManifestRow
from sonic_model.cells import is_missing
from sonic_model.generators import RenderParams

# The statuses a ledger row can have; only the first three mean "the video is in the catalog".
PUBLISHED = "published"
SKIPPED_CACHED = "skipped_cached"
# Published earlier; this run changed only its captions (script or captions file): re-aligned and
# re-muxed into the published frames, signed again (`tasks.captions_update`), nothing generated.
CAPTIONS_UPDATED = "captions_updated"
QUARANTINED = "quarantined"
FAILED_QA = "failed_qa"
ERROR = "error"
STATUSES = (PUBLISHED, SKIPPED_CACHED, CAPTIONS_UPDATED, QUARANTINED, FAILED_QA, ERROR)
IN_CATALOG = (PUBLISHED, SKIPPED_CACHED, CAPTIONS_UPDATED)

# What a run's plan decides for a row before any of its own work (`tasks.plan`): settle it as
# unchanged, keep its remembered quarantine or QA failure, update only its captions (its frames'
# inputs unchanged), or give it the full way.
SKIP = "skip"
KEEP_QUARANTINE = "keep_quarantine"
KEEP_FAILED = "keep_failed"
UPDATE_CAPTIONS = "update_captions"
WORK = "work"
DECISIONS = (SKIP, KEEP_QUARANTINE, KEEP_FAILED, UPDATE_CAPTIONS, WORK)

DEFAULT_COLLECTION = "default"
_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def safe_key_part(value: Any, *, fallback: str = DEFAULT_COLLECTION) -> str:
    """One path segment of a catalog key that cannot escape the catalog or collide.

    Plain ids (letters, digits, `._-`, up to 100 characters) are kept as they are, so keys stay
    readable; anything else (`/`, `..`, spaces, unicode, very long) becomes a slug plus a short
    hash of the original, which keeps two different ids from mapping to one key.
    """
    text = "" if value is None else str(value)
    if not text.strip():
        return fallback
    if _SAFE_KEY.match(text) and ".." not in text:
        return text
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-_")[:60] or "x"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return f"{slug}-{digest}"


def script_sha256(script_text: str | None) -> str | None:
    """The hash of a row's script as captions read it (white space runs are one space), or None."""
    if script_text is None or not str(script_text).strip():
        return None
    from sonic_model.captions.text import normalize_script

    return hashlib.sha256(normalize_script(str(script_text)).encode("utf-8")).hexdigest()


def key_params(params: dict, *, has_captions: bool) -> dict:
    """The parameters as the content key hashes them. Which were given explicitly
    (`RenderParams.explicit`) does not change the video; `burn_captions` is kept only where it
    does (captions to burn, a rendition to burn them into), so the keys of rows it leaves alone
    are what they were before it existed, and switching it on renders only the rows it changes."""
    burns = (
        bool(params.get("burn_captions"))
        and has_captions
        and any(name != "master" for name in params.get("renditions") or ())
    )
    return {name: value for name, value in params.items() if name != "explicit" and (name != "burn_captions" or burns)}


def content_key(
    *,
    portrait_sha256: str,
    audio_sha256: str,
    generator: str,
    generator_version: str,
    params: dict,
    script_sha256: str | None = None,
    captions_file_sha256: str | None = None,
) -> str:
    """What makes a video what it is: same inputs + generator + parameters -> same key.

    Stored in the sidecar; a row whose key is already published is not rendered again. The
    parameters are hashed as `key_params` gives them. A row's captions sources (its script's
    hash, its captions_uri file's SHA-256) join the key only when it has them, so the keys of
    rows without captions are what they were before captions existed, and equal their `frames_key`.
    """
    has_captions = script_sha256 is not None or captions_file_sha256 is not None
    fields = _frames_fields(portrait_sha256, audio_sha256, generator, generator_version, params, has_captions)
    if script_sha256 is not None:
        fields["script_sha256"] = script_sha256
    if captions_file_sha256 is not None:
        fields["captions_file_sha256"] = captions_file_sha256
    material = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def frames_key(
    *,
    portrait_sha256: str,
    audio_sha256: str,
    generator: str,
    generator_version: str,
    params: dict,
    has_captions: bool = False,
) -> str:
    """The part of the content key the pictures depend on (inputs, generator, parameters), without
    the captions sources: equal for two rows whose videos differ only in their captions. Stored in
    the sidecar and the index beside `content_key`, so the plan can tell a captions-only change
    (`UPDATE_CAPTIONS`) from the catalog's state alone. `has_captions`: the row has a script or a
    captions file; then `burn_captions` is in it where it changes a rendition's picture
    (`key_params`), so switching the burning on or off changes the frames key, and a row with
    burned renditions is never sent to a captions-only update (its pictures have the old words)."""
    fields = _frames_fields(portrait_sha256, audio_sha256, generator, generator_version, params, has_captions)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()


def _frames_fields(
    portrait_sha256: str, audio_sha256: str, generator: str, generator_version: str, params: dict, has_captions: bool
) -> dict:
    return {
        "portrait_sha256": portrait_sha256,
        "audio_sha256": audio_sha256,
        "generator": generator,
        "generator_version": generator_version,
        "params": key_params(params, has_captions=has_captions),
    }


@dataclass(frozen=True)
class RowInfo:
    """What every verdict needs to know about its manifest row (catalog keys, consent)."""

    row_id: str
    language: str = ""
    collection: str = DEFAULT_COLLECTION
    item_id: str | None = None
    title: str | None = None
    consent_ref: str | None = None
    portrait_uri: str | None = None
    audio_uri: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> RowInfo:
        """Build from a `ManifestRow` (or any object/dict with the manifest's field names)."""

        def get(name: str):
            value = row.get(name) if isinstance(row, dict) else getattr(row, name, None)
            return None if is_missing(value) else value

        collection = get("collection")
        return cls(
            row_id=str(get("row_id")),
            language=str(get("language") or ""),
            collection=str(collection) if collection not in (None, "") else DEFAULT_COLLECTION,
            item_id=None if get("item_id") is None else str(get("item_id")),
            title=None if get("title") is None else str(get("title")),
            consent_ref=None if get("consent_ref") is None else str(get("consent_ref")),
            portrait_uri=None if get("portrait_uri") is None else str(get("portrait_uri")),
            audio_uri=None if get("audio_uri") is None else str(get("audio_uri")),
        )

    @property
    def key_prefix(self) -> str:
        """`<collection>/<language>/<row_id>` with every segment made safe."""
        return "/".join(
            (
                safe_key_part(self.collection),
                safe_key_part(self.language, fallback="und"),
                safe_key_part(self.row_id, fallback="row"),
            )
        )


def quoted(value: Any, limit: int = 60) -> str:
    """A manifest value as a reason quotes it: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "...'"


# A row's reasons stay apart in the records; written out (ledger, report, console) they are
# joined by this, so no single reason may contain it.
REASON_SEPARATOR = "; "


def joined(reasons: tuple[str, ...]) -> str:
    """A row's reasons as the ledger, the report and the console write them."""
    return REASON_SEPARATOR.join(reasons)


@dataclass(frozen=True)
class Quarantine:
    """A row that will not be rendered: its id, the stage that refused it, and why (each reason apart)."""

    row_id: str
    stage: str
    reasons: tuple[str, ...]
    # True when the refusal may pass with nothing about the row changing (a storage read that
    # failed, an object not found): such a verdict is not kept by the next run's plan.
    transient: bool = False

    @property
    def reason(self) -> str:
        return joined(self.reasons)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ProbedRow:
    """A row whose media passed every probe: resolved URIs, measurements, hashes, parameters."""

    row: ManifestRow
    portrait_uri: str
    audio_uri: str
    audio_duration_s: float
    face_box: tuple[float, float, float, float]
    portrait_sha256: str
    audio_sha256: str
    params: RenderParams = field(default_factory=RenderParams)
    # The row's captions_uri file as text, once it parsed and fit the audio (None: no such file),
    # where it was read and the SHA-256 of its bytes (part of the content key).
    captions_text: str | None = None
    captions_uri: str | None = None
    captions_sha256: str | None = None

    @property
    def row_id(self) -> str:
        return self.row.row_id

    def as_dict(self) -> dict:
        """JSON-ready: the row's columns under "row", parameters under "params", the rest flat."""
        values = asdict(self)
        values["face_box"] = list(self.face_box)
        return values


@dataclass(frozen=True)
class RenderedVideo:
    """A video rendered to scratch space, with what made it (not yet checked)."""

    info: RowInfo
    content_key: str
    video_path: str  # local file in the row's scratch directory, or a URI under `scratch_uri`
    portrait_path: str  # local copies of the inputs, for QA
    audio_path: str
    portrait_uri: str
    audio_uri: str
    portrait_sha256: str
    audio_sha256: str
    generator: str
    generator_version: str
    params: dict
    audio_duration_s: float
    render: dict  # RenderResult.as_dict()
    timings: dict = field(default_factory=dict)
    # Set when the files above sit in shared scratch storage (a cluster run): the attempt
    # folder holding them, removed once the row is published or rejected.
    scratch_uri: str | None = None
    # The renditions made beside the master: {"name", "path", "width", "height"} each (`path`
    # local or in the scratch, like `video_path`).
    renditions: tuple[dict, ...] = ()
    # What the captions are made from: {"script_text", "captions_text", "captions_uri",
    # "captions_sha256"} (None: no captions).
    captions_source: dict | None = None
    # The content key without the captions (`frames_key`): what the frames were made from.
    frames_key: str | None = None


@dataclass(frozen=True)
class CheckedVideo:
    """A rendered video with its QA verdict."""

    rendered: RenderedVideo
    passed: bool
    failures: tuple[str, ...]
    figures: dict
    mouth_series: tuple[float, ...] = ()
    envelope_series: tuple[float, ...] = ()
    speech_series: tuple[bool, ...] = ()
    timings: dict = field(default_factory=dict)
    # Each rendition checked on its own: {"name", "passed", "failures", "figures"}. `passed` and
    # `failures` above cover them too (a failed rendition fails the row, named in its reason).
    renditions: tuple[dict, ...] = ()
    # The row's captions as QA made and checked them: {"vtt", "srt", "language", "method",
    # "script_match", "cues"} (None: the row has no script and no captions file).
    captions: dict | None = None


@dataclass(frozen=True)
class RowOutcome:
    """The final verdict for one manifest row in one run: what the ledger records."""

    info: RowInfo
    status: str
    reasons: tuple[str, ...] = ()
    output_uri: str | None = None
    poster_uri: str | None = None
    sidecar_uri: str | None = None
    plot_uri: str | None = None
    content_key: str | None = None
    qa_figures: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    # Lip-sync calibration and motion smoothing figures of the render (see `postprocess_figures`).
    postprocess: dict = field(default_factory=dict)
    # Why the run's plan (tasks/plan.py) decided what it did with the row: "unchanged since run
    # X", "audio changed since run X", "--force", ... ('' for rows the plan never saw).
    plan: str = ""
    # A quarantine that may pass with nothing changing (see `Quarantine.transient`).
    transient: bool = False
    # The renditions beside the master: {"name", "uri", "width", "height", "passed"} each.
    renditions: tuple[dict, ...] = ()

    @property
    def in_catalog(self) -> bool:
        return self.status in IN_CATALOG

    @property
    def reason(self) -> str:
        """Why the row ended as it did, as the ledger and the report write it ('' when published)."""
        return joined(self.reasons)

    def as_dict(self) -> dict:
        return asdict(self)


# RenderResult fields written by the post-processing steps (sonic_model/render.py).
POSTPROCESS_FIELDS = (
    "av_offset_measured_frames",
    "av_sync_correlation",
    "av_offset_confident",
    "av_offset_applied_ms",
    "av_calibration",
    "motion_smoothing",
    "motion_frames_warped",
    "motion_correction_mean_px",
    "motion_correction_max_px",
)


def postprocess_figures(render: dict, params: dict) -> dict:
    """What lip-sync calibration and motion smoothing measured and did for one render."""
    figures = {
        "lipsync_calibration": params.get("lipsync_calibration"),
        "av_offset_ms_requested": params.get("av_offset_ms"),
    }
    figures.update({name: render.get(name) for name in POSTPROCESS_FIELDS})
    return figures
