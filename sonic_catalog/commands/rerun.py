"""`sonic-catalog rerun`: redo only the rows of a run that did not publish.

Default: the catalog's latest run. `--cluster` as for `render`. Inputs are read again, so a replaced file is picked up;
rows already in the catalog are not touched. Rows that failed QA render again even when nothing changed (a nightly
keeps them); `--new-seed` re-rolls their seed. Exit codes as for `render`.
"""

from __future__ import annotations

import argparse

from sonic_catalog.commands.render import (
    add_plan_options,
    add_run_options,
    check_wait_for_lock,
    cluster_for,
    local_catalog,
    quiet_prefect,
    quiet_prefect_env,
    run_catalog_flow,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "rerun", help="re-render the rows of a run (default: the latest) that did not publish"
    )
    parser.add_argument("--catalog", required=True, help="catalog location the run wrote to")
    parser.add_argument("--run", dest="run_id", help="run id under <catalog>/_runs/ (default: the latest run)")
    parser.add_argument("--manifest", help="manifest to read the rows from (default: the run's own manifest)")
    add_run_options(parser)
    add_plan_options(parser)
    parser.add_argument(
        "--new-seed",
        action="store_true",
        help="render each redone row with a fresh random seed (recorded in its sidecar and content key, and "
        "remembered by the catalog for later runs): re-roll a render that failed QA",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    quiet_prefect_env()
    from sonic_catalog.temporary_api import start_temporary_api

    temporary_api = start_temporary_api()  # as for `render`: starts beside this process's imports
    cluster = cluster_for(args)
    catalog = local_catalog(args.catalog)
    manifest = local_catalog(args.manifest) if args.manifest else None
    check_wait_for_lock(args)
    from tasks.catalog_lease import hold_catalog

    with hold_catalog(catalog, wait_s=args.wait_for_lock, command="sonic-catalog rerun") as lease:
        quiet_prefect()
        from tasks.ledger import latest_run_id, redo_for_run

        run_id = args.run_id or latest_run_id(catalog)
        redo = redo_for_run(catalog, run_id, manifest)  # a missing run fails here, before Prefect starts
        if not redo:
            from tasks.catalog_index import update_index

            # Nothing to render, but the index still ends equal to what is published on disk
            # (a killed run may have published rows its index update never listed).
            index = update_index(catalog, [])
            videos = index["videos"]
            print(f"run {run_id}: every row is already in the catalog; nothing to redo (index: {videos} videos)")
            temporary_api.stop()
            return 0
        from flows.rerun_failed import rerun_failed

        temporary_api.use()
        return run_catalog_flow(
            lambda: rerun_failed(
                catalog=catalog,
                run_id=run_id,
                manifest=manifest,
                concurrency=args.concurrency,
                cluster=cluster,
                force=args.force,
                recheck=args.recheck,
                new_seed=args.new_seed,
            ),
            len(redo),
            f"rerun of {run_id}",
            lease,
        )
