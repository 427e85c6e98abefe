"""What the catalog remembers between runs for the nightly plan, and its update after a run.

Where the remembered facts live: the index's input-memory columns (`tasks.catalog_index.
INPUT_MEMORY_COLUMNS`) for published rows; `_state/quarantines.parquet` under the catalog for
rows a probe refused (`QuarantineMemory`), one file read once and written once per run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NONE as NO_CACHE

from tasks.catalog import Catalog, now_iso
from tasks.catalog_index import update_index
from tasks.records import (
    KEEP_QUARANTINE,
    QUARANTINED,
    RowOutcome,
)
from tasks.state_files import warn_unreadable

if TYPE_CHECKING:
    from tasks.plan import RunPlan

QUARANTINES_FILE = "_state/quarantines.parquet"
QUARANTINE_COLUMNS = (
    "key",
    "row_id",
    "run_id",
    "reason",
    "conditions",
    "portrait_uri",
    "portrait_fingerprint",
    "audio_uri",
    "audio_fingerprint",
    "quarantined_at",
)


# --- what was remembered ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedEntry:
    """A published row as the index (or its sidecar) remembers it."""

    key: str
    run_id: str | None
    content_key: str | None
    video: str
    poster: str | None
    sidecar: str
    portrait_uri: str | None = None
    portrait_sha256: str | None = None
    portrait_fingerprint: str | None = None
    audio_uri: str | None = None
    audio_sha256: str | None = None
    audio_fingerprint: str | None = None

    @classmethod
    def from_record(cls, record: Mapping) -> PublishedEntry:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {name: record.get(name) for name in names}
        values["sidecar"] = values.get("sidecar") or f"{record['key']}.json"
        return cls(**values)


@dataclass(frozen=True)
class RememberedQuarantine:
    """A probe's verdict and what it depended on (`conditions`: generator, parameters, limits,
    probe code), with the inputs' fingerprints at the time."""

    key: str
    row_id: str
    run_id: str
    reason: str
    conditions: str
    portrait_uri: str | None
    portrait_fingerprint: str | None
    audio_uri: str | None
    audio_fingerprint: str | None
    quarantined_at: str = ""


def read_quarantines(catalog: Catalog) -> dict[str, RememberedQuarantine]:
    """`_state/quarantines.parquet` as {key: RememberedQuarantine} (empty when there is none,
    or when it cannot be read: dropped with a warning, its rows are probed again)."""
    return _read_quarantines(catalog)[0]


def _read_quarantines(catalog: Catalog) -> tuple[dict[str, RememberedQuarantine], bool]:
    """The quarantine memory, and whether the file was readable (or absent)."""
    import pandas as pd

    path = catalog.path(QUARANTINES_FILE)
    names = [f.name for f in dataclasses.fields(RememberedQuarantine)]
    try:
        with catalog.fs.open(path, "rb") as handle:
            frame = pd.read_parquet(handle, pre_buffer=False)
        frame = frame.astype(object).where(pd.notna(frame), None)
        remembered = {
            record["key"]: RememberedQuarantine(**{name: record.get(name) for name in names})
            for record in frame.to_dict("records")
        }
    except FileNotFoundError:
        return {}, True
    except Exception as exc:  # noqa: BLE001 - truncated, garbage, wrong schema: dropped, rows probed again
        warn_unreadable(catalog.uri(path), exc, "the remembered quarantines are dropped (those rows are probed again)")
        return {}, False
    return remembered, True


def write_quarantines(catalog: Catalog, quarantines: Mapping[str, RememberedQuarantine]) -> str:
    """Write the quarantine memory (atomically, one object); returns its URI."""
    import io

    import pandas as pd

    frame = pd.DataFrame(
        [dataclasses.asdict(q) for q in sorted(quarantines.values(), key=lambda q: q.key)],
        columns=list(QUARANTINE_COLUMNS),
    ).astype("string")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return catalog.uri(catalog.write_bytes(buffer.getvalue(), catalog.path(QUARANTINES_FILE)))


# --- remembering quarantines --------------------------------------------------------------------------


def remember_quarantines(
    catalog_url: str,
    plan: RunPlan,
    outcomes: Iterable[RowOutcome],
    run_id: str,
    *,
    lasting: Callable[[RowOutcome], bool] = lambda outcome: not outcome.transient,
) -> dict:
    """Update `_state/quarantines.parquet` after a run: read once, merge, write once.

    A planned row quarantined by this run's probe is remembered (with the fingerprints and
    conditions the plan saw) when `lasting(outcome)` says its verdict comes from the inputs'
    content (default: the outcome is not `transient`, as a storage read that failed is) and
    both fingerprints are trusted; a kept
    quarantine stays as it was; any other verdict of a planned row forgets the row. Rows the
    run did not plan are left alone.
    """
    catalog = Catalog(catalog_url)
    remembered, readable = _read_quarantines(catalog)
    before = dict(remembered)
    planned = plan.by_key()
    for outcome in outcomes:
        key = outcome.info.key_prefix
        row = planned.get(key)
        if row is None or row.info.row_id != outcome.info.row_id:
            continue
        if row.decision == KEEP_QUARANTINE:
            continue
        seen = row.seen
        if (
            outcome.status == QUARANTINED
            and lasting(outcome)
            and row.conditions
            and seen.portrait_fingerprint is not None
            and seen.audio_fingerprint is not None
        ):
            remembered[key] = RememberedQuarantine(
                key=key,
                row_id=outcome.info.row_id,
                run_id=run_id,
                reason=outcome.reason,
                conditions=row.conditions,
                portrait_uri=seen.portrait_uri,
                portrait_fingerprint=seen.portrait_fingerprint,
                audio_uri=seen.audio_uri,
                audio_fingerprint=seen.audio_fingerprint,
                quarantined_at=now_iso(),
            )
        else:
            remembered.pop(key, None)
    if remembered == before and readable:
        return {"quarantines": len(remembered), "written": False}
    write_quarantines(catalog, remembered)
    return {"quarantines": len(remembered), "written": True}


# --- the Prefect task ------------------------------------------------------------------------------


@task(name="update-catalog-index", task_run_name="update-catalog-index", cache_policy=NO_CACHE)
def update_catalog_state_task(catalog_url: str, outcomes: list[RowOutcome], plan: RunPlan | None, run_id: str) -> dict:
    """After a run: the catalog index (with the input fingerprints the plan saw) and the
    remembered quarantines, each read once and written once (one task for both)."""
    index = update_index(catalog_url, outcomes, plan.seen_inputs() if plan is not None else None)
    if plan is not None:
        index["quarantines_kept"] = remember_quarantines(catalog_url, plan, outcomes, run_id)["quarantines"]
    return index
