"""The main job: a Parquet manifest in, a published and checked catalog out.

    read manifest -> validate table -> plan (what changed?) -> per row that needs work: probe
    media -> render -> QA and publish (or file the QA failure) -> catalog index -> ledger -> report

Every row ends with exactly one verdict (published, skipped_cached, quarantined, failed_qa,
error); a bad row never stops the others. Rows move through their stages independently, up to
`concurrency` rows at a time, so one row's QA overlaps another's render. This module only wires:
a row's stages are `flows/row_stages.py`, the loop that drives the rows `flows/row_driver.py`,
the run's run.json, summary, artifacts and listeners `flows/run_record.py`, and the work (and
any media logic) lives in `tasks/`.

Where the tasks run is the task runner's business (`flows/task_runners.py`): a thread pool in
this process by default, or a Dask cluster (`--cluster tcp://HOST:8786`, or `SONIC_DASK_ADDRESS`
through the CLI and the deployments' entrypoint `flows/deployed.py`). On a cluster the render
task asks for half a `GPU` resource: each GPU worker has two renders in flight per GPU, one
generating while the other gets ready (see tasks/render.py, generation slots), while its spare
threads (and CPU-only workers) take probes, QA and publishing; a killed worker's task is re-run
by the Dask scheduler on a survivor. Renders then leave their video in shared scratch under the
catalog (`_runs/<run_id>/scratch/`, removed at the end of the run), because QA and publish may
run on another machine.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from flows.event_backlog import EventBacklog
from flows.row_driver import run_rows
from flows.row_stages import burn_published_row, render_one_row, update_captions_row
from flows.run_record import RunInfo, announce_finished, announcer, publish_run_artifacts
from flows.task_run_logs import drop_completed_task_run_lines
from flows.task_runners import local_task_runner, on_cluster
from manifests.schema import read_manifest
from sonic_model.generators import RenderParams, generator_takes_seed
from tasks.catalog import now_iso
from tasks.catalog_lease import hold_catalog
from tasks.catalog_state import update_catalog_state_task
from tasks.ledger import ProgressLedger, new_run_id, write_ledger_task
from tasks.limits import MediaLimits
from tasks.plan import PlanSettings, captions_update_of, plan_run_task
from tasks.records import QUARANTINED, UPDATE_CAPTIONS, RowInfo, RowOutcome
from tasks.render import DEFAULT_RENDER_RETRIES, DEFAULT_RETRY_DELAY_S, choose_generator, render_task_options
from tasks.report import write_report_task
from tasks.scratch import remove_tree
from tasks.siblings import siblings_by_row
from tasks.signing import describe_signing, resolve_signing
from tasks.table import validate_table_task

# A render attempt running longer than this fails the row (`--row-timeout`); generous: a
# 10-minute script with Sonic on a slow GPU takes well under this.
DEFAULT_ROW_TIMEOUT_S = 1800.0


def _row_infos(table) -> dict[str, RowInfo]:
    """Catalog keys of every row id in the manifest (for rows refused before they were parsed)."""
    infos: dict[str, RowInfo] = {}
    for record in table.to_dict("records"):
        info = RowInfo.from_row(record)
        infos.setdefault(info.row_id, info)
    return infos


# The thread pool is only the default: whoever starts a run picks where its tasks go with
# `render_catalog.with_options(task_runner=task_runner_for(...))` (the CLI, `rerun`,
# flows/deployed.py for the deployments).
@flow(name="render-catalog", task_runner=local_task_runner(), log_prints=True)
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
    force: bool = False,
    recheck: bool = False,
    signing: dict | None = None,
    wait_for_lock_s: float = 0.0,
    retry_failed: bool = False,
    new_seed: bool = False,
) -> dict:
    """Render every row of `manifest` into `catalog`; returns the run summary.

    Before any row's own work, the plan (`tasks/plan.py`) settles every row whose published
    video is unchanged (`skipped_cached`) or whose quarantine still holds (inputs, limits and
    parameters unchanged), from storage metadata and without a task per row; the other rows go
    the full way. A row whose last render failed QA is kept `failed_qa` the same way while its
    inputs, parameters (seed included), generator version, QA thresholds and QA code are
    unchanged. `force`: every row goes the full way. `recheck`: remembered quarantines are
    probed again and remembered QA failures rendered again; `retry_failed` (what `rerun` sets):
    only the latter. `new_seed`: every row that renders gets a fresh seed (`rerun --new-seed`).

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
    `wait_for_lock_s`: how long to wait for another run's lease on the catalog (default: stop at once).
    """
    from sonic_model.qa import QAThresholds

    # One writer per catalog (tasks/catalog_lease.py); the CLI already holds it (reentrant), a
    # deployment's flow run takes it here.
    with hold_catalog(catalog, wait_s=wait_for_lock_s, command=f"render-catalog {manifest}"):
        logger = get_run_logger()
        drop_completed_task_run_lines()  # Prefect's "Finished in state Completed()", once per task run
        run_id = new_run_id()
        started_at = now_iso()
        defaults_params = RenderParams(**(defaults or {})).validated()
        thresholds = QAThresholds().with_overrides(qa_thresholds or {})
        choice = choose_generator(generator, weights)
        cluster = on_cluster()
        if concurrency is None:
            concurrency = 0 if cluster else 2
        render_options = render_task_options(render_retries, retry_delay_s)
        if row_timeout_s is not None:
            render_options = {**render_options, "timeout_seconds": float(row_timeout_s)}
        media_limits = MediaLimits.from_dict(limits)
        # Shared scratch for rendered videos on a cluster (QA/publish may run elsewhere).
        scratch_url = f"{catalog.rstrip('/')}/_runs/{run_id}/scratch" if cluster else None
        signing = resolve_signing(signing, catalog)  # once, before any row: every row signs alike
        credentials = describe_signing(signing, required=not cluster)
        run = RunInfo(
            run_id=run_id,
            manifest=manifest,
            catalog=catalog,
            generator=choice.name,
            generator_version=choice.version,
            weights=weights,
            defaults=defaults_params.as_dict(),
            qa_thresholds=qa_thresholds or {},
            only_rows=only_rows,
            rerun_of=rerun_of,
            started_at=started_at,
            flow_run_id=str(flow_run.get_id() or ""),
            on_cluster=cluster,
            render_retries=render_options["retries"],
            retry_delay_s=render_options["retry_delay_seconds"],
            limits=media_limits.as_dict(),
            row_timeout_s=row_timeout_s,
            force=force,
            recheck=recheck,
            new_seed=new_seed,
            signing=signing,
        )
        # Recorded before any slow step (table check, plan): a run killed or failing from here on is
        # found by `rerun` (run.json without finished_at: every row not in the catalog is redone).
        run.write({"stage": "started"})

        table = read_manifest(manifest)
        rows, refused = validate_table_task(table, manifest_url=manifest, catalog_url=catalog)
        siblings = siblings_by_row(rows)  # before the run narrows the rows: an item's other rows
        wanted = None if only_rows is None else set(only_rows)
        rows = [row for row in rows if wanted is None or row.row_id in wanted]
        refused = [q for q in refused if wanted is None or q.row_id in wanted]
        infos = _row_infos(table)
        logger.info("run %s: %d rows to render, %d refused by table validation", run_id, len(rows), len(refused))

        # Settle what needs no work (unchanged rows, quarantines that still hold) in one step.
        # Whole-run collections go to tasks `quote`d: Prefect would otherwise visit every element of
        # a parameter and record each row's upstream task run in the task's dependencies, which at
        # 20,000 rows makes the task's state event too large to send ("EventTooLarge", 2.8 MB).
        plan = plan_run_task(
            quote(rows),
            manifest,
            catalog,
            PlanSettings(
                generator=choice.name,
                generator_version=choice.version,
                defaults=defaults_params,
                limits=media_limits.as_dict(),
                max_file_bytes=media_limits.max_file_bytes,
                force=force,
                recheck=recheck,
                qa_thresholds=thresholds.as_dict(),
                retry_failed=retry_failed,
                new_seed=new_seed,
                seeded=generator_takes_seed(choice.name),
            ),
        )

        run.write({"stage": "planned", "plan": plan.counts()})
        # Rewrites the run's ledger as verdicts come in, so a killed run leaves one `rerun` can use.
        announce = announcer(ProgressLedger(catalog, run_id))
        outcomes = []
        for quarantine in refused:
            info = infos.get(quarantine.row_id, RowInfo(row_id=quarantine.row_id))
            outcome = RowOutcome(info=info, status=QUARANTINED, reasons=quarantine.reasons)
            announce(outcome)
            outcomes.append(outcome)
        for outcome in plan.settled():
            announce(outcome)
        row_stages = dict(
            manifest=manifest,
            catalog=catalog,
            run_id=run_id,
            choice=choice,
            defaults=defaults_params,
            limits=media_limits,
            thresholds=thresholds,
            render_options=render_options,
            scratch_url=scratch_url,
            on_cluster=cluster,
            look_up=False,
            signing=signing,
        )

        def pipeline(planned):
            if planned.decision == UPDATE_CAPTIONS:  # only its captions changed: no probe, no render
                return update_captions_row(
                    captions_update_of(planned, siblings.get(planned.row.row_id, ())),
                    catalog=catalog,
                    run_id=run_id,
                    signing=signing,
                    min_script_match=thresholds.min_script_match,
                    on_cluster=cluster,
                )
            if planned.burn_only:  # only burning switched on: burned from the published renditions
                content, frames = planned.burn_only
                return burn_published_row(
                    planned.row,
                    planned.info,
                    content_key=content,
                    frames_key=frames,
                    catalog=catalog,
                    run_id=run_id,
                    defaults=defaults_params,
                    plan=planned.why,
                    signing=signing,
                    on_cluster=cluster,
                )
            row_siblings = siblings.get(planned.row.row_id, ())
            return render_one_row(planned.row, planned.info, plan=planned.why, siblings=row_siblings, **row_stages)

        try:
            worked = iter(
                run_rows(
                    (pipeline(planned) for planned in plan.rows if planned.outcome is None),
                    concurrency,
                    announce,
                    hold_back=EventBacklog(),  # the flow's memory must not grow with Prefect's unsent events
                )
            )
        finally:
            if scratch_url:
                remove_tree(scratch_url)  # leftovers of attempts on workers that died
        # In manifest order: each planned row's verdict, settled by the plan or reached by its stages.
        outcomes += [planned.outcome if planned.outcome is not None else next(worked) for planned in plan.rows]

        index = update_catalog_state_task(catalog, quote(outcomes), quote(plan), run_id)
        ledger = write_ledger_task(catalog, run_id, quote(outcomes))
        summary = run.finished(outcomes, ledger=ledger, index=index)
        summary["credentials"] = credentials
        summary["plan"] = {**plan.counts(), "hashed_inputs": plan.hashed_inputs, "seconds": plan.timings.get("total_s")}
        summary["report"] = write_report_task(catalog, run_id, quote(outcomes), summary)
        run.write({"stage": "finished", **summary})
        announce_finished(summary)  # the verdict is on record: a lost API from here on cannot change it
        publish_run_artifacts(summary, outcomes)
        logger.info("run %s finished: %s", run_id, summary["counts"])
        return summary
