"""Validation: the manifest table (Great Expectations) and each row's media (probes).

Two stages, both quarantining instead of crashing the batch:

1. `validate_table` runs one Great Expectations suite over the whole table: column types, nulls
   and blanks, unique `row_id` (and a `row_id` safe to use as a file name), BCP-47 language tags,
   URI schemes on the allow-list, override ranges (the `RenderParams` range constants), declared
   durations, consent present. Every failing row is quarantined with *all* its reasons joined
   by '; '. Rows whose URIs leave the allowed roots are refused here too when the manifest's
   location is known.
2. `probe_media` opens one row's files: the portrait decodes and holds one usable face, the
   audio decodes, holds speech, is within the length limits and matches the declared duration.

Which face is the subject: the largest one (by box area, as `sonic_model.face` orders them).
A second face whose area is more than `AMBIGUOUS_FACE_AREA_RATIO` (50%) of the largest is
refused as ambiguous: two people of similar size in one photo means we cannot know who the
presenter is, and animating the wrong person is worse than asking. Smaller background faces
(a poster on the wall, people far behind) are ignored.

The Prefect tasks at the bottom are thin wrappers; the pure functions work without Prefect.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from manifests.schema import (
    BOOLEAN_COLUMNS,
    COLUMNS,
    FLOAT_COLUMNS,
    INTEGER_COLUMNS,
    MANIFEST_URL_ATTR,
    NAN_CELLS_ATTR,
    OVERRIDE_COLUMNS,
    REQUIRED_COLUMNS,
    STRING_COLUMNS,
    ManifestError,
    ManifestRow,
    resolve_uri,
)
from sonic_model.audio import DEFAULT_MAX_SECONDS, MIN_SECONDS  # noqa: F401
from sonic_model.crop import EXPAND_RATIO_RANGE, MIN_RESOLUTION_RANGE
from sonic_model.errors import AudioError, InputError, NoFaceError, SonicCatalogError
from sonic_model.image import DEFAULT_MAX_PIXELS  # noqa: F401
from sonic_model.postprocess.smoothing import MOTION_SMOOTHING_RANGE
from sonic_model.render import (
    AV_OFFSET_MS_RANGE,
    DYNAMIC_SCALE_RANGE,
    INFERENCE_STEPS_RANGE,
    MOTION_SCALE_RANGE,
    SEED_RANGE,
    RenderParams,
)
from tasks.limits import MediaLimits, add_limit_options, limits_from_args  # noqa: F401 (re-exported)
from tasks.storage import DEFAULT_ALLOWED_SCHEMES, check_uri_allowed, default_roots, read_bytes, redact, uri_scheme

# A second face larger than this fraction of the largest face's area makes the subject ambiguous.
AMBIGUOUS_FACE_AREA_RATIO = 0.5
# The Sonic workflow's tolerance between the declared script duration and the real audio.
DURATION_TOLERANCE_S = 0.1
# row_id becomes part of published object keys: keep it to characters that are safe everywhere.
ROW_ID_MAX_LENGTH = 128
ROW_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
# BCP-47 (RFC 5646) language tag, the forms used in practice: language (2-3 letters; the RFC's
# 5-8 letter language subtags have never been registered, and allowing them would accept
# 'english'), optional extlang, script (4 letters), region (2 letters or 3 digits), variants,
# extensions and private use. Case-insensitive as the RFC says.
BCP47_PATTERN = (
    r"^[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}"
    r"(?:-[A-Za-z]{4})?"
    r"(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"
    r"(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*"
    r"(?:-[Xx](?:-[A-Za-z0-9]{1,8})+)?$"
)
OVERRIDE_RANGES = {
    "min_resolution": MIN_RESOLUTION_RANGE,
    "expand_ratio": EXPAND_RATIO_RANGE,
    "inference_steps": INFERENCE_STEPS_RANGE,
    "dynamic_scale": DYNAMIC_SCALE_RANGE,
    "motion_scale": MOTION_SCALE_RANGE,
    "seed": SEED_RANGE,
    "motion_smoothing": MOTION_SMOOTHING_RANGE,
    "av_offset_ms": AV_OFFSET_MS_RANGE,
}
URI_COLUMNS = ("portrait_uri", "audio_uri")
VALIDATE_STAGE = "validate"
PROBE_STAGE = "probe"


@dataclass(frozen=True)
class Quarantine:
    """A row that will not be rendered: its id, the stage that refused it, and why."""

    row_id: str
    stage: str
    reason: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


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

    @property
    def row_id(self) -> str:
        return self.row.row_id

    def as_dict(self) -> dict:
        """JSON-ready: the row's columns under "row", parameters under "params", the rest flat."""
        values = dataclasses.asdict(self)
        values["face_box"] = list(self.face_box)
        return values


class AmbiguousFaceError(NoFaceError):
    """Two or more faces of similar size: the subject cannot be chosen safely."""


class NoSpeechError(AudioError):
    """The audio decodes but holds no speech."""


class DurationMismatchError(AudioError):
    """The declared `duration_s` does not match the decoded audio."""


class TruncatedAudioError(AudioError):
    """The file's header promises much more audio than decodes: the file was cut short."""


# A header (mp3 Xing/Info, MP4 moov, FLAC STREAMINFO, ...) may overstate the decodable audio by
# a frame or an estimate's error; more than this is a file cut short (a failed upload or copy).
TRUNCATION_TOLERANCE_S = 1.0
TRUNCATION_TOLERANCE_RATIO = 0.25


# --- stage 1: the table ----------------------------------------------------------------------


def validate_table(
    df,
    *,
    allowed_schemes: Iterable[str] = DEFAULT_ALLOWED_SCHEMES,
    manifest_url: str | None = None,
    allowed_roots: Iterable[str] | None = None,
) -> tuple[list[ManifestRow], list[Quarantine]]:
    """Split a manifest DataFrame into good rows and quarantined rows (with all their reasons).

    `manifest_url` (default: the one `read_manifest` stored in `df.attrs`) enables the check
    that every URI resolves inside `allowed_roots` (default: the manifest's directory tree).
    Raises `ManifestError` only when the table as a whole is unusable (a required column
    missing, no rows).
    """
    import pandas as pd

    missing = [name for name in REQUIRED_COLUMNS if name not in df.columns]
    if missing:
        raise ManifestError(f"manifest lacks required column(s) {', '.join(missing)}; required: {', '.join(REQUIRED_COLUMNS)}")
    if len(df) == 0:
        raise ManifestError("manifest has no rows; nothing to render")
    allowed_schemes = tuple(s.lower().rstrip(":/") for s in allowed_schemes)
    manifest_url = manifest_url or df.attrs.get(MANIFEST_URL_ATTR)

    count = len(df)
    reasons: dict[int, list[str]] = {}

    def add(position: int, reason: str) -> None:
        # '; ' separates a row's reasons, so it must not occur inside one.
        reason = reason.replace("; ", ", ")
        bucket = reasons.setdefault(int(position), [])
        if reason not in bucket:
            bucket.append(reason)

    # Build the frame the suite sees: text columns as python str/None (so regexes never meet a
    # non-string), numeric columns coerced to float64 (so ranges compare numbers), and the
    # original values beside them as `<column>__raw` for the per-value type checks. `_row` (the
    # position) identifies failing rows: row_id cannot, it may be null or duplicated.
    frame = pd.DataFrame({"_row": np.arange(count)})
    for name in STRING_COLUMNS:
        if name in df.columns:
            raw = _as_object(df[name])
            if name in REQUIRED_COLUMNS:
                frame[f"{name}__raw"] = raw  # for the type check; the other checks see text
            text = [v if v is None or isinstance(v, str) else str(v) for v in raw.tolist()]
            frame[name] = pd.Series(text, dtype=object)
    numeric_present = [name for name in INTEGER_COLUMNS + FLOAT_COLUMNS if name in df.columns]
    for name in numeric_present:
        raw = df[name]
        frame[f"{name}__raw"] = _as_object(raw) if raw.dtype == object or str(raw.dtype) == "str" else raw
        coerced = pd.to_numeric(raw, errors="coerce") if raw.dtype == object or str(raw.dtype) == "str" else raw
        frame[name] = pd.Series(coerced, copy=False).astype("float64")
    # Switches (true/false): kept as python bool/None; anything else is refused below.
    for name in BOOLEAN_COLUMNS:
        if name in df.columns:
            frame[name] = pd.Series([None if _missing(v) else v for v in _as_object(df[name]).tolist()], dtype=object)
    nan_cells = dict(df.attrs.get(NAN_CELLS_ATTR, {}))
    for name in FLOAT_COLUMNS:
        if name in df.columns and not nan_cells.get(name) and df[name].dtype == object:
            nan_cells[name] = [i for i, v in enumerate(df[name]) if isinstance(v, float) and math.isnan(v)]

    suite_results = _run_suite(frame, allowed_schemes, tuple(numeric_present))
    row_ids = frame["row_id"]
    duplicate_counts = row_ids.value_counts(dropna=True)
    for reason_id, positions in suite_results:
        for position in positions:
            add(position, _reason(reason_id, frame, position, duplicate_counts, allowed_schemes))

    for name, positions in nan_cells.items():
        for position in positions:
            add(position, f"{name} is NaN; give a number (seconds for duration_s) or leave the cell empty")
    for name in FLOAT_COLUMNS:
        if name in frame.columns:
            for position in np.flatnonzero(np.isinf(frame[name].to_numpy())):
                add(position, f"{name} is infinite; give a finite number or leave the cell empty")

    for name in BOOLEAN_COLUMNS:
        if name in frame.columns:
            for position, value in enumerate(frame[name].tolist()):
                if value is not None and not isinstance(value, (bool, np.bool_)):
                    add(position, f"{name} {_shorten(value)} is not true or false; write a boolean or leave the cell empty")

    # Whole-number check for integer overrides (GX has no "is integral" expectation; vectorised here).
    for name in INTEGER_COLUMNS:
        if name in frame.columns:
            values = frame[name]
            fractional = values.notna() & np.isfinite(values) & (values != np.floor(values))
            for position in np.flatnonzero(fractional.to_numpy()):
                add(position, f"{name} {values.iloc[position]:g} is not a whole number; use an integer")

    if manifest_url is not None:
        roots = list(allowed_roots) if allowed_roots is not None else default_roots(manifest_url)
        realpath_cache: dict[str, str] = {}
        verdicts: dict[str, str | None] = {}  # the same portrait is written in many rows
        for name in URI_COLUMNS:
            for position, written in enumerate(frame[name].tolist()):
                # Missing values and refused schemes already have their reason from the suite.
                if not isinstance(written, str) or not written.strip() or uri_scheme(written) not in allowed_schemes:
                    continue
                if written not in verdicts:
                    try:
                        check_uri_allowed(
                            resolve_uri(manifest_url, written), allowed_schemes, roots, realpath_cache=realpath_cache
                        )
                        verdicts[written] = None
                    except InputError as exc:
                        verdicts[written] = f"{redact(written)!r}: {exc}"
                if verdicts[written] is not None:
                    add(position, f"{name} {verdicts[written]}")
    good_positions = [p for p in range(count) if p not in reasons]

    quarantined = [
        Quarantine(row_id=_row_label(row_ids.iat[p], p), stage=VALIDATE_STAGE, reason="; ".join(reasons[p]))
        for p in sorted(reasons)
    ]
    return _rows_at(frame, good_positions), quarantined


def _as_object(series):
    """Values as python objects with None for missing (pandas 3 'str' dtype and NaN included)."""
    import pandas as pd

    values = series.astype(object)
    return values.where(pd.notna(values), None)


def _row_label(row_id, position: int) -> str:
    if row_id is None or (isinstance(row_id, str) and not row_id.strip()):
        return f"<row {position + 1}>"  # 1-based: what a person sees in a spreadsheet
    return str(row_id)


def _missing(value) -> bool:
    """None, NaN or pandas' NA."""
    import pandas as pd

    if value is None or isinstance(value, (str, bytes)):
        return value is None
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # array-like cell: present (and refused as not a boolean)
        return False


def _rows_at(frame, positions: list[int]) -> list[ManifestRow]:
    """ManifestRow objects for the given positions (values already type-checked).

    Column-wise conversion, then one constructor call per row: 100,000 rows in ~0.2 s.
    """
    if not positions:
        return []
    subset = frame.iloc[positions]
    count = len(positions)
    columns = []
    for name in COLUMNS:
        if name not in subset.columns:
            columns.append([None] * count)
            continue
        series = subset[name]
        if name in INTEGER_COLUMNS:
            columns.append([None if v != v else int(v) for v in series.tolist()])  # v != v: NaN
        elif name in FLOAT_COLUMNS:
            columns.append([None if v != v else float(v) for v in series.tolist()])
        elif name in BOOLEAN_COLUMNS:
            columns.append([None if _missing(v) else bool(v) for v in series.tolist()])
        else:
            columns.append([v if v is None or isinstance(v, str) else str(v) for v in series.tolist()])
    return [ManifestRow(*values) for values in zip(*columns)]


_GX_LOCK = threading.Lock()
_GX_STATE: dict = {}
_NUMERIC_TYPES = ["int", "float", "int64", "int32", "float64", "float32", "Int64", "Float64", "Decimal", "int16", "int8"]


def _scheme_regex(allowed_schemes: tuple[str, ...]) -> str:
    """Values that are either a path without a scheme (when '' is allowed) or one of the schemes."""
    named = [re.escape(s) for s in allowed_schemes if s]
    alternatives = []
    if named:
        alternatives.append(rf"(?i:{'|'.join(named)})://")
    if "" in allowed_schemes:
        # No "scheme:" prefix at all (a Windows drive letter counts as a path).
        alternatives.append(r"(?![A-Za-z][A-Za-z0-9+.\-]*:)|[A-Za-z]:[\\/]")
    return rf"^(?:{'|'.join(alternatives) or '(?!)'})"


def _build_suite(allowed_schemes: tuple[str, ...], numeric_present: tuple[str, ...]):
    import great_expectations as gx

    E = gx.expectations
    suite = gx.ExpectationSuite(name=f"manifest-{abs(hash((allowed_schemes, numeric_present)))}")

    def expect(expectation_cls, reason_id: str, **kwargs):
        suite.add_expectation(expectation_cls(meta={"reason_id": reason_id}, **kwargs))

    for name in REQUIRED_COLUMNS:
        expect(E.ExpectColumnValuesToNotBeNull, f"null:{name}", column=name)
        expect(E.ExpectColumnValuesToMatchRegex, f"blank:{name}", column=name, regex=r"\S")
    for name in STRING_COLUMNS:
        if name in REQUIRED_COLUMNS:
            expect(E.ExpectColumnValuesToBeInTypeList, f"type:{name}", column=f"{name}__raw", type_list=["str"])
    expect(E.ExpectColumnValuesToBeUnique, "unique:row_id", column="row_id")
    expect(E.ExpectColumnValueLengthsToBeBetween, "length:row_id", column="row_id", min_value=1, max_value=ROW_ID_MAX_LENGTH)
    expect(E.ExpectColumnValuesToMatchRegex, "form:row_id", column="row_id", regex=ROW_ID_PATTERN)
    expect(E.ExpectColumnValuesToNotMatchRegex, "dots:row_id", column="row_id", regex=r"\.\.")
    expect(E.ExpectColumnValuesToMatchRegex, "bcp47:language", column="language", regex=BCP47_PATTERN)
    for name in URI_COLUMNS:
        expect(E.ExpectColumnValuesToMatchRegex, f"scheme:{name}", column=name, regex=_scheme_regex(allowed_schemes))
    for name in numeric_present:
        expect(E.ExpectColumnValuesToBeInTypeList, f"numtype:{name}", column=f"{name}__raw", type_list=_NUMERIC_TYPES)
        if name in OVERRIDE_RANGES:
            low, high = OVERRIDE_RANGES[name]
            expect(E.ExpectColumnValuesToBeBetween, f"range:{name}", column=name, min_value=low, max_value=high)
    if "duration_s" in numeric_present:
        expect(E.ExpectColumnValuesToBeBetween, "positive:duration_s", column="duration_s", min_value=0, strict_min=True)
    return suite


def _run_suite(frame, allowed_schemes: tuple[str, ...], numeric_present: tuple[str, ...]) -> list[tuple[str, list[int]]]:
    """Run the suite; return (reason_id, [row positions]) per failed expectation."""
    import great_expectations as gx

    with _GX_LOCK:  # the ephemeral context is not thread-safe; Prefect may run tasks in threads
        if "batch_definition" not in _GX_STATE:
            from great_expectations.data_context.types.base import ProgressBarsConfig

            # GX pins this logger to INFO and announces its temporary docs folder on every new
            # context: noise for a batch job's users.
            logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            asset = context.data_sources.add_pandas("manifest").add_dataframe_asset("manifest")
            _GX_STATE["batch_definition"] = asset.add_batch_definition_whole_dataframe("whole")
            _GX_STATE["suites"] = {}
        key = (allowed_schemes, numeric_present)
        suite = _GX_STATE["suites"].get(key) or _GX_STATE["suites"].setdefault(key, _build_suite(*key))
        batch = _GX_STATE["batch_definition"].get_batch(batch_parameters={"dataframe": frame})
        outcome = batch.validate(
            suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["_row"]}
        )
    failures = []
    for result in outcome.results:
        if result.success:
            continue
        reason_id = result.expectation_config.meta["reason_id"]
        if result.exception_info and result.exception_info.get("raised_exception"):
            message = str(result.exception_info.get("exception_message", ""))[:200]
            raise ManifestError(f"manifest check {reason_id} could not run ({message}); check the column's values")
        indexes = result.result.get("unexpected_index_list") or []
        failures.append((reason_id, [int(entry["_row"]) for entry in indexes]))
    return failures


def _reason(reason_id: str, frame, position: int, duplicate_counts, allowed_schemes: tuple[str, ...]) -> str:
    """The one-line, specific reason for one failed check on one row."""
    kind, name = reason_id.split(":", 1)
    value = frame[name].iat[position] if name in frame.columns else None
    shown = _shorten(value)
    if kind == "null":
        if name == "consent_ref":
            return "consent_ref is missing: every row needs a reference to the presenter's signed likeness release"
        return f"{name} is missing; every row needs one"
    if kind == "blank":
        what = "empty" if value == "" else f"only whitespace ({shown})"
        if name == "consent_ref":
            return f"consent_ref is {what}: give the reference of the signed likeness release"
        return f"{name} is {what}"
    if kind == "type":
        raw = frame[f"{name}__raw"].iat[position]
        return f"{name} must be text, got {type(raw).__name__} {_shorten(raw)}"
    if kind == "numtype":
        raw = frame[f"{name}__raw"].iat[position]
        return f"{name} must be a number, got {type(raw).__name__} {_shorten(raw)}"
    if kind == "unique":
        return f"duplicate row_id {shown} (appears {int(duplicate_counts.get(value, 2))} times); row ids must be unique"
    if kind == "length":
        return f"row_id is {len(str(value))} characters long; use 1 to {ROW_ID_MAX_LENGTH}"
    if kind == "form":
        bad = sorted({ch for ch in str(value) if not re.match(r"[A-Za-z0-9._-]", ch)})
        detail = f"has {', '.join(repr(ch) for ch in bad[:5])}" if bad else "must start with a letter or digit"
        return (
            f"row_id {shown} {detail}; use letters, digits, '.', '_' and '-' only, starting with a letter "
            "or digit (it becomes part of file names)"
        )
    if kind == "dots":
        return f"row_id {shown} contains '..'; it becomes part of file names, so '..' is refused"
    if kind == "bcp47":
        return f"language {shown} is not a BCP-47 tag; use e.g. 'en', 'es-MX', 'zh-Hans'"
    if kind == "scheme":
        try:
            check_uri_allowed(str(value), allowed_schemes, None)
        except InputError as exc:
            return f"{name}: {exc}"
        return f"{name} {_shorten(redact(str(value)))} has a scheme that is not allowed"
    if kind == "range":
        low, high = OVERRIDE_RANGES[name]
        return f"{name} {value:g} is out of range; allowed {low:g} to {high:g} (or leave empty for the run default)"
    if kind == "positive":
        return f"duration_s {value:g} must be a positive number of seconds (or leave it empty)"
    return f"{name} failed check {kind}"


def _shorten(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "...'"


# --- stage 2: the media ----------------------------------------------------------------------


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

    Raises an `InputError` subclass whose message names the specific problem (when both the
    portrait and the audio are bad, both problems, joined by '; ').
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
    if errors:
        if len(errors) == 1:
            raise errors[0]
        raise type(errors[0])("; ".join(str(e) for e in errors))
    portrait_uri, portrait_sha256, face_box = portrait
    audio_uri, audio_sha256, duration_s = audio
    return ProbedRow(
        row=row,
        portrait_uri=portrait_uri,
        audio_uri=audio_uri,
        audio_duration_s=duration_s,
        face_box=face_box,
        portrait_sha256=portrait_sha256,
        audio_sha256=audio_sha256,
        params=params,
    )


def _open(row_uri: str, column: str, manifest_url: str, limits: MediaLimits, schemes, roots) -> tuple[str, bytes]:
    """Resolve, check against the allow-list, read (size-limited). Errors keep their class."""
    try:
        uri = check_uri_allowed(resolve_uri(manifest_url, row_uri), schemes, roots)
        return uri, read_bytes(uri, limits.max_file_bytes)
    except InputError as exc:
        raise type(exc)(f"{column} {_shorten(redact(row_uri))}: {exc}") from None


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
        if header_s is not None and header_s >= limits.min_audio_seconds and "shorter than the minimum" in str(exc):
            raise TruncatedAudioError(
                f"audio file is truncated: its header says {header_s:.2f} s but almost nothing decodes "
                f"({exc}); upload the complete file ({redact(uri)})"
            ) from None
        raise type(exc)(f"{exc} ({redact(uri)})") from None
    duration = clip.duration_s
    if header_s is not None and header_s - duration > max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_RATIO * header_s):
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


# --- Prefect tasks ---------------------------------------------------------------------------

from prefect import get_run_logger, task  # noqa: E402  (kept below the pure functions on purpose)
from prefect.cache_policies import NONE as NO_CACHE  # noqa: E402


@task(name="validate-table", task_run_name="validate-table", cache_policy=NO_CACHE)
def validate_table_task(
    df,
    *,
    allowed_schemes: Iterable[str] = DEFAULT_ALLOWED_SCHEMES,
    manifest_url: str | None = None,
    allowed_roots: Iterable[str] | None = None,
) -> tuple[list[ManifestRow], list[Quarantine]]:
    """`validate_table` as a task (no cache: a DataFrame is the input and re-runs must re-check)."""
    rows, quarantined = validate_table(df, allowed_schemes=allowed_schemes, manifest_url=manifest_url, allowed_roots=allowed_roots)
    get_run_logger().info("table validation: %d rows good, %d quarantined", len(rows), len(quarantined))
    return rows, quarantined


# One task per row for everything before the render: on a cluster each Prefect task costs tens of
# milliseconds of CPU (worker, flow and server together; benchmarks/fanout_scaling.py), so the
# probe and the catalog lookup travel together. No cache: a re-run must re-read the files so a
# fixed one is picked up.
@task(name="probe-row", task_run_name="probe-{row.row_id}", cache_policy=NO_CACHE)
def probe_row_task(
    row: ManifestRow,
    manifest_url: str,
    limits: MediaLimits = MediaLimits(),
    *,
    allowed_schemes: Iterable[str] = DEFAULT_ALLOWED_SCHEMES,
    allowed_roots: Iterable[str] | None = None,
    defaults: RenderParams = RenderParams(),
    catalog_url: str | None = None,
    choice=None,
):
    """Probe a row's media; bad input becomes a `Quarantine`, never an exception.

    Given `catalog_url` and the generator `choice`, a row whose content is already published
    there comes back as its `skipped_cached` outcome (`tasks.publish.find_published`) instead
    of a `ProbedRow` to render.
    """
    probed = probe_or_quarantine(
        row, manifest_url, limits, allowed_schemes=allowed_schemes, allowed_roots=allowed_roots, defaults=defaults
    )
    if isinstance(probed, Quarantine) or catalog_url is None or choice is None:
        return probed
    from tasks.publish import find_published
    from tasks.records import RowInfo
    from tasks.render import key_for

    return find_published(catalog_url, RowInfo.from_row(row), key_for(probed, choice)) or probed


def probe_or_quarantine(row: ManifestRow, manifest_url: str, limits: MediaLimits = MediaLimits(), **kwargs) -> ProbedRow | Quarantine:
    """`probe_media`, with every failure turned into a `Quarantine` (used by the task and the CLI)."""
    try:
        return probe_media(row, manifest_url, limits, **kwargs)
    except SonicCatalogError as exc:
        return Quarantine(row.row_id, PROBE_STAGE, str(exc))
    except Exception as exc:  # a decoder bug on hostile bytes must not take the batch down
        return Quarantine(row.row_id, PROBE_STAGE, f"media could not be probed ({type(exc).__name__}: {str(exc)[:200]})")
