"""Re-run the rows of a past run that did not end in the catalog, and nothing else.

Reads the run's ledger (default: the latest run) and run.json, then renders just those row ids
with the same generator, defaults, QA thresholds and retry policy. Inputs are read afresh, so a
replaced file is picked up; rows already in the catalog are left alone. `cluster` (default:
$SONIC_DASK_ADDRESS) sends the work to a Dask cluster, as for `render-catalog`.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.render_catalog import DEFAULT_ROW_TIMEOUT_S, render_catalog
from flows.task_runners import task_runner_for
from tasks.catalog_index import update_index
from tasks.catalog_lease import hold_catalog
from tasks.ledger import latest_run_id, read_run_info, redo_for_run
from tasks.render import DEFAULT_RENDER_RETRIES, DEFAULT_RETRY_DELAY_S


@flow(name="rerun-failed")
def rerun_failed(
    catalog: str,
    run_id: str | None = None,
    manifest: str | None = None,
    concurrency: int | None = None,
    cluster: str | None = None,
    force: bool = False,
    recheck: bool = False,
    new_seed: bool = False,
) -> dict:
    """Redo the rows of `run_id` (default: the latest run) that were not published.

    As in any run, the plan keeps a quarantine whose inputs, limits and parameters did not
    change (`recheck` probes them again) and `force` renders every redone row regardless. Rows
    that failed QA are rendered again even when nothing changed; `new_seed` gives every row
    that renders a fresh seed (remembered by the catalog once a render used it)."""
    logger = get_run_logger()
    with hold_catalog(catalog, command="rerun-failed"):  # reentrant: the CLI and render_catalog take it too
        return _rerun(logger, catalog, run_id, manifest, concurrency, cluster, force, recheck, new_seed)


def _rerun(logger, catalog, run_id, manifest, concurrency, cluster, force, recheck, new_seed) -> dict:
    run_id = run_id or latest_run_id(catalog)
    previous = read_run_info(catalog, run_id)
    redo = redo_for_run(catalog, run_id, manifest)  # a killed run: its rows with no verdict too
    if not redo:
        logger.info("run %s has nothing to redo: every row is in the catalog", run_id)
        update_index(catalog, [])  # the index still ends equal to what is published on disk
        return {"run_id": None, "rerun_of": run_id, "rows": 0, "counts": {}, "all_in_catalog": True}
    logger.info("re-running %d rows of run %s", len(redo), run_id)
    return render_catalog.with_options(task_runner=task_runner_for(cluster, concurrency or 4))(
        manifest=manifest or previous["manifest"],
        catalog=catalog,
        generator=previous.get("generator", "preview"),
        weights=previous.get("weights"),
        concurrency=concurrency,
        defaults=previous.get("defaults"),
        qa_thresholds=previous.get("qa_thresholds"),
        only_rows=redo,
        rerun_of=run_id,
        render_retries=previous.get("render_retries", DEFAULT_RENDER_RETRIES),
        retry_delay_s=previous.get("retry_delay_s", DEFAULT_RETRY_DELAY_S),
        limits=previous.get("limits"),
        row_timeout_s=previous.get("row_timeout_s", DEFAULT_ROW_TIMEOUT_S),
        force=force,
        recheck=recheck,
        retry_failed=True,
        new_seed=new_seed,
        signing=previous.get("signing"),  # the same signer as the run it redoes
    )
