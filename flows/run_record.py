"""A catalog run's own bookkeeping: its run.json, its summary, its Prefect artifacts, and who
hears about each row's verdict while it runs.

`RunInfo` is built once when the run starts: what it was asked to do and how (manifest,
generator, defaults, thresholds, retry policy, limits, ...). run.json is written from it when
the run starts (so a killed run can be re-run) and again when it ends, with the run's results
(`RunInfo.finished`) added.

Outcome listeners: code that starts a flow in this process (the CLI's progress bar) wraps the
call in `with outcome_listener(callback):`; the flow builds its announcer from the listeners of
the context it runs in (`announcer`). No flow parameter (parameters must be serialisable for
the API) and no module-wide list: a listener hears only the runs started inside its block.

This is the flow's side of a run, not a row's task: it runs in the flow's process (the
listeners are in-process callbacks, the artifacts belong to the flow run).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.catalog import now_iso
from tasks.ledger import write_run_info
from tasks.records import CAPTIONS_UPDATED, ERROR, FAILED_QA, PUBLISHED, QUARANTINED, SKIPPED_CACHED, RowOutcome

OutcomeListener = Callable[[RowOutcome], None]

_listeners: contextvars.ContextVar[tuple[OutcomeListener, ...]] = contextvars.ContextVar(
    "sonic_catalog_outcome_listeners", default=()
)


@contextlib.contextmanager
def outcome_listener(listener: OutcomeListener) -> Iterator[OutcomeListener]:
    """Call `listener(outcome)` with every row's verdict of the catalog runs started inside this block."""
    token = _listeners.set((*_listeners.get(), listener))
    try:
        yield listener
    finally:
        _listeners.reset(token)


_finish_listeners: contextvars.ContextVar[tuple[Callable[[dict], None], ...]] = contextvars.ContextVar(
    "sonic_catalog_finish_listeners", default=()
)


@contextlib.contextmanager
def finished_listener(listener: Callable[[dict], None]) -> Iterator[Callable[[dict], None]]:
    """Call `listener(summary)` once a run started inside this block has written its finished
    run.json (before it talks to the API again): the command's verdict is settled from then on."""
    token = _finish_listeners.set((*_finish_listeners.get(), listener))
    try:
        yield listener
    finally:
        _finish_listeners.reset(token)


def announce_finished(summary: dict) -> None:
    for listener in _finish_listeners.get():
        listener(summary)


def announcer(*listeners: OutcomeListener) -> OutcomeListener:
    """One callable handing each verdict to `listeners`, then to the `outcome_listener`s around this run."""
    everyone = (*listeners, *_listeners.get())

    def announce(outcome: RowOutcome) -> None:
        for listener in everyone:
            listener(outcome)

    return announce


@dataclass(frozen=True)
class RunInfo:
    """What a run was asked to do and how: run.json, which `rerun` reads to redo a run's rows."""

    run_id: str
    manifest: str
    catalog: str
    generator: str
    generator_version: str
    weights: str | None
    defaults: dict
    qa_thresholds: dict
    only_rows: list[str] | None
    rerun_of: str | None
    started_at: str
    flow_run_id: str
    on_cluster: bool
    render_retries: int
    retry_delay_s: float
    limits: dict
    row_timeout_s: float | None
    force: bool = False
    recheck: bool = False
    # How published videos are signed (`tasks.signing`: paths and mode, never keys); rerun reuses it.
    signing: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def write(self, results: dict | None = None) -> str:
        """Write run.json: this info, and the run's `results` once it has them (see `finished`)."""
        return write_run_info(self.catalog, self.run_id, {**self.as_dict(), **(results or {})})

    def finished(self, outcomes: list[RowOutcome], *, ledger: str, index: dict) -> dict:
        """The run's summary (what the flow returns): the verdict counts, where things went."""
        return {
            "run_id": self.run_id,
            "rows": len(outcomes),
            "counts": dict(Counter(outcome.status for outcome in outcomes)),
            "all_in_catalog": all(outcome.in_catalog for outcome in outcomes),
            "manifest": self.manifest,
            "catalog": self.catalog,
            "generator": self.generator,
            "generator_version": self.generator_version,
            "started_at": self.started_at,
            "finished_at": now_iso(),
            "ledger": ledger,
            "index": index,
        }


# The table artifact lists at most this many rows (those needing a person first): every row of
# a 100,000-row nightly would put megabytes into Prefect's database each night. The ledger has them all.
ARTIFACT_ROWS = 1000
_ARTIFACT_ORDER = {QUARANTINED: 0, FAILED_QA: 0, ERROR: 0, PUBLISHED: 1, CAPTIONS_UPDATED: 1, SKIPPED_CACHED: 2}


def publish_run_artifacts(summary: dict, outcomes: list[RowOutcome]) -> None:
    """A table of verdicts and a markdown summary, shown on the flow run in Prefect's UI."""
    shown = sorted(outcomes, key=lambda o: _ARTIFACT_ORDER.get(o.status, 0))[:ARTIFACT_ROWS]
    left_out = len(outcomes) - len(shown)
    create_table_artifact(
        key="catalog-run-ledger",
        table=[
            {"row_id": o.info.row_id, "status": o.status, "reason": o.reason[:200], "output": o.output_uri or ""}
            for o in shown
        ],
        description=(
            f"Verdict of every manifest row in run {summary['run_id']}"
            if not left_out
            else f"Verdicts of run {summary['run_id']}: the {len(shown)} rows needing a person or published first; "
            f"{left_out} more (skipped as unchanged) in the ledger"
        ),
    )
    counts = "\n".join(f"| {status} | {count} |" for status, count in sorted(summary["counts"].items()))
    plan = summary.get("plan") or {}
    plan_line = (
        f"Plan: {plan.get('work', 0)} rows needed work, {plan.get('update_captions', 0)} only new captions, "
        f"{plan.get('skip', 0)} unchanged rows skipped and "
        f"{plan.get('keep_quarantine', 0)} quarantines and {plan.get('keep_failed', 0)} QA failures kept without a "
        f"task ({plan.get('hashed_inputs', 0)} inputs "
        "hashed)\n\n"
        if plan
        else ""
    )
    create_markdown_artifact(
        key="catalog-run-summary",
        markdown=(
            f"# Catalog run `{summary['run_id']}`\n\n"
            f"Manifest: `{summary['manifest']}`  \nCatalog: `{summary['catalog']}`\n\n"
            f"| status | rows |\n|---|---|\n{counts}\n\n{plan_line}"
            f"Ledger: `{summary['ledger']}`  \nReport: `{summary['report']}`  \nIndex: "
            f"`{summary['index']['index_parquet']}`\n"
        ),
        description="Catalog run summary",
    )
