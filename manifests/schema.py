"""The manifest: one Parquet row per video, its schema written once, and how it is read.

`MANIFEST_SCHEMA` is the single definition of the columns; the reader, the CSV converter, the
validation suite and the README table all follow it. Reading is deliberately strict about the
*table* (not Parquet, a required column missing, a column whose values cannot be cast safely,
no rows: `ManifestError`, the whole run stops) and lenient about *rows* (a null consent or an
out-of-range seed is a row problem for `tasks.table.validate_table` to quarantine).
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from sonic_model.cells import is_missing
from sonic_model.errors import ManifestError
from sonic_model.generators import RenderParams

REQUIRED_COLUMNS = ("row_id", "portrait_uri", "audio_uri", "language", "consent_ref")
# Per-row generation overrides: a null cell means "use the run's default".
OVERRIDE_COLUMNS = (
    "min_resolution",
    "expand_ratio",
    "inference_steps",
    "dynamic_scale",
    "motion_scale",
    "seed",
    "lipsync_calibration",
    "motion_smoothing",
    "av_offset_ms",
    "renditions",
    "burn_captions",
)
# A row's own preset: its settings replace the run's defaults except options the run gave
# explicitly; the row's own override columns win over both.
PRESET_COLUMN = "preset"
CATALOG_KEY_COLUMNS = ("collection", "item_id", "title")


def _column(name: str, kind: pa.DataType, doc: str, *, required: bool = False) -> pa.Field:
    """A manifest column: its type, whether a row may leave it empty, and its doc (shown by `schema`)."""
    return pa.field(name, kind, nullable=not required, metadata={"doc": doc})


MANIFEST_SCHEMA = pa.schema(
    [
        _column("row_id", pa.string(), "unique id of the row (letters, digits, . _ -)", required=True),
        _column(
            "portrait_uri", pa.string(), "portrait photo: fsspec URL or path relative to the manifest", required=True
        ),
        _column("audio_uri", pa.string(), "script audio: fsspec URL or path relative to the manifest", required=True),
        _column("language", pa.string(), "BCP-47 tag of the script, e.g. en, es-MX, zh-Hans", required=True),
        _column("consent_ref", pa.string(), "reference to the presenter's signed likeness release", required=True),
        _column("duration_s", pa.float64(), "declared script duration; must match the audio within 0.1 s"),
        _column("collection", pa.string(), "catalog collection (first part of the published key)"),
        _column("item_id", pa.string(), "catalog item id"),
        _column("title", pa.string(), "human-readable title"),
        _column("min_resolution", pa.int64(), "override: short side of the video in px"),
        _column("expand_ratio", pa.float64(), "override: face-box expansion"),
        _column("inference_steps", pa.int64(), "override: denoising steps (sonic)"),
        _column("dynamic_scale", pa.float64(), "override: mouth motion intensity"),
        _column("motion_scale", pa.float64(), "override: head/expression motion"),
        _column("seed", pa.int64(), "override: random seed"),
        _column("lipsync_calibration", pa.bool_(), "override: lip-sync calibration on/off"),
        _column("motion_smoothing", pa.float64(), "override: motion smoothing strength (0 = off)"),
        _column("av_offset_ms", pa.float64(), "override: manual audio delay in ms"),
        _column(
            "renditions",
            pa.string(),
            "override: sizes delivered beside the master, e.g. 'vertical,square' (vertical, square, landscape)",
        ),
        _column("preset", pa.string(), "override: named generation settings, 'fast' or 'high-quality'"),
        _column(
            "script_text",
            pa.string(),
            "what is spoken, in the row's language: captions are aligned from it (docs/captions.md)",
        ),
        _column(
            "captions_uri",
            pa.string(),
            "an existing .vtt or .srt for the row, used as given after checks (instead of aligning script_text)",
        ),
        _column(
            "burn_captions",
            pa.bool_(),
            "override: burn the row's captions into its renditions (the master keeps a soft track only)",
        ),
    ]
)
COLUMNS = tuple(MANIFEST_SCHEMA.names)
STRING_COLUMNS = tuple(f.name for f in MANIFEST_SCHEMA if pa.types.is_string(f.type))
INTEGER_COLUMNS = tuple(f.name for f in MANIFEST_SCHEMA if pa.types.is_integer(f.type))
FLOAT_COLUMNS = tuple(f.name for f in MANIFEST_SCHEMA if pa.types.is_floating(f.type))
BOOLEAN_COLUMNS = tuple(f.name for f in MANIFEST_SCHEMA if pa.types.is_boolean(f.type))

# `read_manifest` records here (in `DataFrame.attrs`) the positions of NaN cells, because pandas
# turns both Parquet null and NaN into NaN; a NaN `duration_s` is an error, a null one is not.
NAN_CELLS_ATTR = "sonic_catalog_nan_cells"
# Kept in `DataFrame.attrs` so relative URIs can be resolved later without passing it around.
MANIFEST_URL_ATTR = "sonic_catalog_manifest_url"


@dataclass(frozen=True)
class ManifestRow:
    """One validated manifest row. URIs are as written in the manifest (maybe relative)."""

    row_id: str
    portrait_uri: str
    audio_uri: str
    language: str
    consent_ref: str
    duration_s: float | None = None
    collection: str | None = None
    item_id: str | None = None
    title: str | None = None
    min_resolution: int | None = None
    expand_ratio: float | None = None
    inference_steps: int | None = None
    dynamic_scale: float | None = None
    motion_scale: float | None = None
    seed: int | None = None
    lipsync_calibration: bool | None = None
    motion_smoothing: float | None = None
    av_offset_ms: float | None = None
    renditions: str | None = None
    preset: str | None = None
    script_text: str | None = None
    captions_uri: str | None = None
    burn_captions: bool | None = None

    def render_params(self, defaults: RenderParams = RenderParams()) -> RenderParams:
        """The run's `defaults` with this row's preset and non-null overrides applied, range-checked.

        Precedence: built-in defaults < preset (the row's, else the run's) < options the run
        gave explicitly < this row's override columns. Raises `ParameterError` (an
        `InputError`) naming the first out-of-range value or unknown preset/rendition.
        """
        base = defaults.with_preset(self.preset) if self.preset is not None else defaults
        overrides = {name: getattr(self, name) for name in OVERRIDE_COLUMNS if getattr(self, name) is not None}
        return dataclasses.replace(base, **overrides).validated()

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> ManifestRow:
        """Build from a dict of column values (pandas NaN/NA become None; ints become int)."""
        values = {}
        for name in COLUMNS:
            value = record.get(name)
            if is_missing(value):
                values[name] = None
            elif name in INTEGER_COLUMNS:
                values[name] = int(value)
            elif name in FLOAT_COLUMNS:
                values[name] = float(value)
            elif name in BOOLEAN_COLUMNS:
                values[name] = bool(value)
            else:
                values[name] = str(value)
        return cls(**values)


# --- reading ---------------------------------------------------------------------------------


def read_manifest(url: str | Path):
    """Read a Parquet manifest from any fsspec URL into a pandas DataFrame with the schema's dtypes.

    Columns not in the schema are kept (catalog teams add their own keys) but not checked.
    Raises `ManifestError` with a specific reason when the file is missing, is not Parquet, lacks
    a required column, has a column that cannot be cast safely to the schema's type, or has no rows.
    """
    import fsspec
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    url = str(url)
    try:
        with fsspec.open(url, "rb") as handle:
            # In memory and without Arrow's thread pools: with them alive at exit (a Python file
            # object read from Arrow's IO threads, torch loaded too), the process sometimes
            # aborted at exit ("terminate called without an active exception", exit 134 instead
            # of our 1). Manifests are small; one thread reads them in milliseconds.
            table = pq.read_table(pa.BufferReader(handle.read()), use_threads=False)
    except FileNotFoundError:
        raise ManifestError(f"manifest not found: {url}; check the path or URL") from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ManifestError(
            f"manifest is not a readable Parquet file: {url} ({detail}); write it with pandas.DataFrame.to_parquet "
            "or convert a CSV with `sonic-catalog manifest from-csv`"
        ) from None
    except ValueError as exc:  # fsspec: unknown protocol
        raise ManifestError(f"manifest URL cannot be opened: {url} ({exc})") from None

    missing = [name for name in REQUIRED_COLUMNS if name not in table.column_names]
    if missing:
        raise ManifestError(
            f"manifest lacks required column(s) {', '.join(missing)}; required: {', '.join(REQUIRED_COLUMNS)} "
            f"(found: {', '.join(table.column_names) or 'none'})"
        )
    duplicated = sorted({name for name in table.column_names if table.column_names.count(name) > 1})
    if duplicated:
        raise ManifestError(f"manifest has duplicate column name(s) {', '.join(duplicated)}; keep one of each")
    if table.num_rows == 0:
        raise ManifestError(f"manifest has no rows: {url}; nothing to render")

    nan_cells: dict[str, list[int]] = {}
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if name in MANIFEST_SCHEMA.names:
            target = MANIFEST_SCHEMA.field(name).type
            column = _cast_column(name, column, target)
            if pa.types.is_floating(target):
                nan_mask = pc.fill_null(pc.is_nan(column), False).to_numpy(zero_copy_only=False)
                if nan_mask.any():
                    nan_cells[name] = [int(i) for i in nan_mask.nonzero()[0]]
        columns[name] = column
    table = pa.table(columns)
    frame = table.to_pandas(use_threads=False)
    # Integer columns with nulls would become float64; keep them nullable integers instead.
    for name in INTEGER_COLUMNS:
        if name in frame.columns:
            frame[name] = frame[name].astype("Int64")
    frame.attrs[NAN_CELLS_ATTR] = nan_cells
    frame.attrs[MANIFEST_URL_ATTR] = url
    return frame


def _cast_column(name: str, column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    """Cast one column to the schema type, refusing lossy casts (3.7 -> int, 'abc' -> float)."""
    if column.type == target:
        return column
    if pa.types.is_null(column.type):  # an all-null column written without a type
        return pa.chunked_array([pa.nulls(len(column), target)])
    if pa.types.is_string(target) and not (
        pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_dictionary(column.type)
    ):
        # A number where text is expected (e.g. row_id written as int): safe to render as text,
        # except for columns that must be written by a person.
        if name in ("consent_ref", "portrait_uri", "audio_uri", "language"):
            raise ManifestError(
                f"manifest column {name!r} has type {column.type}, expected text (string); write it as a string column"
            )
    try:
        return column.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        detail = str(exc).splitlines()[0][:160]
        raise ManifestError(
            f"manifest column {name!r} has type {column.type} and cannot be safely converted to {target} "
            f"({detail}); fix the column's values or type"
        ) from None


# --- URIs ----------------------------------------------------------------------------------


def resolve_uri(manifest_url: str | Path, uri: str) -> str:
    """Resolve a manifest cell's URI: URLs with a scheme and absolute paths are returned as
    written; relative paths are joined to the manifest's own directory (same filesystem).

    The result is normalised (`a/../b` -> `b`), so a `..` escape shows up as a path outside the
    manifest's directory for `tasks.storage.check_uri_allowed` to refuse.
    """
    import fsspec.core

    uri = str(uri).strip()
    protocol, _ = fsspec.core.split_protocol(uri)
    if protocol is not None:
        return uri
    manifest_url = str(manifest_url)
    manifest_protocol, manifest_path = fsspec.core.split_protocol(manifest_url)
    if manifest_protocol in (None, "file", "local"):
        # os.path rather than pathlib: a nightly resolves 100,000 of these (pathlib is ~5x slower).
        if os.path.isabs(uri):
            return os.path.normpath(uri)
        base = os.path.dirname(manifest_path)
        return os.path.normpath(os.path.join(base if os.path.isabs(base) else os.path.join(os.getcwd(), base), uri))
    if uri.startswith("/"):
        return f"{manifest_protocol}://{posixpath.normpath(uri).lstrip('/')}"
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(manifest_path), uri))
    return f"{manifest_protocol}://{joined}"


# --- CSV -----------------------------------------------------------------------------------


def manifest_from_csv(csv_url: str | Path, out_url: str | Path) -> int:
    """Convert a CSV (header row with the schema's column names) into a Parquet manifest.

    Values are cast to the schema's types (empty cells become null); a column that cannot be
    converted raises `ManifestError` naming it. Returns the number of rows written.
    """
    import fsspec
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    csv_url, out_url = str(csv_url), str(out_url)
    try:
        with fsspec.open(csv_url, "rb") as handle:
            header_line = handle.readline().decode("utf-8-sig", errors="replace")
    except FileNotFoundError:
        raise ManifestError(f"CSV not found: {csv_url}") from None
    header = [name.strip() for name in header_line.rstrip("\r\n").split(",")]
    known = {name: MANIFEST_SCHEMA.field(name).type for name in header if name in MANIFEST_SCHEMA.names}
    # Everything not in the schema is read as text; empty strings are nulls except in text
    # columns, where an empty cell is kept (validation then says "is empty" for required ones).
    convert = pacsv.ConvertOptions(
        column_types={name: known.get(name, pa.string()) for name in header},
        strings_can_be_null=True,
        null_values=[""],
    )
    try:
        with fsspec.open(csv_url, "rb") as handle:
            table = pacsv.read_csv(handle, convert_options=convert)
    except pa.ArrowInvalid as exc:
        detail = str(exc).splitlines()[0][:200]
        # Arrow says "In CSV column #5: ..." (0-based); say the column's name instead.
        match = re.search(r"column #(\d+)", detail)
        if match and int(match.group(1)) < len(header):
            name = header[int(match.group(1))]
            expected = known.get(name, pa.string())
            detail = f"column {name!r} must hold {expected} values: {detail.split(': ', 1)[-1]}"
        raise ManifestError(f"CSV cannot be converted to the manifest schema: {csv_url} ({detail})") from None
    missing = [name for name in REQUIRED_COLUMNS if name not in table.column_names]
    if missing:
        raise ManifestError(
            f"CSV lacks required column(s) {', '.join(missing)}; required: {', '.join(REQUIRED_COLUMNS)}"
        )
    # Schema columns first in schema order, then any extra columns as they were.
    ordered = [name for name in MANIFEST_SCHEMA.names if name in table.column_names]
    ordered += [name for name in table.column_names if name not in MANIFEST_SCHEMA.names]
    table = table.select(ordered)
    fields = [
        MANIFEST_SCHEMA.field(name).with_nullable(True) if name in MANIFEST_SCHEMA.names else table.schema.field(name)
        for name in ordered
    ]
    table = table.cast(pa.schema(fields))
    with fsspec.open(out_url, "wb") as handle:
        pq.write_table(table, handle)
    return table.num_rows


# ManifestRow's fields follow the schema's column order (validate_table builds rows positionally).
assert tuple(f.name for f in dataclasses.fields(ManifestRow)) == COLUMNS
