"""What the catalog remembers between runs for the nightly plan, and its update after a run.

Where the remembered facts live: the index's input-memory columns (`tasks.catalog_index.
INPUT_MEMORY_COLUMNS`) for published rows; `_state/quarantines.parquet` under the catalog for
rows a probe refused and rows that failed QA (`RememberedQuarantine`, its `status` says which),
and `_state/seeds.parquet` for seeds `rerun --new-seed` chose (`RerolledSeed`); each file read
once and written once per run (and only when it changed).
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
    FAILED_QA,
    KEEP_FAILED,
    KEEP_QUARANTINE,
    PUBLISHED,
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
    "status",
    "output_uri",
)
SEEDS_FILE = "_state/seeds.parquet"
SEED_COLUMNS = ("key", "row_id", "seed", "replaces", "run_id", "chosen_at")


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
    captions: str | None = None  # the published .vtt (None: published without captions)
    # The content key without captions (None: published before it was kept), the captions_uri
    # file it was published with, and the hash of its script (None: no script).
    frames_key: str | None = None
    captions_uri: str | None = None
    captions_sha256: str | None = None
    captions_fingerprint: str | None = None
    script_sha256: str | None = None

    @classmethod
    def from_record(cls, record: Mapping) -> PublishedEntry:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {name: record.get(name) for name in names}
        values["sidecar"] = values.get("sidecar") or f"{record['key']}.json"
        return cls(**values)


@dataclass(frozen=True)
class RememberedQuarantine:
    """A verdict the next plan may keep, and what it depended on, with the inputs' fingerprints
    at the time. `status` `quarantined`: a probe's refusal (`conditions`: generator, parameters,
    limits, probe code); `failed_qa`: a render that failed QA (`conditions` also cover the QA
    thresholds and the QA code; `output_uri` is the rejected video under that run)."""

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
    status: str = QUARANTINED
    output_uri: str | None = None


@dataclass(frozen=True)
class RerolledSeed:
    """A seed `rerun --new-seed` chose for a row: used instead of `replaces` (the seed the row's
    manifest cells and the run's defaults give) for as long as they still give `replaces`."""

    key: str
    row_id: str
    seed: int
    replaces: int
    run_id: str
    chosen_at: str = ""


def _read_state(catalog: Catalog, name: str, remedy: str) -> tuple[list[dict], bool]:
    """One `_state/` Parquet file as a list of records with None for empty cells, and whether it
    was readable: [] when absent, and [] with one warning (`remedy`) when it cannot be read
    (truncated, garbage, wrong schema) - state only saves work, it never stops a run."""
    import pandas as pd

    path = catalog.path(name)
    try:
        with catalog.fs.open(path, "rb") as handle:
            frame = pd.read_parquet(handle, pre_buffer=False)
        return frame.astype(object).where(pd.notna(frame), None).to_dict("records"), True
    except FileNotFoundError:
        return [], True
    except Exception as exc:  # noqa: BLE001 - a damaged state file is dropped, never fatal
        warn_unreadable(catalog.uri(path), exc, remedy)
        return [], False


def _write_state(catalog: Catalog, name: str, records: list[dict], columns: tuple[str, ...]) -> str:
    import io

    import pandas as pd

    frame = pd.DataFrame(records, columns=list(columns)).astype("string")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return catalog.uri(catalog.write_bytes(buffer.getvalue(), catalog.path(name)))


def read_seeds(catalog: Catalog) -> dict[str, RerolledSeed]:
    """`_state/seeds.parquet` as {key: RerolledSeed} (empty when there is none)."""
    names = [f.name for f in dataclasses.fields(RerolledSeed)]
    seeds = {}
    records, _ = _read_state(catalog, SEEDS_FILE, "the re-rolled seeds are dropped (those rows use their own seed)")
    for record in records:
        values = {name: record.get(name) for name in names}
        values["seed"], values["replaces"] = int(values["seed"]), int(values["replaces"])
        seeds[record["key"]] = RerolledSeed(**values)
    return seeds


def write_seeds(catalog: Catalog, seeds: Mapping[str, RerolledSeed]) -> str:
    records = [dataclasses.asdict(s) for s in sorted(seeds.values(), key=lambda s: s.key)]
    return _write_state(catalog, SEEDS_FILE, records, SEED_COLUMNS)


def read_quarantines(catalog: Catalog) -> dict[str, RememberedQuarantine]:
    """`_state/quarantines.parquet` as {key: RememberedQuarantine} (empty when there is none,
    or when it cannot be read: dropped with a warning, its rows are probed again).
    A file written before failures were remembered has no `status`: every row is a quarantine."""
    return _read_quarantines(catalog)[0]


def _read_quarantines(catalog: Catalog) -> tuple[dict[str, RememberedQuarantine], bool]:
    """The quarantine memory, and whether the file was readable (or absent)."""
    names = [f.name for f in dataclasses.fields(RememberedQuarantine)]
    remedy = "the remembered quarantines and QA failures are dropped (those rows are probed again)"
    records, readable = _read_state(catalog, QUARANTINES_FILE, remedy)
    remembered = {}
    for record in records:
        values = {name: record.get(name) for name in names}
        values["status"] = values["status"] or QUARANTINED
        values["quarantined_at"] = values["quarantined_at"] or ""
        remembered[record["key"]] = RememberedQuarantine(**values)
    return remembered, readable


def write_quarantines(catalog: Catalog, quarantines: Mapping[str, RememberedQuarantine]) -> str:
    """Write the quarantine memory (atomically, one object); returns its URI."""
    records = [dataclasses.asdict(q) for q in sorted(quarantines.values(), key=lambda q: q.key)]
    return _write_state(catalog, QUARANTINES_FILE, records, QUARANTINE_COLUMNS)


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
    both fingerprints are trusted; so is a row that failed QA (with the plan's `qa_conditions`,
    which add the QA thresholds and code); a kept quarantine or failure stays as it was; any
    other verdict of a planned row forgets the row. Rows the run did not plan are left alone.
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
        if row.decision in (KEEP_QUARANTINE, KEEP_FAILED):
            continue
        seen = row.seen
        conditions = {QUARANTINED: row.conditions, FAILED_QA: row.qa_conditions}.get(outcome.status, "")
        if (
            conditions
            and lasting(outcome)
            and seen.portrait_fingerprint is not None
            and seen.audio_fingerprint is not None
        ):
            remembered[key] = RememberedQuarantine(
                key=key,
                row_id=outcome.info.row_id,
                run_id=run_id,
                reason=outcome.reason,
                conditions=conditions,
                portrait_uri=seen.portrait_uri,
                portrait_fingerprint=seen.portrait_fingerprint,
                audio_uri=seen.audio_uri,
                audio_fingerprint=seen.audio_fingerprint,
                quarantined_at=now_iso(),
                status=outcome.status,
                output_uri=outcome.output_uri if outcome.status == FAILED_QA else None,
            )
        else:
            remembered.pop(key, None)
    if remembered == before and readable:
        return {"quarantines": len(remembered), "written": False}
    write_quarantines(catalog, remembered)
    return {"quarantines": len(remembered), "written": True}


def remember_seeds(catalog_url: str, plan: RunPlan, outcomes: Iterable[RowOutcome], run_id: str) -> dict:
    """Update `_state/seeds.parquet` after a run: a seed this run's plan chose (`--new-seed`) is
    remembered once a render used it (the row published or failed QA), so the next nightly
    renders, keeps or skips the row with that seed; a remembered seed the plan found no longer
    applying (the manifest or the defaults now give another seed) is forgotten."""
    catalog = Catalog(catalog_url)
    if not plan.seeds_chosen() and not plan.seeds_dropped:
        return {"seeds": None, "written": False}
    seeds = read_seeds(catalog)
    before = dict(seeds)
    for key in plan.seeds_dropped:
        seeds.pop(key, None)
    planned = plan.by_key()
    for outcome in outcomes:
        row = planned.get(outcome.info.key_prefix)
        if row is None or row.new_seed is None or row.info.row_id != outcome.info.row_id:
            continue
        if outcome.status in (PUBLISHED, FAILED_QA):
            replaces, seed = row.new_seed
            seeds[row.key] = RerolledSeed(row.key, row.info.row_id, seed, replaces, run_id, now_iso())
    if seeds == before:
        return {"seeds": len(seeds), "written": False}
    write_seeds(catalog, seeds)
    return {"seeds": len(seeds), "written": True}


# --- the Prefect task ------------------------------------------------------------------------------


@task(name="update-catalog-index", task_run_name="update-catalog-index", cache_policy=NO_CACHE)
def update_catalog_state_task(catalog_url: str, outcomes: list[RowOutcome], plan: RunPlan | None, run_id: str) -> dict:
    """After a run: the catalog index (with the input fingerprints the plan saw) and the
    remembered quarantines, each read once and written once (one task for both)."""
    index = update_index(catalog_url, outcomes, plan.seen_inputs() if plan is not None else None)
    if plan is not None:
        index["quarantines_kept"] = remember_quarantines(catalog_url, plan, outcomes, run_id)["quarantines"]
        remember_seeds(catalog_url, plan, outcomes, run_id)
    return index
