"""`sonic-catalog render`: a manifest in, a published and checked catalog out (the main job).

Runs the `render-catalog` flow in this process: on the local ephemeral Prefect API by default
(nothing to start), or on the server named by `PREFECT_API_URL`. The tasks run on a thread pool
here, or with `--cluster tcp://HOST:8786` (or `SONIC_DASK_ADDRESS`) on the workers of a Dask
cluster (`sonic-catalog worker`), which then need the same `PREFECT_API_URL`. Exit codes: 0 every row is in
the catalog (published or already there), 2 some rows were not published (see the report),
1 the run itself failed (unusable manifest, unwritable catalog, ...).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import Counter

from sonic_catalog.commands.render_one import add_generation_options, params_from_args
from sonic_model.errors import ParameterError, SonicCatalogError
from tasks.limits import add_limit_options
from tasks.signing import add_signing_options

EXIT_ALL_PUBLISHED = 0
EXIT_RUN_FAILED = 1
EXIT_SOME_NOT_PUBLISHED = 2


def quiet_prefect_env() -> None:
    """The environment that keeps Prefect quiet, for this process and the temporary API server it
    starts (a subprocess that inherits it): set before either starts. Set
    PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL yourself to see Prefect's logs."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_DEBUG_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def quiet_prefect() -> None:
    """Keep Prefect's console chatter (and its ephemeral server's shutdown noise) off the terminal.

    Flow and task logs still go to the Prefect API (the UI shows them); the terminal shows our
    progress bar and summary. Sets `quiet_prefect_env`, and quietens handlers already set up if
    Prefect was imported.
    """
    quiet_prefect_env()
    if os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] != "CRITICAL":
        return
    import prefect  # noqa: F401 - sets up Prefect's logging, which we then quieten
    from prefect.logging.handlers import APILogHandler

    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, APILogHandler):
                handler.setLevel(logging.CRITICAL + 1)


def parse_thresholds(items: list[str] | None) -> dict:
    overrides = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--qa-threshold takes KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    if overrides:
        from sonic_model.qa import QAThresholds

        QAThresholds().with_overrides(overrides)  # unknown keys / bad values fail here, before the run
    return overrides


def add_plan_options(parser: argparse.ArgumentParser) -> None:
    """`--force` and `--recheck`: overrule what the run's plan would settle without work (render, rerun)."""
    parser.add_argument(
        "--force", action="store_true", help="render every row again, even those whose published video is unchanged"
    )
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="probe rows again whose quarantine would be kept, and render rows again whose QA failure would be kept, "
        "because nothing about them changed",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="rows in flight at once (default: 2 locally; every row on a cluster, where GPU slots limit renders)",
    )
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        default=None,
        help="Dask scheduler to run the tasks on, e.g. tcp://host:8786 (default: $SONIC_DASK_ADDRESS; "
        "unset: everything runs in this process)",
    )
    parser.add_argument(
        "--wait-for-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="when another run holds the catalog, wait up to this long for it (default 0: exit 1 at once, "
        "naming the holder); for schedulers that may start runs back to back",
    )


def check_wait_for_lock(args: argparse.Namespace) -> None:
    if args.wait_for_lock < 0:
        raise ParameterError("--wait-for-lock must not be negative")


def cluster_for(args: argparse.Namespace) -> str | None:
    """The Dask scheduler address to use (option, else environment), checked; None = local."""
    if args.concurrency is not None and args.concurrency < 1:
        raise ParameterError("--concurrency must be at least 1")
    from flows.task_runners import DASK_ADDRESS_ENV, cluster_address

    address = cluster_address(args.cluster)
    if address is None:
        return None
    if not os.environ.get("PREFECT_API_URL"):
        raise ParameterError(
            f"--cluster / {DASK_ADDRESS_ENV} needs PREFECT_API_URL set to the Prefect server the workers also use "
            "(without one, this process and every worker would each start a private temporary API)"
        )
    return address


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "render", help="render a Parquet manifest into a catalog (validate, render, QA, publish)"
    )
    parser.add_argument("manifest", help="manifest Parquet file (path or fsspec URL)")
    parser.add_argument(
        "--catalog", required=True, help="catalog location (path or fsspec URL: s3://, gs://, memory://)"
    )
    add_generation_options(parser)
    add_run_options(parser)
    add_plan_options(parser)
    add_limit_options(parser)
    parser.add_argument(
        "--row-timeout",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="a row whose render runs longer fails with this reason; the batch goes on (default %(default)g)",
    )
    parser.add_argument(
        "--qa-threshold", action="append", metavar="KEY=VALUE", help="change a QA threshold for this run (repeatable)"
    )
    parser.add_argument(
        "--render-retries",
        type=int,
        default=None,
        metavar="N",
        help="retries of a render that raises for a reason other than its inputs, e.g. a lost GPU (default 2)",
    )
    parser.add_argument(
        "--retry-delay", type=float, default=None, metavar="SECONDS", help="seconds between render attempts (default 5)"
    )
    add_signing_options(parser)
    return parser


class RowProgress:
    """A progress bar of rows: done / quarantined / failed (on a terminal; silent otherwise)."""

    def __init__(self, total: int | None, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.counts: Counter = Counter()
        console = Console(stderr=True)
        self.progress = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=not console.is_terminal,
        )
        self.task = self.progress.add_task(label, total=total, detail="")

    def __enter__(self) -> RowProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def __call__(self, outcome) -> None:
        group = "done" if outcome.in_catalog else ("quarantined" if outcome.status == "quarantined" else "failed")
        self.counts[group] += 1
        detail = f"done {self.counts['done']}  quarantined {self.counts['quarantined']}  failed {self.counts['failed']}"
        self.progress.update(self.task, advance=1, detail=detail)


def run_flow(flow_call, total: int | None, label: str) -> dict:
    """Run a flow in this process with the progress bar attached; user errors stay one line."""
    from flows.run_record import outcome_listener

    progress = RowProgress(total, label)
    with outcome_listener(progress), progress:
        return flow_call()


def run_catalog_flow(flow_call, total: int | None, label: str, lease=None) -> int:
    """Run a catalog flow and print its summary: the exit code its rows earned.

    Once the flow has recorded its verdict (run.json "finished"), losing the Prefect API no
    longer changes it: one warning line and the rows' exit code, within seconds
    (`sonic_catalog.lost_api`)."""
    from prefect.settings import PREFECT_API_URL

    from flows.run_record import finished_listener
    from sonic_catalog.lost_api import FinishedRunWatch

    watch = FinishedRunWatch(
        PREFECT_API_URL.value(), print_summary, release=lease.release if lease is not None else lambda: None
    )
    try:
        with finished_listener(watch.finished):
            summary = run_flow(flow_call, total, label)
    except SonicCatalogError:
        raise
    except Exception as exc:  # noqa: BLE001 - the run failed: say why in one line, not a traceback
        code = watch.settle_after_error()
        if code is not None:
            return code
        print(f"error: the run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED
    watch.returned()
    return print_summary(summary)


def print_summary(summary: dict) -> int:
    counts = summary.get("counts", {})
    shown = ", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "no rows"
    print(f"run {summary.get('run_id')}: {summary.get('rows', 0)} rows: {shown}")
    if summary.get("catalog"):
        print(f"catalog: {summary['catalog']}")
    if summary.get("report"):
        print(f"report:  {summary['report']}")
    if summary.get("ledger"):
        print(f"ledger:  {summary['ledger']}")
    print_credentials(summary.get("credentials"))
    return EXIT_ALL_PUBLISHED if summary.get("all_in_catalog") else EXIT_SOME_NOT_PUBLISHED


def print_credentials(credentials: dict | None) -> None:
    """One line on how the published videos are signed (and, once, that a development
    certificate is not trusted by verifiers)."""
    if not credentials:
        return
    if credentials.get("mode") == "off":
        print("content credentials: off (--no-credentials): published videos are not signed")
    elif credentials.get("mode") == "development":
        print(f"content credentials: signed with the catalog's development certificate {credentials.get('bundle')}")
        print(f"                     {credentials.get('note')}")
    elif credentials.get("signer"):
        print(f"content credentials: signed by {credentials.get('signer')}")
    else:
        print(f"content credentials: signed with {credentials.get('cert')}: {credentials.get('note')}")


def local_catalog(url: str) -> str:
    """Plain paths become absolute, so the run records where it wrote whatever the cwd."""
    from fsspec.core import split_protocol

    return os.path.abspath(url) if split_protocol(url)[0] is None else url


def signing_for_run(args: argparse.Namespace, cluster: str | None) -> dict:
    """The run's signing choice. Configured material is read now when this machine publishes
    (no cluster), so a bad key fails before Prefect starts; on a cluster the workers read it."""
    from tasks.signing import CONFIGURED, material_for, signing_from_args

    signing = signing_from_args(args)
    if signing["mode"] == CONFIGURED:
        signing = {**signing, "cert": local_catalog(signing["cert"]), "key": local_catalog(signing["key"])}
        if cluster is None:
            material_for(signing)
    return signing


def run(args: argparse.Namespace) -> int:
    quiet_prefect_env()
    from sonic_catalog.temporary_api import start_temporary_api

    # Prefect's temporary API (when no server is configured) starts now, on the other core,
    # while this process imports its modules and reads the manifest; stopped at exit.
    temporary_api = start_temporary_api()
    cluster = cluster_for(args)
    from tasks.render import DEFAULT_RENDER_RETRIES, DEFAULT_RETRY_DELAY_S

    retries = DEFAULT_RENDER_RETRIES if args.render_retries is None else args.render_retries
    delay = DEFAULT_RETRY_DELAY_S if args.retry_delay is None else args.retry_delay
    if retries < 0 or delay < 0:
        raise ParameterError("--render-retries and --retry-delay must not be negative")
    defaults = params_from_args(args)
    from tasks.limits import limits_from_args

    limits = limits_from_args(args)  # a non-positive limit fails here, before the run
    if not args.row_timeout > 0:
        raise ParameterError("--row-timeout must be a positive number of seconds")
    thresholds = parse_thresholds(args.qa_threshold)
    manifest = local_catalog(args.manifest)
    catalog = local_catalog(args.catalog)
    check_wait_for_lock(args)
    signing = signing_for_run(args, cluster)  # bad signing options fail here, before the catalog is touched
    from tasks.catalog_lease import hold_catalog

    # One writer per catalog: taken before Prefect starts, so a second run stops at once.
    with hold_catalog(catalog, wait_s=args.wait_for_lock, command=f"sonic-catalog render {manifest}") as lease:
        quiet_prefect()
        from manifests.schema import read_manifest

        total = len(read_manifest(manifest))  # an unusable manifest fails here, in a second, before the flow starts
        from flows.render_catalog import render_catalog
        from flows.task_runners import task_runner_for

        flow = render_catalog.with_options(task_runner=task_runner_for(cluster, args.concurrency or 2))
        temporary_api.use()
        return run_catalog_flow(
            lambda: flow(
                manifest=manifest,
                catalog=catalog,
                generator=args.generator,
                weights=str(args.weights) if args.weights else None,
                concurrency=args.concurrency,
                defaults=defaults.as_dict(),
                qa_thresholds=thresholds,
                limits=limits.as_dict(),
                row_timeout_s=args.row_timeout,
                render_retries=retries,
                retry_delay_s=delay,
                force=args.force,
                recheck=args.recheck,
                signing=signing,
            ),
            total,
            "rows",
            lease,
        )
