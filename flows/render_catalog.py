"""The main job: a Parquet manifest in, a published and checked catalog out.

    read manifest -> validate table -> per row: probe media -> already published? ->
    render -> QA -> publish (or file the QA failure) -> catalog index -> ledger -> report

Every row ends with exactly one verdict (published, skipped_cached, quarantined, failed_qa,
error); a bad row never stops the others. Rows move through their stages independently, up to
`concurrency` rows at a time, so one row's QA overlaps another's render. The flow only wires
tasks: the work (and any media logic) lives in `tasks/`, and the task runner can be swapped
(e.g. a Dask cluster) without touching this file.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Generator, Iterable
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from manifests.schema import read_manifest
from sonic_model.errors import SonicCatalogError
from sonic_model.render import RenderParams
from tasks.ledger import new_run_id, write_ledger_task, write_run_info
from tasks.publish import find_published_task, now_iso, publish_video_task, update_index_task
from tasks.records import ERROR, QUARANTINED, RowInfo, RowOutcome
from tasks.render import GeneratorChoice, check_video_task, choose_generator, discard_scratch, render_video_task
from tasks.report import write_report_task
from tasks.validate import MediaLimits, Quarantine, probe_media_task, validate_table_task

# Who wants to hear about each row's verdict as it happens (the CLI's progress bar). A plain
# in-process hook, not a flow parameter: parameters must be serialisable for the API.
_outcome_listeners: list[Callable[[RowOutcome], None]] = []
_listeners_lock = threading.Lock()


def add_outcome_listener(listener: Callable[[RowOutcome], None]) -> None:
    with _listeners_lock:
        _outcome_listeners.append(listener)


def remove_outcome_listener(listener: Callable[[RowOutcome], None]) -> None:
    with _listeners_lock:
        if listener in _outcome_listeners:
            _outcome_listeners.remove(listener)


def _announce(outcome: RowOutcome) -> None:
    for listener in list(_outcome_listeners):
        listener(outcome)


def _named(stage: str, row_id: str) -> Callable[[], str]:
    # A callable, not a template string: a row id holding "{" must not be formatted.
    return lambda: f"{stage}-{row_id}"


# --- one row's way through the stages -------------------------------------------------------


RowPipeline = Generator[PrefectFuture, Any, RowOutcome]


def render_one_row(row, info: RowInfo, *, manifest: str, catalog: str, run_id: str, choice: GeneratorChoice,
                   defaults: RenderParams, limits: MediaLimits, thresholds: Any) -> RowPipeline:
    """The stages of one row, each a task; yields each task's future and gets its result back."""
    rendered = None
    try:
        probed = yield probe_media_task.with_options(task_run_name=_named("probe", info.row_id)).submit(
            row, manifest, limits, defaults=defaults
        )
        if isinstance(probed, Quarantine):
            return RowOutcome(info=info, status=QUARANTINED, reason=probed.reason)

        already = yield find_published_task.with_options(task_run_name=_named("find-published", info.row_id)).submit(
            catalog, probed, choice
        )
        if already is not None:
            return already

        rendered = yield render_video_task.with_options(task_run_name=_named("render", info.row_id)).submit(probed, choice)
        checked = yield check_video_task.with_options(task_run_name=_named("qa", info.row_id)).submit(rendered, thresholds)
        rendered = None  # from here on the publish task owns (and removes) the scratch files
        return (yield publish_video_task.with_options(task_run_name=_named("publish", info.row_id)).submit(checked, catalog, run_id))
    except Exception as exc:  # noqa: BLE001 - every row ends with a verdict, whatever went wrong
        if rendered is not None:
            discard_scratch(rendered)
        reason = str(exc) if isinstance(exc, SonicCatalogError) else f"{type(exc).__name__}: {exc}"
        return RowOutcome(info=info, status=ERROR, reason=reason or type(exc).__name__)


def run_rows(pipelines: Iterable[RowPipeline], concurrency: int) -> list[RowOutcome]:
    """Drive row pipelines, at most `concurrency` rows in flight; outcomes in input order.

    A finished task's result is sent into its row's pipeline, which answers with the next
    task's future or its final verdict; a failed task's exception is thrown into the pipeline.
    """
    queue = iter(enumerate(pipelines))
    outcomes: dict[int, RowOutcome] = {}
    in_flight: dict[PrefectFuture, tuple[int, RowPipeline]] = {}

    def advance(position: int, pipeline: RowPipeline, value: Any = None, error: BaseException | None = None) -> bool:
        try:
            future = pipeline.throw(error) if error is not None else pipeline.send(value)
        except StopIteration as finished:
            outcomes[position] = finished.value
            _announce(finished.value)
            return False
        in_flight[future] = (position, pipeline)
        return True

    def start_next() -> None:
        for position, pipeline in queue:
            if advance(position, pipeline):
                return

    for _ in range(max(1, concurrency)):
        start_next()
    while in_flight:
        future = next(as_completed(list(in_flight)))
        position, pipeline = in_flight.pop(future)
        try:
            value = future.result()
        except Exception as exc:  # noqa: BLE001 - handed to the row, which records it
            still_running = advance(position, pipeline, error=exc)
        else:
            still_running = advance(position, pipeline, value)
        if not still_running:
            start_next()
    return [outcomes[position] for position in sorted(outcomes)]


# --- the flow ----------------------------------------------------------------------------------


def _row_infos(table) -> dict[str, RowInfo]:
    """Catalog keys of every row id in the manifest (for rows refused before they were parsed)."""
    infos: dict[str, RowInfo] = {}
    for record in table.to_dict("records"):
        info = RowInfo.from_row(record)
        infos.setdefault(info.row_id, info)
    return infos


def summarise(run_id: str, outcomes: list[RowOutcome]) -> dict:
    counts = Counter(outcome.status for outcome in outcomes)
    return {
        "run_id": run_id,
        "rows": len(outcomes),
        "counts": dict(counts),
        "all_in_catalog": all(outcome.in_catalog for outcome in outcomes),
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


@flow(name="render-catalog", task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=True)
def render_catalog(
    manifest: str,
    catalog: str,
    generator: str = "preview",
    weights: str | None = None,
    concurrency: int = 2,
    defaults: dict | None = None,
    qa_thresholds: dict | None = None,
    only_rows: list[str] | None = None,
    rerun_of: str | None = None,
) -> dict:
    """Render every row of `manifest` into `catalog`; returns the run summary.

    `only_rows` restricts rendering to those row ids (what `rerun` uses); the whole table is
    still validated, because a duplicate id is only visible in the whole table.
    """
    from sonic_model.qa import QAThresholds

    logger = get_run_logger()
    run_id = new_run_id()
    started_at = now_iso()
    defaults_params = RenderParams(**(defaults or {})).validated()
    thresholds = QAThresholds().with_overrides(qa_thresholds or {})
    choice = choose_generator(generator, weights)
    write_run_info(catalog, run_id, {
        "manifest": manifest, "catalog": catalog, "generator": choice.name, "generator_version": choice.version,
        "weights": weights, "defaults": defaults_params.as_dict(), "qa_thresholds": qa_thresholds or {},
        "only_rows": only_rows, "rerun_of": rerun_of, "started_at": started_at, "flow_run_id": str(flow_run.get_id() or ""),
    })

    table = read_manifest(manifest)
    rows, refused = validate_table_task(table, manifest_url=manifest)
    wanted = None if only_rows is None else set(only_rows)
    rows = [row for row in rows if wanted is None or row.row_id in wanted]
    refused = [q for q in refused if wanted is None or q.row_id in wanted]
    infos = _row_infos(table)
    logger.info("run %s: %d rows to render, %d refused by table validation", run_id, len(rows), len(refused))

    outcomes = []
    for quarantine in refused:
        outcome = RowOutcome(info=infos.get(quarantine.row_id, RowInfo(row_id=quarantine.row_id)), status=QUARANTINED, reason=quarantine.reason)
        _announce(outcome)
        outcomes.append(outcome)
    outcomes += run_rows(
        (
            render_one_row(row, RowInfo.from_row(row), manifest=manifest, catalog=catalog, run_id=run_id, choice=choice,
                           defaults=defaults_params, limits=MediaLimits(), thresholds=thresholds)
            for row in rows
        ),
        concurrency,
    )

    index = update_index_task(catalog, outcomes)
    ledger = write_ledger_task(catalog, run_id, outcomes)
    summary = {
        **summarise(run_id, outcomes), "manifest": manifest, "catalog": catalog, "generator": choice.name, "generator_version": choice.version,
        "started_at": started_at, "finished_at": now_iso(), "ledger": ledger, "index": index,
    }
    summary["report"] = write_report_task(catalog, run_id, outcomes, summary)
    write_run_info(catalog, run_id, {**summary, "only_rows": only_rows, "rerun_of": rerun_of, "weights": weights,
                                     "defaults": defaults_params.as_dict(), "qa_thresholds": qa_thresholds or {}})
    publish_run_artifacts(summary, outcomes)
    logger.info("run %s finished: %s", run_id, summary["counts"])
    return summary
