"""The main job: a Parquet manifest in, a published and checked catalog out.

    read manifest -> validate table -> per row: probe media (already published?) ->
    render -> QA and publish (or file the QA failure) -> catalog index -> ledger -> report

Every row ends with exactly one verdict (published, skipped_cached, quarantined, failed_qa,
error); a bad row never stops the others. Rows move through their stages independently, up to
`concurrency` rows at a time, so one row's QA overlaps another's render. The flow only wires
tasks: the work (and any media logic) lives in `tasks/`.

Where the tasks run is the task runner's business (`task_runner_for`): a thread pool in this
process by default, or a Dask cluster (`--cluster tcp://HOST:8786`, or `SONIC_DASK_ADDRESS` for
deployments). On a cluster the render task asks for half a `GPU` resource: each GPU worker has
two renders in flight per GPU, one generating while the other gets ready (see tasks/render.py,
generation slots), while its spare threads (and CPU-only workers) take probes, QA and
publishing; a killed worker's task is re-run by the Dask scheduler on a survivor. Renders then
leave their video in shared scratch under the catalog (`_runs/<run_id>/scratch/`, removed at
the end of the run), because QA and publish may run on another machine.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections import Counter
from collections.abc import Callable, Generator, Iterable
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner

from manifests.schema import read_manifest
from sonic_model.errors import SonicCatalogError
from sonic_model.render import RenderParams
from tasks.ledger import ProgressLedger, new_run_id, write_ledger_task, write_run_info
from tasks.publish import check_and_publish_task, now_iso, update_index_task
from tasks.records import ERROR, QUARANTINED, RowInfo, RowOutcome
from tasks.render import (
    DEFAULT_RENDER_RETRIES, DEFAULT_RETRY_DELAY_S, GPU_RESOURCE, RENDERS_PER_GPU, GeneratorChoice, RenderFailed,
    choose_generator, discard_scratch, remove_tree, render_task_options, render_video_task,
)
from tasks.report import write_report_task
from tasks.signing import describe_signing, resolve_signing
from tasks.validate import MediaLimits, Quarantine, probe_row_task, validate_table_task

# A render attempt running longer than this fails the row (`--row-timeout`); generous: a
# 10-minute script with Sonic on a slow GPU takes well under this.
DEFAULT_ROW_TIMEOUT_S = 1800.0

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


# --- where the tasks run -----------------------------------------------------------------------

DASK_ADDRESS_ENV = "SONIC_DASK_ADDRESS"
LOCAL_THREADS = 4


def cluster_address(cluster: str | None = None) -> str | None:
    """The Dask scheduler to use: the explicit address, else $SONIC_DASK_ADDRESS, else None (local)."""
    return (cluster or os.environ.get(DASK_ADDRESS_ENV) or "").strip() or None


def task_runner_for(cluster: str | None = None, threads: int = LOCAL_THREADS):
    """A `DaskTaskRunner` connected to `cluster`, or a thread pool in this process."""
    address = cluster_address(cluster)
    if address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=address)
    return ThreadPoolTaskRunner(max_workers=max(1, threads))


def _on_cluster() -> bool:
    context = FlowRunContext.get()
    runner = getattr(context, "task_runner", None)
    return type(runner).__name__ == "DaskTaskRunner"


# Dask runs higher priorities first among a worker's ready tasks: when a render ends, the next
# render queued on that worker takes the freed thread before any waiting probe or publish, so
# the GPU does not sit idle behind CPU stages.
RENDER_PRIORITY = 10


def _gpu_annotation(on_cluster: bool):
    """Dask annotations for a render: 1/RENDERS_PER_GPU of a `GPU` (two renders in flight per
    GPU, generating one at a time: `tasks.render.generation_slot`), render priority. Nothing
    in a local run."""
    if not on_cluster:
        import contextlib

        return contextlib.nullcontext()
    import dask

    return dask.annotate(resources={GPU_RESOURCE: 1 / RENDERS_PER_GPU}, priority=RENDER_PRIORITY)


def _announce(outcome: RowOutcome) -> None:
    for listener in list(_outcome_listeners):
        listener(outcome)


def _named(stage: str, row_id: str) -> Callable[[], str]:
    # A callable, not a template string: a row id holding "{" must not be formatted.
    return lambda: f"{stage}-{row_id}"


# --- one row's way through the stages -------------------------------------------------------


RowPipeline = Generator[PrefectFuture, Any, RowOutcome]


def render_one_row(row, info: RowInfo, *, manifest: str, catalog: str, run_id: str, choice: GeneratorChoice,
                   defaults: RenderParams, limits: MediaLimits, thresholds: Any, render_options: dict | None = None,
                   scratch_url: str | None = None, on_cluster: bool = False,
                   signing: dict | None = None) -> RowPipeline:
    """The stages of one row; yields each task's future and gets its result back.

    Three tasks a row: probe (with the catalog lookup), render, check-and-publish. Each Prefect
    task on a cluster costs CPU in the worker, the flow and the server, so stages that always
    run back to back on the same kind of machine share a task.
    `render_options`: the render task's retry policy (`render_task_options`). On a cluster the
    render task needs a GPU slot and writes to `scratch_url`; the other two need none.
    `signing`: the run's resolved signing configuration (`tasks.signing`), used when publishing.
    """
    render_options = render_options or render_task_options()
    rendered = None
    try:
        probed = yield probe_row_task.with_options(task_run_name=_named("probe", info.row_id)).submit(
            row, manifest, limits, defaults=defaults, catalog_url=catalog, choice=choice
        )
        if isinstance(probed, Quarantine):
            return RowOutcome(info=info, status=QUARANTINED, reason=probed.reason)
        if isinstance(probed, RowOutcome):
            return probed  # already published with the same content key

        render = render_video_task.with_options(task_run_name=_named("render", info.row_id), **render_options)
        with _gpu_annotation(on_cluster):
            submitted = render.submit(probed, choice, scratch_url=scratch_url)
        try:
            rendered = yield submitted
        except SonicCatalogError:
            raise  # a bad input: not retried, its own message is the reason
        except TimeoutError as exc:  # Prefect's task timeout: a hung or runaway render (--row-timeout)
            attempts = render_options["retries"] + 1
            raise RenderFailed(
                f"render ran past the per-row timeout of {render_options.get('timeout_seconds', 0):g} s "
                f"(--row-timeout) in {attempts} attempt{'s' if attempts != 1 else ''} and was abandoned"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - retries ran out: say so, with the last error
            attempts = render_options["retries"] + 1
            raise RenderFailed(
                f"render failed after {attempts} attempt{'s' if attempts != 1 else ''} "
                f"(retry policy: {render_options['retries']} retries, {render_options['retry_delay_seconds']:g} s apart); "
                f"last error: {type(exc).__name__}: {exc}"
            ) from exc
        publish = check_and_publish_task.with_options(task_run_name=_named("check-publish", info.row_id))
        submitted = publish.submit(rendered, thresholds, catalog, run_id, signing)
        rendered = None  # from here on the check-and-publish task owns (and removes) the scratch files
        return (yield submitted)
    except Exception as exc:  # noqa: BLE001 - every row ends with a verdict, whatever went wrong
        if rendered is not None:
            discard_scratch(rendered)
        reason = str(exc) if isinstance(exc, (SonicCatalogError, RenderFailed)) else f"{type(exc).__name__}: {exc}"
        return RowOutcome(info=info, status=ERROR, reason=reason or type(exc).__name__)


def run_rows(pipelines: Iterable[RowPipeline], concurrency: int | None) -> list[RowOutcome]:
    """Drive row pipelines, at most `concurrency` rows in flight (None or < 1: all at once);
    outcomes in input order.

    A finished task's result is sent into its row's pipeline, which answers with the next
    task's future or its final verdict; a failed task's exception is thrown into the pipeline.
    Rows already under way come first: every finished task is handed on before another row is
    started, so the first renders are submitted as soon as their probes finish, not after the
    flow has submitted every row's probe (about 25 ms of flow CPU each on a cluster).
    """
    pending = iter(enumerate(pipelines))
    if concurrency is None or concurrency < 1:
        concurrency = sys.maxsize
    outcomes: dict[int, RowOutcome] = {}
    in_flight: dict[PrefectFuture, tuple[int, RowPipeline]] = {}
    finished: queue.SimpleQueue[PrefectFuture] = queue.SimpleQueue()  # filled by the futures' callbacks

    def advance(position: int, pipeline: RowPipeline, value: Any = None, error: BaseException | None = None) -> bool:
        try:
            future = pipeline.throw(error) if error is not None else pipeline.send(value)
        except StopIteration as done:
            outcomes[position] = done.value
            _announce(done.value)
            return False
        in_flight[future] = (position, pipeline)
        future.add_done_callback(finished.put)
        return True

    def hand_on(future: PrefectFuture) -> None:
        position, pipeline = in_flight.pop(future)
        try:
            value = future.result()
        except Exception as exc:  # noqa: BLE001 - handed to the row, which records it
            advance(position, pipeline, error=exc)
        else:
            advance(position, pipeline, value)

    rows_left = True
    while True:
        try:  # everything finished so far first
            while True:
                hand_on(finished.get_nowait())
        except queue.Empty:
            pass
        if rows_left and len(in_flight) < concurrency:  # a row has one task in flight at a time
            next_row = next(pending, None)
            if next_row is None:
                rows_left = False
            else:
                advance(*next_row)
            continue
        if not in_flight:
            break
        hand_on(finished.get())
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


# The default task runner is chosen when this module is imported: a Dask cluster when
# $SONIC_DASK_ADDRESS is set (how deployments run on the render farm), else a thread pool. The
# CLI picks one explicitly with `render_catalog.with_options(task_runner=task_runner_for(...))`.
@flow(name="render-catalog", task_runner=task_runner_for(), log_prints=True)
def render_catalog(
    manifest: str,
    catalog: str,
    generator: str = "preview",
    weights: str | None = None,
    concurrency: int | None = None,
    defaults: dict | None = None,
    qa_thresholds: dict | None = None,
    only_rows: list[str] | None = None,
    rerun_of: str | None = None,
    render_retries: int = DEFAULT_RENDER_RETRIES,
    retry_delay_s: float = DEFAULT_RETRY_DELAY_S,
    limits: dict | None = None,
    row_timeout_s: float | None = DEFAULT_ROW_TIMEOUT_S,
    signing: dict | None = None,
) -> dict:
    """Render every row of `manifest` into `catalog`; returns the run summary.

    `only_rows` restricts rendering to those row ids (what `rerun` uses); the whole table is
    still validated, because a duplicate id is only visible in the whole table.
    `concurrency`: rows in flight (default 2 in one process, every row on a Dask cluster,
    where the GPU resource does the limiting). A render that raises (anything but a bad
    input) is retried `render_retries` times, `retry_delay_s` apart.
    `limits`: `MediaLimits` fields (pixels, audio seconds, file bytes). `row_timeout_s`: a render
    attempt running longer fails (Prefect task timeout, which interrupts the render loop between
    frames); None waits forever.
    `signing`: how published videos are signed with Content Credentials (`tasks.signing`: paths,
    never keys); None: $SONIC_SIGNING_CERT/$SONIC_SIGNING_KEY, else the catalog's development
    certificate (created once, under `_credentials/`).
    """
    from sonic_model.qa import QAThresholds

    logger = get_run_logger()
    run_id = new_run_id()
    started_at = now_iso()
    defaults_params = RenderParams(**(defaults or {})).validated()
    thresholds = QAThresholds().with_overrides(qa_thresholds or {})
    choice = choose_generator(generator, weights)
    on_cluster = _on_cluster()
    if concurrency is None:
        concurrency = 0 if on_cluster else 2
    render_options = render_task_options(render_retries, retry_delay_s)
    if row_timeout_s is not None:
        render_options = {**render_options, "timeout_seconds": float(row_timeout_s)}
    media_limits = MediaLimits.from_dict(limits)
    # Shared scratch for rendered videos on a cluster (QA/publish may run elsewhere).
    scratch_url = f"{catalog.rstrip('/')}/_runs/{run_id}/scratch" if on_cluster else None
    signing = resolve_signing(signing, catalog)  # once, before any row: every row signs alike
    credentials = describe_signing(signing, required=not on_cluster)
    write_run_info(catalog, run_id, {
        "manifest": manifest, "catalog": catalog, "generator": choice.name, "generator_version": choice.version,
        "weights": weights, "defaults": defaults_params.as_dict(), "qa_thresholds": qa_thresholds or {},
        "only_rows": only_rows, "rerun_of": rerun_of, "started_at": started_at, "flow_run_id": str(flow_run.get_id() or ""),
        "on_cluster": on_cluster, "render_retries": render_options["retries"], "retry_delay_s": render_options["retry_delay_seconds"],
        "limits": media_limits.as_dict(), "row_timeout_s": row_timeout_s, "signing": signing,
    })

    table = read_manifest(manifest)
    rows, refused = validate_table_task(table, manifest_url=manifest)
    wanted = None if only_rows is None else set(only_rows)
    rows = [row for row in rows if wanted is None or row.row_id in wanted]
    refused = [q for q in refused if wanted is None or q.row_id in wanted]
    infos = _row_infos(table)
    logger.info("run %s: %d rows to render, %d refused by table validation", run_id, len(rows), len(refused))

    # Rewrites the run's ledger as verdicts come in, so a killed run leaves one `rerun` can use.
    progress_ledger = ProgressLedger(catalog, run_id)
    add_outcome_listener(progress_ledger)
    outcomes = []
    for quarantine in refused:
        outcome = RowOutcome(info=infos.get(quarantine.row_id, RowInfo(row_id=quarantine.row_id)), status=QUARANTINED, reason=quarantine.reason)
        _announce(outcome)
        outcomes.append(outcome)
    try:
        outcomes += run_rows(
            (
                render_one_row(row, RowInfo.from_row(row), manifest=manifest, catalog=catalog, run_id=run_id, choice=choice,
                               defaults=defaults_params, limits=media_limits, thresholds=thresholds,
                               render_options=render_options, scratch_url=scratch_url, on_cluster=on_cluster,
                               signing=signing)
                for row in rows
            ),
            concurrency,
        )
    finally:
        remove_outcome_listener(progress_ledger)
        if scratch_url:
            remove_tree(scratch_url)  # leftovers of attempts on workers that died

    index = update_index_task(catalog, outcomes)
    ledger = write_ledger_task(catalog, run_id, outcomes)
    summary = {
        **summarise(run_id, outcomes), "manifest": manifest, "catalog": catalog, "generator": choice.name, "generator_version": choice.version,
        "started_at": started_at, "finished_at": now_iso(), "ledger": ledger, "index": index,
        "credentials": credentials,
    }
    summary["report"] = write_report_task(catalog, run_id, outcomes, summary)
    write_run_info(catalog, run_id, {**summary, "only_rows": only_rows, "rerun_of": rerun_of, "weights": weights,
                                     "defaults": defaults_params.as_dict(), "qa_thresholds": qa_thresholds or {},
                                     "on_cluster": on_cluster, "render_retries": render_options["retries"],
                                     "retry_delay_s": render_options["retry_delay_seconds"],
                                     "limits": media_limits.as_dict(), "row_timeout_s": row_timeout_s,
                                     "signing": signing})
    publish_run_artifacts(summary, outcomes)
    logger.info("run %s finished: %s", run_id, summary["counts"])
    return summary
