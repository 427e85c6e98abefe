"""Stage 1 of a row's way: the manifest table, checked as a whole with Great Expectations.

`validate_table` runs one Great Expectations suite over the whole table: column types, nulls
and blanks, unique `row_id` (and a `row_id` safe to use as a file name), BCP-47 language tags,
URI schemes on the allow-list, override ranges (the `RenderParams` range constants), declared
durations, consent present. Every failing row is quarantined with *all* its reasons. Rows whose
URIs leave the allowed roots are refused here too when the manifest's location is known. A bad
row never stops the others; only a table that is unusable as a whole raises `ManifestError`.

`validate_table_task` is the thin Prefect wrapper; the pure function works without Prefect.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterable

import numpy as np
from prefect import get_run_logger, task
from prefect.cache_policies import NONE as NO_CACHE

from manifests.schema import (
    BOOLEAN_COLUMNS,
    COLUMNS,
    FLOAT_COLUMNS,
    INTEGER_COLUMNS,
    MANIFEST_URL_ATTR,
    NAN_CELLS_ATTR,
    REQUIRED_COLUMNS,
    STRING_COLUMNS,
    ManifestRow,
    resolve_uri,
)
from sonic_model.crop import EXPAND_RATIO_RANGE, MIN_RESOLUTION_RANGE
from sonic_model.errors import InputError, ManifestError
from sonic_model.generators import (
    AV_OFFSET_MS_RANGE,
    DYNAMIC_SCALE_RANGE,
    INFERENCE_STEPS_RANGE,
    MOTION_SCALE_RANGE,
    SEED_RANGE,
)
from sonic_model.postprocess.smoothing import MOTION_SMOOTHING_RANGE
from tasks.records import REASON_SEPARATOR, Quarantine, quoted
from tasks.storage import DEFAULT_ALLOWED_SCHEMES, check_uri_allowed, default_roots, redact, uri_scheme
from tasks.table_memory import SuiteMemory

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
# Optional caption columns (docs/captions.md): always in the frame the suite sees (empty when the
# manifest lacks them), so the suite is the same whichever columns a manifest has.
CAPTION_COLUMNS = ("script_text", "captions_uri")
# About 16 minutes of speech at the 20 characters/s reading-speed limit: far above a course video.
SCRIPT_TEXT_MAX_CHARS = 20_000
CAPTIONS_URI_MAX_CHARS = 2_048
# C0/C1 control characters; a script may hold tabs and line breaks, a URI nothing of the kind.
_SCRIPT_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
_URI_CONTROL = r"[\x00-\x1f\x7f-\x9f]"
# U+FFFD is what a wrong decoding left behind; lone surrogates are not text at all.
_BAD_ENCODING = r"[\ufffd\ud800-\udfff]"
VALIDATE_STAGE = "validate"


def validate_table(
    df,
    *,
    allowed_schemes: Iterable[str] = DEFAULT_ALLOWED_SCHEMES,
    manifest_url: str | None = None,
    allowed_roots: Iterable[str] | None = None,
    catalog_url: str | None = None,
) -> tuple[list[ManifestRow], list[Quarantine]]:
    """Split a manifest DataFrame into good rows and quarantined rows (with all their reasons).

    `manifest_url` (default: the one `read_manifest` stored in `df.attrs`) enables the check
    that every URI resolves inside `allowed_roots` (default: the manifest's directory tree).
    `catalog_url`: remember the suite's verdicts on this table in the catalog
    (`SuiteMemory`), so a nightly re-checking the same table skips Great Expectations (and
    its import); any change to the table's values or to the checks runs the suite again.
    Raises `ManifestError` only when the table as a whole is unusable (a required column
    missing, no rows).
    """
    import pandas as pd

    missing = [name for name in REQUIRED_COLUMNS if name not in df.columns]
    if missing:
        raise ManifestError(
            f"manifest lacks required column(s) {', '.join(missing)}; required: {', '.join(REQUIRED_COLUMNS)}"
        )
    if len(df) == 0:
        raise ManifestError("manifest has no rows; nothing to render")
    allowed_schemes = tuple(s.lower().rstrip(":/") for s in allowed_schemes)
    manifest_url = manifest_url or df.attrs.get(MANIFEST_URL_ATTR)

    count = len(df)
    reasons: dict[int, list[str]] = {}

    def add(position: int, reason: str) -> None:
        # The separator of a row's reasons (once written out) must not occur inside one.
        reason = reason.replace(REASON_SEPARATOR, ", ")
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
    for name in CAPTION_COLUMNS:
        if name not in frame.columns:
            frame[name] = pd.Series([None] * count, dtype=object)
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

    memory = SuiteMemory(catalog_url) if catalog_url else None
    suite_results = _run_suite(frame, allowed_schemes, tuple(numeric_present), memory=memory)
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
                    add(
                        position,
                        f"{name} {quoted(value)} is not true or false; write a boolean or leave the cell empty",
                    )

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
        for name in URI_COLUMNS + ("captions_uri",):
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
        Quarantine(row_id=_row_label(row_ids.iat[p], p), stage=VALIDATE_STAGE, reasons=tuple(reasons[p]))
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
    return [ManifestRow(*values) for values in zip(*columns, strict=False)]


_GX_LOCK = threading.Lock()
_GX_STATE: dict = {}
_NUMERIC_TYPES = [
    "int",
    "float",
    "int64",
    "int32",
    "float64",
    "float32",
    "Int64",
    "Float64",
    "Decimal",
    "int16",
    "int8",
]


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
    expect(
        E.ExpectColumnValueLengthsToBeBetween,
        "length:row_id",
        column="row_id",
        min_value=1,
        max_value=ROW_ID_MAX_LENGTH,
    )
    expect(E.ExpectColumnValuesToMatchRegex, "form:row_id", column="row_id", regex=ROW_ID_PATTERN)
    expect(E.ExpectColumnValuesToNotMatchRegex, "dots:row_id", column="row_id", regex=r"\.\.")
    expect(E.ExpectColumnValuesToMatchRegex, "bcp47:language", column="language", regex=BCP47_PATTERN)
    for name in URI_COLUMNS + ("captions_uri",):
        expect(E.ExpectColumnValuesToMatchRegex, f"scheme:{name}", column=name, regex=_scheme_regex(allowed_schemes))
    for name, longest, control in (
        ("script_text", SCRIPT_TEXT_MAX_CHARS, _SCRIPT_CONTROL),
        ("captions_uri", CAPTIONS_URI_MAX_CHARS, _URI_CONTROL),
    ):
        expect(E.ExpectColumnValueLengthsToBeBetween, f"length:{name}", column=name, min_value=1, max_value=longest)
        expect(E.ExpectColumnValuesToNotMatchRegex, f"control:{name}", column=name, regex=control)
        expect(E.ExpectColumnValuesToNotMatchRegex, f"encoding:{name}", column=name, regex=_BAD_ENCODING)
    expect(
        E.ExpectColumnValuesToMatchRegex, "extension:captions_uri", column="captions_uri", regex=r"(?i)\.(?:vtt|srt)$"
    )
    for name in numeric_present:
        expect(E.ExpectColumnValuesToBeInTypeList, f"numtype:{name}", column=f"{name}__raw", type_list=_NUMERIC_TYPES)
        if name in OVERRIDE_RANGES:
            low, high = OVERRIDE_RANGES[name]
            expect(E.ExpectColumnValuesToBeBetween, f"range:{name}", column=name, min_value=low, max_value=high)
    if "duration_s" in numeric_present:
        expect(
            E.ExpectColumnValuesToBeBetween, "positive:duration_s", column="duration_s", min_value=0, strict_min=True
        )
    return suite


def _run_suite(
    frame, allowed_schemes: tuple[str, ...], numeric_present: tuple[str, ...], memory: SuiteMemory | None = None
) -> list[tuple[str, list[int]]]:
    """Run the suite; return (reason_id, [row positions]) per failed expectation.

    With a `memory` holding the verdicts for exactly this frame and these checks, those are
    returned without running (or importing) Great Expectations; otherwise the suite runs and
    its verdicts are remembered. A suite that cannot run raises, and nothing is remembered."""
    key = memory.key(frame, _suite_checks(allowed_schemes, numeric_present), __file__) if memory is not None else None
    if key is not None:
        recalled = memory.recall(key, rows=len(frame))
        if recalled is not None:
            return recalled
    failures = _run_gx_suite(frame, allowed_schemes, numeric_present)
    if key is not None:
        memory.remember(key, failures)
    return failures


def _suite_checks(allowed_schemes: tuple[str, ...], numeric_present: tuple[str, ...]) -> tuple:
    """What the suite is built from besides this module's source (part of `SuiteMemory`'s key)."""
    from importlib.metadata import version

    return (
        COLUMNS,
        REQUIRED_COLUMNS,
        STRING_COLUMNS,
        INTEGER_COLUMNS,
        FLOAT_COLUMNS,
        BOOLEAN_COLUMNS,
        sorted(OVERRIDE_RANGES.items()),
        allowed_schemes,
        numeric_present,
        version("great_expectations"),
    )


def _run_gx_suite(
    frame, allowed_schemes: tuple[str, ...], numeric_present: tuple[str, ...]
) -> list[tuple[str, list[int]]]:
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
    shown = quoted(value)
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
        return f"{name} must be text, got {type(raw).__name__} {quoted(raw)}"
    if kind == "numtype":
        raw = frame[f"{name}__raw"].iat[position]
        return f"{name} must be a number, got {type(raw).__name__} {quoted(raw)}"
    if kind == "unique":
        return f"duplicate row_id {shown} (appears {int(duplicate_counts.get(value, 2))} times); row ids must be unique"
    if kind == "length":
        longest = {"script_text": SCRIPT_TEXT_MAX_CHARS, "captions_uri": CAPTIONS_URI_MAX_CHARS}.get(
            name, ROW_ID_MAX_LENGTH
        )
        return f"{name} is {len(str(value))} characters long; use 1 to {longest}"
    if kind == "control":
        bad = sorted(
            {
                f"U+{ord(ch):04X}"
                for ch in str(value)
                if re.match(_SCRIPT_CONTROL if name == "script_text" else _URI_CONTROL, ch)
            }
        )
        return (
            f"{name} holds control character(s) {', '.join(bad[:5])}; remove them "
            "(a script may keep tabs and line breaks)"
        )
    if kind == "encoding":
        return (
            f"{name} holds U+FFFD or a lone surrogate: the text was decoded with the wrong encoding somewhere; "
            "write the manifest's text as UTF-8"
        )
    if kind == "extension":
        return f"captions_uri {quoted(redact(str(value)))} must name a .vtt or .srt file"
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
        return f"{name} {quoted(redact(str(value)))} has a scheme that is not allowed"
    if kind == "range":
        low, high = OVERRIDE_RANGES[name]
        return f"{name} {value:g} is out of range; allowed {low:g} to {high:g} (or leave empty for the run default)"
    if kind == "positive":
        return f"duration_s {value:g} must be a positive number of seconds (or leave it empty)"
    return f"{name} failed check {kind}"


# --- the Prefect task ----------------------------------------------------------------------------


@task(name="validate-table", task_run_name="validate-table", cache_policy=NO_CACHE)
def validate_table_task(df, **options) -> tuple[list[ManifestRow], list[Quarantine]]:
    """`validate_table` as a task, with its options (no Prefect cache: a DataFrame is the input
    and re-runs must re-check; `catalog_url` lets an unchanged table skip the suite itself)."""
    rows, quarantined = validate_table(df, **options)
    get_run_logger().info("table validation: %d rows good, %d quarantined", len(rows), len(quarantined))
    return rows, quarantined
