"""The run ledger: `<catalog>/_runs/<run_id>/ledger.parquet`, one row per manifest row.

Each run also leaves `run.json` (manifest, generator, thresholds, counts) beside it, which is
what `sonic-catalog rerun` reads to redo the rows that did not publish. Run ids sort by time,
so "the latest run" is the greatest id that has a ledger.
"""

from __future__ import annotations

import io
import json
import secrets
from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NONE

from sonic_model.errors import RunNotFoundError
from tasks.catalog import RUNS_DIR, Catalog, now_iso
from tasks.records import IN_CATALOG, STATUSES, RowOutcome

LEDGER_FILE = "ledger.parquet"
RUN_INFO_FILE = "run.json"
LEDGER_COLUMNS = (
    "run_id",
    "row_id",
    "status",
    "reason",
    "output_uri",
    "poster_uri",
    "sidecar_uri",
    "plot_uri",
    "content_key",
    "collection",
    "language",
    "item_id",
    "title",
    "consent_ref",
    "qa_figures",
    "av_offset_measured_frames",
    "av_offset_applied_ms",
    "postprocess",
    "renditions",
    "timings",
    "total_s",
    "finished_at",
    "plan",
)

NUMERIC_LEDGER_COLUMNS = ("total_s", "av_offset_measured_frames", "av_offset_applied_ms")


def new_run_id() -> str:
    """`20261124T123456Z-1a2b3c`: sorts by start time, unique across concurrent starts."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def run_dir(catalog: Catalog, run_id: str) -> str:
    return catalog.path(RUNS_DIR, run_id)


def ledger_rows(run_id: str, outcomes: list[RowOutcome]) -> list[dict]:
    finished = now_iso()
    rows = []
    for outcome in outcomes:
        if outcome.status not in STATUSES:
            raise ValueError(f"unknown status {outcome.status!r}")
        info = outcome.info
        rows.append(
            {
                "run_id": run_id,
                "row_id": info.row_id,
                "status": outcome.status,
                "reason": outcome.reason,
                "output_uri": outcome.output_uri,
                "poster_uri": outcome.poster_uri,
                "sidecar_uri": outcome.sidecar_uri,
                "plot_uri": outcome.plot_uri,
                "content_key": outcome.content_key,
                "collection": info.collection,
                "language": info.language,
                "item_id": info.item_id,
                "title": info.title,
                "consent_ref": info.consent_ref,
                "qa_figures": _json(outcome.qa_figures),
                "av_offset_measured_frames": outcome.postprocess.get("av_offset_measured_frames"),
                "av_offset_applied_ms": outcome.postprocess.get("av_offset_applied_ms"),
                "postprocess": _json(outcome.postprocess),
                # Most rows of a nightly have none: a constant, not an encoder run.
                "renditions": json.dumps(list(outcome.renditions), sort_keys=True, default=str)
                if outcome.renditions
                else "[]",
                "timings": _json(outcome.timings),
                "total_s": round(sum(v for v in outcome.timings.values() if isinstance(v, (int, float))), 3),
                "finished_at": finished,
                "plan": outcome.plan,
            }
        )
    return rows


def _json(values: dict) -> str:
    # Most rows of a nightly (skipped ones) have nothing here: no need to run the encoder 3 times a row.
    return json.dumps(values, sort_keys=True, default=str) if values else "{}"


def write_ledger(catalog_url: str, run_id: str, outcomes: list[RowOutcome]) -> str:
    """Write the run's ledger (atomically); returns its URI."""
    import pandas as pd

    catalog = Catalog(catalog_url)
    frame = pd.DataFrame(ledger_rows(run_id, outcomes), columns=list(LEDGER_COLUMNS))
    for name in LEDGER_COLUMNS:
        if name not in NUMERIC_LEDGER_COLUMNS:
            frame[name] = frame[name].astype("string")
    frame["av_offset_measured_frames"] = frame["av_offset_measured_frames"].astype("Int64")
    frame["av_offset_applied_ms"] = frame["av_offset_applied_ms"].astype("Float64")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return catalog.uri(catalog.write_bytes(buffer.getvalue(), catalog.path(RUNS_DIR, run_id, LEDGER_FILE)))


@task(name="write-ledger", cache_policy=NONE)
def write_ledger_task(catalog_url: str, run_id: str, outcomes: list[RowOutcome]) -> str:
    """Record every row's verdict for this run."""
    return write_ledger(catalog_url, run_id, outcomes)


def write_run_info(catalog_url: str, run_id: str, info: dict) -> str:
    catalog = Catalog(catalog_url)
    payload = json.dumps({"run_id": run_id, **info}, indent=2, default=str).encode("utf-8")
    return catalog.uri(catalog.write_bytes(payload, catalog.path(RUNS_DIR, run_id, RUN_INFO_FILE)))


def read_run_info(catalog_url: str, run_id: str) -> dict:
    catalog = Catalog(catalog_url)
    info = catalog.read_json(catalog.path(RUNS_DIR, run_id, RUN_INFO_FILE))
    if info is None:
        raise RunNotFoundError(f"run {run_id} has no run.json in {catalog_url}")
    return info


def read_ledger(catalog_url: str, run_id: str):
    import pandas as pd

    catalog = Catalog(catalog_url)
    path = catalog.path(RUNS_DIR, run_id, LEDGER_FILE)
    if not catalog.exists(path):
        raise RunNotFoundError(
            f"run {run_id} has no ledger in {catalog_url}; list runs under {catalog.uri(catalog.path(RUNS_DIR))}"
        )
    with catalog.fs.open(path, "rb") as handle:
        return pd.read_parquet(handle, pre_buffer=False)  # see manifests.schema.read_manifest


def list_runs(catalog_url: str) -> list[str]:
    """Run ids that have a ledger or a run.json (a run records itself before any slow step, so
    one killed before its first verdict is listed too), oldest first."""
    catalog = Catalog(catalog_url)
    runs_path = catalog.path(RUNS_DIR)
    try:
        entries = catalog.fs.ls(runs_path, detail=False)
    except (FileNotFoundError, OSError):
        return []
    run_ids = sorted(entry.rstrip("/").rsplit("/", 1)[-1] for entry in entries)
    return [
        run_id
        for run_id in run_ids
        if not run_id.startswith(".")
        and (
            catalog.exists(catalog.path(RUNS_DIR, run_id, LEDGER_FILE))
            or catalog.exists(catalog.path(RUNS_DIR, run_id, RUN_INFO_FILE))
        )
    ]


def latest_run_id(catalog_url: str) -> str:
    runs = list_runs(catalog_url)
    if not runs:
        raise RunNotFoundError(
            f"no runs found in {catalog_url}; render a manifest first (sonic-catalog render MANIFEST --catalog "
            f"{catalog_url})"
        )
    return runs[-1]


def rows_to_redo(ledger, all_row_ids: list[str] | None = None) -> list[str]:
    """Row ids of a run that did not end in the catalog, in ledger order, without repeats.

    `all_row_ids` (for a run that never finished): the rows it should have done; those with no
    ledger row at all are redone too, after the failed ones.
    """
    redo = [str(row_id) for row_id in ledger[~ledger["status"].isin(list(IN_CATALOG))]["row_id"].tolist()]
    if all_row_ids is not None:
        seen = {str(row_id) for row_id in ledger["row_id"].tolist()}
        redo += [str(row_id) for row_id in all_row_ids if str(row_id) not in seen]
    return list(dict.fromkeys(redo))


def redo_for_run(catalog_url: str, run_id: str, manifest: str | None = None) -> list[str]:
    """What `rerun` must redo for `run_id`: its rows that are not in the catalog.

    A run that finished says so in its run.json (`finished_at`); its ledger is complete. A run
    that did not (killed, crashed) has only the partial ledger `ProgressLedger` kept, so every
    row of its manifest (or of its `only_rows`) without an in-catalog verdict is redone; rows it
    published before it died are found in the catalog and skipped (`skipped_cached`).
    """
    try:
        info = read_run_info(catalog_url, run_id)
    except RunNotFoundError:
        return rows_to_redo(read_ledger(catalog_url, run_id))
    try:
        ledger = read_ledger(catalog_url, run_id)
    except RunNotFoundError:
        if info.get("finished_at"):
            raise
        # Killed (or failed) before its first verdict: nothing decided, every row is redone
        # (those already in the catalog are found there and skipped).
        import pandas as pd

        ledger = pd.DataFrame({"row_id": pd.Series(dtype="object"), "status": pd.Series(dtype="object")})
    if info.get("finished_at"):
        return rows_to_redo(ledger)
    wanted = info.get("only_rows")
    if wanted is None:
        from manifests.schema import read_manifest

        table = read_manifest(manifest or info["manifest"])
        wanted = [str(v) for v in table["row_id"].tolist() if isinstance(v, str) and v.strip()]
    return rows_to_redo(ledger, all_row_ids=wanted)


PROGRESS_WRITE_INTERVAL_S = 5.0


# Whatever `interval_s` says, the partial ledger is rewritten at most once per this many times
# the last rewrite took: a 100,000-row ledger takes a second or two to write, and rewriting it
# every 5 s would spend a core on it.
PROGRESS_WRITE_COST_FACTOR = 10.0


class ProgressLedger:
    """Keeps the run's ledger on storage current while rows finish, so a run that is killed
    leaves a partial ledger (at most `interval_s` of verdicts behind, or 10 times as long as a
    rewrite takes, whichever is longer) that `rerun` can use.

    Call it with each `RowOutcome` (the flow registers it as an outcome listener); the flow's
    final `write_ledger` replaces the partial ledger with the complete one. Writes are best
    effort: a failing storage write is left to the final ledger to report.
    """

    def __init__(self, catalog_url: str, run_id: str, interval_s: float = PROGRESS_WRITE_INTERVAL_S) -> None:
        import threading

        self.catalog_url, self.run_id, self.interval_s = catalog_url, run_id, interval_s
        self.outcomes: list[RowOutcome] = []
        self.writes = 0
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._wait = interval_s
        self.flush()  # an empty ledger at once: even a run killed before its first verdict is listed

    def __call__(self, outcome: RowOutcome) -> None:
        import time

        with self._lock:
            self.outcomes.append(outcome)
            if time.monotonic() - self._last >= self._wait:
                self._write()

    def flush(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
        import time

        started = time.monotonic()
        try:
            write_ledger(self.catalog_url, self.run_id, list(self.outcomes))
            self.writes += 1
        except Exception:  # noqa: BLE001 - best effort; the final ledger reports storage trouble
            pass
        self._last = time.monotonic()
        self._wait = max(self.interval_s, PROGRESS_WRITE_COST_FACTOR * (self._last - started))
