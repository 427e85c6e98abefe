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

from tasks.ledger import write_run_info
from tasks.publish import now_iso
from tasks.records import RowOutcome

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


def publish_run_artifacts(summary: dict, outcomes: list[RowOutcome]) -> None:
    """A table of verdicts and a markdown summary, shown on the flow run in Prefect's UI."""
    create_table_artifact(
        key="catalog-run-ledger",
        table=[
            {"row_id": o.info.row_id, "status": o.status, "reason": o.reason[:200], "output": o.output_uri or ""}
            for o in outcomes
        ],
        description=f"Verdict of every manifest row in run {summary['run_id']}",
    )
    counts = "\n".join(f"| {status} | {count} |" for status, count in sorted(summary["counts"].items()))
    create_markdown_artifact(
        key="catalog-run-summary",
        markdown=(
            f"# Catalog run `{summary['run_id']}`\n\n"
            f"Manifest: `{summary['manifest']}`  \nCatalog: `{summary['catalog']}`\n\n"
            f"| status | rows |\n|---|---|\n{counts}\n\n"
            f"Ledger: `{summary['ledger']}`  \nReport: `{summary['report']}`  \nIndex: `{summary['index']['index_parquet']}`\n"
        ),
        description="Catalog run summary",
    )
