"""One row's way through the stages, as the row driver (`flows/row_driver.py`) runs it:

    probe media -> already published? -> render -> QA and publish (or file the QA failure)

or, for a published row the plan found changed only in its captions, one `update-captions-` task
(re-aligned and re-muxed into its frames), and for one whose only change is that its captions are
now to be burned in, one `burn-published-` task (burned into its published renditions).

Up to four tasks a row, each named `<stage>-<row_id>` in Prefect's UI: `probe-`,
`find-published-` (left out when the run's plan has already decided the row needs rendering),
`render-`, `check-publish-`. Rows the plan settles (unchanged, or a kept quarantine) never get
here. Every row ends with exactly one verdict: a quarantine, the published entry it already
has (`skipped_cached`), its QA/publish outcome, or an error.

On a cluster the render task asks for a share of a `GPU` resource and runs before waiting
CPU stages (Dask priority), and writes its video to shared scratch; the other tasks need no GPU.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import replace
from typing import Any

from prefect.utilities.annotations import opaque, quote

from flows.row_driver import RowPipeline
from manifests.schema import ManifestRow
from sonic_model.errors import RenderFailed, SonicCatalogError
from sonic_model.generators import RenderParams
from tasks.burn_published import burn_published_task
from tasks.captions_update import CaptionsUpdate, update_captions_task
from tasks.limits import MediaLimits
from tasks.lookup import find_published_task
from tasks.probe import probe_row_task
from tasks.qa import check_and_publish_task
from tasks.records import ERROR, QUARANTINED, Quarantine, RowInfo, RowOutcome
from tasks.render import GPU_RESOURCE, RENDERS_PER_GPU, render_task_options, render_video_task
from tasks.scratch import discard_scratch

# Dask runs higher priorities first among a worker's ready tasks: when a render ends, the next
# render queued on that worker takes the freed thread before any waiting probe or publish, so
# the GPU does not sit idle behind CPU stages.
RENDER_PRIORITY = 10


def _gpu_annotation(on_cluster: bool):
    """Dask annotations for a render: 1/RENDERS_PER_GPU of a `GPU` (two renders in flight per
    GPU, generating one at a time: `tasks.render.generation_slot`), render priority. Nothing
    in a local run."""
    if not on_cluster:
        return contextlib.nullcontext()
    import dask

    return dask.annotate(resources={GPU_RESOURCE: 1 / RENDERS_PER_GPU}, priority=RENDER_PRIORITY)


# Each stage's task, named `<stage>-<row_id>` from its own parameters when it runs. Built once,
# not with `with_options` per row: a new Task per submission cost about 1 ms of the flow's CPU
# each (signature inspection), four times a row. A callable, not a template string: a row id
# holding "{" must not be formatted.
PROBE = probe_row_task.with_options(task_run_name=lambda parameters: f"probe-{parameters['row'].row_id}")
FIND_PUBLISHED = find_published_task.with_options(
    task_run_name=lambda parameters: f"find-published-{parameters['probed'].row_id}"
)
CHECK_PUBLISH = check_and_publish_task.with_options(
    task_run_name=lambda parameters: f"check-publish-{parameters['rendered'].info.row_id}"
)
UPDATE_CAPTIONS = update_captions_task.with_options(
    task_run_name=lambda parameters: f"update-captions-{parameters['update'].info.row_id}"
)


@functools.lru_cache(maxsize=8)
def _render_task(options: tuple):
    """The render task with a run's retry policy and timeout (`options`: its items), built once per policy."""
    return render_video_task.with_options(
        task_run_name=lambda parameters: f"render-{parameters['probed'].row_id}", **dict(options)
    )


def _unquoted(value: Any) -> Any:
    return value


def _render_failed(exc: Exception, render_options: dict) -> RenderFailed:
    """What a render that raised through every retry (or ran past the row timeout) tells the user."""
    attempts = render_options["retries"] + 1
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if isinstance(exc, TimeoutError):  # Prefect's task timeout: a hung or runaway render (--row-timeout)
        return RenderFailed(
            f"render ran past the per-row timeout of {render_options.get('timeout_seconds', 0):g} s "
            f"(--row-timeout) in {tries} and was abandoned"
        )
    return RenderFailed(
        f"render failed after {tries} "
        f"(retry policy: {render_options['retries']} retries, {render_options['retry_delay_seconds']:g} s apart); "
        f"last error: {type(exc).__name__}: {exc}"
    )


def _error_outcome(info: RowInfo, exc: Exception, plan: str = "") -> RowOutcome:
    """The `error` verdict of a row whose stage raised: our own errors say what was wrong in their
    message; anything else is named by its type as well."""
    reason = str(exc) if isinstance(exc, SonicCatalogError) else f"{type(exc).__name__}: {exc}"
    return RowOutcome(info=info, status=ERROR, reasons=(reason or type(exc).__name__,), plan=plan)


BURN_PUBLISHED = burn_published_task.with_options(
    task_run_name=lambda parameters: f"burn-published-{parameters['info'].row_id}"
)


def burn_published_row(
    row: ManifestRow,
    info: RowInfo,
    *,
    content_key: str,
    frames_key: str,
    catalog: str,
    run_id: str,
    defaults: RenderParams,
    plan: str = "",
    signing: dict | None = None,
    on_cluster: bool = False,
) -> RowPipeline:
    """A published row whose only change is that its captions are now to be burned in: one task
    burns them into its published renditions (tasks/burn_published.py); no probe, no render."""
    constant = _unquoted if on_cluster else quote
    try:
        params = row.render_params(defaults).as_dict()
        return (
            yield BURN_PUBLISHED.submit(
                constant(info), catalog, run_id, (content_key, frames_key), constant(params), constant(signing), plan
            )
        )
    except Exception as exc:  # noqa: BLE001 - every row ends with a verdict, whatever went wrong
        return _error_outcome(info, exc, plan)


def update_captions_row(
    update: CaptionsUpdate,
    *,
    catalog: str,
    run_id: str,
    signing: dict | None = None,
    min_script_match: float | None = None,
    on_cluster: bool = False,
) -> RowPipeline:
    """A row the plan found changed only in its captions: one task, `update-captions-<row_id>`
    (`tasks/captions_update.py`), no probe and no render. Ends with a verdict whatever happens."""
    constant = _unquoted if on_cluster else quote
    try:
        outcome = yield UPDATE_CAPTIONS.submit(constant(update), catalog, run_id, constant(signing), min_script_match)
    except Exception as exc:  # noqa: BLE001 - every row ends with a verdict, whatever went wrong
        return _error_outcome(update.info, exc, update.why)
    return outcome


def render_one_row(row: ManifestRow, info: RowInfo, *, plan: str = "", **stages: Any) -> RowPipeline:
    """`_stages` of one row, its verdict marked with why the plan sent it here (`plan`, if given)."""
    outcome = yield from _stages(row, info, **stages)
    return replace(outcome, plan=plan) if plan else outcome


def _stages(
    row: ManifestRow,
    info: RowInfo,
    *,
    manifest: str,
    catalog: str,
    run_id: str,
    choice: Any,
    defaults: RenderParams,
    limits: MediaLimits,
    thresholds: Any,
    render_options: dict | None = None,
    scratch_url: str | None = None,
    on_cluster: bool = False,
    look_up: bool = True,
    signing: dict | None = None,
    siblings: tuple = (),
) -> RowPipeline:
    """The stages of one row; yields each task's future and gets its result back.

    `choice`: the run's generator (`tasks.render.choose_generator`). `render_options`: the render
    task's retry policy (`render_task_options`, plus `timeout_seconds`). On a cluster the render
    task needs a GPU slot and writes to `scratch_url`. `look_up=False` leaves out the
    find-published step: the run's plan (tasks/plan.py) has already found that this row's
    content is not in the catalog, or was told to render it anyway (`--force`). `signing`: the
    run's resolved signing configuration (`tasks.signing`), used when publishing. `siblings`: the
    other rows of its item (`tasks.siblings`), whose scripts its captions QA measures its audio against.
    """
    render_options = render_options or render_task_options()
    rendered = None
    # Prefect walks every field of every parameter, for every task run, looking for upstream
    # futures and results (on the thread-pool runner about a fifth of the flow process's CPU).
    # So the run's constants (and the manifest row, which no task produced) go to the tasks
    # `quote`d: not walked at all. The upstream results (`probed`, `rendered`) go `opaque`:
    # Prefect still records them as the task run's inputs (the object itself is looked up), but
    # does not walk their fields.
    # Not on a Dask cluster: Dask rebuilds a tuple subclass it passes to a task as
    # `type(t)(items)`, and both annotations are tuples whose constructor takes the value, so
    # `quote(row)` reached the worker as `quote((row,))` and the probe got a 1-tuple for its row
    # (tests/test_distributed.py). Nothing is lost: prefect-dask walks into annotated values
    # anyway (`DaskTaskRunner._optimize_futures`), so they would save the flow process nothing.
    constant = _unquoted if on_cluster else quote
    upstream = _unquoted if on_cluster else opaque
    try:
        probed = yield PROBE.submit(constant(row), manifest, constant(limits), defaults=constant(defaults))
        if isinstance(probed, Quarantine):
            return RowOutcome(info=info, status=QUARANTINED, reasons=probed.reasons, transient=probed.transient)

        if look_up:
            published = yield FIND_PUBLISHED.submit(upstream(probed), catalog, constant(choice))
            if published is not None:
                return published  # already published with the same content key: skipped_cached

        render = _render_task(tuple(sorted(render_options.items())))
        with _gpu_annotation(on_cluster):
            submitted = render.submit(upstream(probed), constant(choice), scratch_url=scratch_url)
        try:
            rendered = yield submitted
        except SonicCatalogError:
            raise  # a bad input: not retried, its own message is the reason
        except Exception as exc:  # noqa: BLE001 - retries ran out, or the row timed out
            raise _render_failed(exc, render_options) from exc
        submitted = CHECK_PUBLISH.submit(
            upstream(rendered), constant(thresholds), catalog, run_id, constant(signing), constant(siblings)
        )
        rendered = None  # from here on the check-and-publish task owns (and removes) the scratch files
        return (yield submitted)
    except Exception as exc:  # noqa: BLE001 - every row ends with a verdict, whatever went wrong
        if rendered is not None:
            discard_scratch(rendered)
        return _error_outcome(info, exc)
