"""Plan before work: decide for every row, without opening its media, what a run must do with it.

One job: the decision. Storage fingerprints are in `tasks/fingerprints.py` and
the catalog's memory in `tasks/catalog_state.py`, what a remembered verdict depends on in
`tasks/verdict_conditions.py`; what is left here is `plan_rows` and the
small helpers each of its outcomes needs (content keys, what changed, the skipped verdict).

A nightly renders the same (growing) manifest again and again, and on most nights almost
nothing in it changed. Probing a row costs about half a second of CPU (image decode, face
detection, audio decode, voice activity), and every row's tasks cost Prefect database rows, so
a run first decides, in bulk, which rows need any work at all:

- `skip`: the row is published (its video and sidecar exist), its inputs are the ones it was
  made from, and the run's generator, version and the row's effective parameters give the
  same content key as the published entry. Its verdict is `skipped_cached` straight away.
- `keep_quarantine`: the row was quarantined by an earlier probe and nothing that verdict
  depended on changed (inputs, media limits, generator, parameters, the probe's own code); the
  verdict and its reason are kept without probing again (unless `recheck`).
- `keep_failed`: the row's last render failed QA and nothing that verdict depended on changed
  (the quarantine's conditions, plus the QA thresholds and the QA code); the `failed_qa` verdict
  is kept without rendering again (unless `recheck`, or `retry_failed`, which `rerun` sets).
- `update_captions`: published, same frames key, other script or captions file (and no burned
  renditions): captions re-made into the published frames (`tasks.plan_published.settle`).
- `work`: everything else goes the full way (probe, render, QA, publish), as before; a `work` row
  whose only change is `burn_captions` switched on has `burn_only` (`burn_switched`): burned.

`new_seed` (`rerun --new-seed`) gives every row that would render or keep its failure a fresh
random seed (the manifest's `seed` cell, in effect); once a render used it, the catalog remembers
it (`_state/seeds.parquet`) and later plans apply it for as long as the row's own seed stays the
one it replaced. A generator that takes no seed (`generator_takes_seed`) renders again unchanged.

Whether inputs changed is decided from storage metadata, never assumed (`tasks.fingerprints`);
what earlier runs left is read from the catalog's state (`tasks.catalog_state`).

`force` makes every row `work` (the user knows better: a generator fix with the same version,
a suspicion). `recheck` ignores the remembered quarantines (probe them again).

The functions here are pure (no Prefect); `plan_run_task` at the bottom is the thin task.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from prefect import get_run_logger, task
from prefect.cache_policies import NONE as NO_CACHE

from sonic_model.generators import SEED_RANGE, RenderParams
from tasks.captions_update import CaptionsUpdate
from tasks.catalog import Catalog, rendition_key
from tasks.catalog_index import SeenInputs, index_entry, index_records
from tasks.catalog_state import PublishedEntry, RememberedQuarantine, RerolledSeed, read_quarantines, read_seeds
from tasks.fingerprints import IO_THREADS, SETTLE_S, Fingerprint, fingerprint_inputs, hash_inputs
from tasks.plan_keys import KeyMaker
from tasks.plan_published import burn_switched, inputs_of, known_sha, other_than_inputs_changed, settle, what_changed
from tasks.records import (
    DECISIONS,
    FAILED_QA,
    KEEP_FAILED,
    KEEP_QUARANTINE,
    QUARANTINED,
    SKIP,
    UPDATE_CAPTIONS,
    WORK,
    RowInfo,
    RowOutcome,
    script_sha256,
)
from tasks.storage import DEFAULT_ALLOWED_SCHEMES, _local_path, check_uri_allowed, default_roots, is_local, uri_scheme
from tasks.verdict_conditions import failure_conditions, quarantine_conditions, with_captions

# --- the plan ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanSettings:
    """What a run's verdicts depend on besides the rows' inputs."""

    generator: str
    generator_version: str
    defaults: RenderParams = field(default_factory=RenderParams)
    limits: Mapping = field(default_factory=dict)  # MediaLimits.as_dict()
    max_file_bytes: int = 256 * 1024 * 1024
    force: bool = False
    recheck: bool = False
    allowed_schemes: tuple[str, ...] = DEFAULT_ALLOWED_SCHEMES
    allowed_roots: tuple[str, ...] | None = None  # default: the manifest's folder tree
    qa_thresholds: Mapping = field(default_factory=dict)  # QAThresholds.as_dict() of the run
    retry_failed: bool = False  # render rows that failed QA again even if nothing changed (`rerun`)
    new_seed: bool = False  # `rerun --new-seed`: a fresh seed for every row that renders
    seeded: bool = True  # whether the run's generator takes a seed (`generator_takes_seed`)


@dataclass(frozen=True)
class RowPlan:
    """The plan's decision for one row, and why. `outcome` is the row's verdict when the plan
    settled it (`skip`, `keep_quarantine`); `work` rows go the full way."""

    row: object  # ManifestRow
    info: RowInfo
    key: str  # the row's catalog key (`RowInfo.key_prefix`)
    decision: str
    why: str
    seen: SeenInputs
    conditions: str = ""
    outcome: RowOutcome | None = None
    # What a QA verdict of the row depends on (`failure_conditions`): remembered with a failure.
    qa_conditions: str = ""
    # (seed replaced, seed chosen) when this run's plan gave the row a fresh seed (`new_seed`).
    new_seed: tuple[int, int] | None = None
    # `update_captions` rows: (the content key the update publishes, the frames key it keeps).
    captions_update: tuple[str, str] | None = None
    # A `work` row whose only change is that its captions are now to be burned in: its renditions
    # are made again from the published ones (tasks/burn_published.py), no frames generated; the
    # (content key, frames key) it is published under.
    burn_only: tuple[str, str] | None = None

    @property
    def burn_only_key(self) -> str | None:
        return self.burn_only[0] if self.burn_only else None


@dataclass
class RunPlan:
    """Every row's decision, in manifest order, and what the plan measured."""

    rows: list[RowPlan]
    timings: dict = field(default_factory=dict)
    hashed_inputs: int = 0
    sidecars_read: int = 0
    # Keys whose remembered seed no longer applies (the row's own seed changed): forgotten.
    seeds_dropped: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(DECISIONS, 0)
        for row in self.rows:
            counts[row.decision] += 1
        return counts

    def work(self) -> list[RowPlan]:
        return [row for row in self.rows if row.decision == WORK]

    def captions_updates(self) -> list[RowPlan]:
        return [row for row in self.rows if row.decision == UPDATE_CAPTIONS]

    def settled(self) -> list[RowOutcome]:
        """The verdicts the plan reached by itself (skipped and kept-quarantine rows)."""
        return [row.outcome for row in self.rows if row.outcome is not None]

    def seen_inputs(self) -> dict[str, SeenInputs]:
        """Catalog key -> the inputs the plan saw, for `tasks.catalog_index.update_index`."""
        return {row.key: row.seen for row in self.rows}

    def by_key(self) -> dict[str, RowPlan]:
        return {row.key: row for row in self.rows}

    def seeds_chosen(self) -> list[RowPlan]:
        return [row for row in self.rows if row.new_seed is not None]


def resolve_inputs(rows, manifest_url: str, settings: PlanSettings) -> dict[int, tuple[str, str, str | None] | str]:
    """Row position -> (portrait URI, audio URI, captions_uri or None), resolved and normalised to
    exactly the string the probe uses (`check_uri_allowed(resolve_uri(...))`), or why not (that
    row goes the full way, and the probe refuses it with the real reason).

    The rows come from `validate_table`, which has already checked every URI against the
    allow-list and the allowed roots (symlinks resolved); here local paths take a fast path
    (join + normpath, a few microseconds instead of a full check, which matters at 100,000
    rows) with the lexical roots check kept as a guard. Other URIs get the full check.
    """
    from manifests.schema import resolve_uri

    roots = list(settings.allowed_roots) if settings.allowed_roots is not None else default_roots(manifest_url)
    local_manifest = is_local(manifest_url)
    base = os.path.dirname(resolve_uri(manifest_url, "x")) if local_manifest else ""
    local_roots = [os.path.normpath(os.path.abspath(_local_path(root))) for root in roots if is_local(root)]
    realpath_cache: dict[str, str] = {}
    resolved: dict[str, str | Exception] = {}

    def one(written: str):
        if written in resolved:
            return resolved[written]
        text = str(written).strip()
        try:
            if local_manifest and uri_scheme(text) == "" and "::" not in text:
                path = os.path.normpath(text if os.path.isabs(text) else os.path.join(base, text))
                if not any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in local_roots):
                    raise ValueError(f"path {path} is outside the allowed roots")
                resolved[written] = path
            else:
                resolved[written] = check_uri_allowed(
                    resolve_uri(manifest_url, text), settings.allowed_schemes, roots, realpath_cache=realpath_cache
                )
        except Exception as exc:  # noqa: BLE001 - the probe gives the real reason
            resolved[written] = exc
        return resolved[written]

    out: dict[int, tuple[str, str, str | None] | str] = {}
    for position, row in enumerate(rows):
        portrait, audio = one(row.portrait_uri), one(row.audio_uri)
        written = getattr(row, "captions_uri", None)
        captions = one(written) if written else None
        problems = [
            f"{name}: {value}"
            for name, value in (("portrait_uri", portrait), ("audio_uri", audio), ("captions_uri", captions))
            if isinstance(value, Exception)
        ]
        out[position] = "; ".join(problems) if problems else (portrait, audio, captions)
    return out


def plan_rows(
    rows,
    manifest_url: str,
    catalog_url: str,
    settings: PlanSettings,
    *,
    settle_s: float = SETTLE_S,
    threads: int = IO_THREADS,
) -> RunPlan:
    """Decide for every validated row whether it needs work (see the module docstring).

    Cost: one read of the index and of the quarantine memory, one listing of the catalog's
    published area, one listing per input folder (or info() per input in sparse folders), a
    sidecar read per row published but missing from the index, and the bytes of the inputs
    whose fingerprint changed or cannot be trusted (each distinct URI once). No media decode.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    catalog = Catalog(catalog_url)
    infos = [RowInfo.from_row(row) for row in rows]
    keys = [info.key_prefix for info in infos]
    uris = resolve_inputs(rows, manifest_url, settings)
    timings["resolve_s"] = _lap(started)

    mark = time.perf_counter()
    wanted = [uri for pair in uris.values() if isinstance(pair, tuple) for uri in pair if uri is not None]
    fingerprints = fingerprint_inputs(wanted, settle_s=settle_s, threads=threads)
    timings["fingerprint_s"] = _lap(mark)

    mark = time.perf_counter()
    entries = {key: PublishedEntry.from_record(record) for key, record in index_records(catalog_url).items()}
    quarantines = read_quarantines(catalog)
    seeds = read_seeds(catalog)
    present = catalog.published_objects()
    # Published but not in the index (a run killed before its index update): its sidecar says.
    unindexed = [key for key in keys if key not in entries and f"{key}.json" in present and f"{key}.mp4" in present]
    sidecars_read = 0
    if unindexed:

        def from_sidecar(key: str):
            sidecar = catalog.read_json(catalog.path(key + ".json"))
            if not sidecar or not sidecar.get("video"):
                return None
            return PublishedEntry.from_record(index_entry(catalog, catalog.path(key + ".json"), sidecar))

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for key, entry in zip(unindexed, pool.map(from_sidecar, unindexed), strict=False):
                if entry is not None:
                    entries[key] = entry
        sidecars_read = len(unindexed)
    timings["catalog_s"] = _lap(mark)

    mark = time.perf_counter()
    params_cache: dict[tuple, tuple] = {}
    plans: list[RowPlan | None] = []
    seeds_dropped: list[str] = []
    to_hash: list[tuple[int, RowPlan, PublishedEntry, KeyMaker]] = []
    for position, (row, info, key) in enumerate(zip(rows, infos, keys, strict=False)):
        pair = uris[position]
        if isinstance(pair, str):
            plans.append(RowPlan(row, info, key, WORK, f"inputs need the probe: {pair}", SeenInputs()))
            continue
        portrait, audio = (fingerprints.get(uri, Fingerprint(None, "not listed")) for uri in pair[:2])
        captions = fingerprints.get(pair[2], Fingerprint(None, "not listed")) if pair[2] else Fingerprint(None)
        seen = SeenInputs(
            pair[0], portrait.value, pair[1], audio.value, captions_uri=pair[2], captions_fingerprint=captions.value
        )
        if key in seeds:
            row, applies = _with_rerolled_seed(row, seeds[key], settings)
            if not applies:
                seeds_dropped.append(key)
        key_of, conditions, qa_conditions = _row_conditions(row, settings, params_cache, seen)
        if isinstance(key_of, Exception):
            plans.append(RowPlan(row, info, key, WORK, "parameters need the probe's check", seen))
            continue
        if settings.force:
            plans.append(RowPlan(row, info, key, WORK, "--force", seen, conditions, qa_conditions=qa_conditions))
            continue
        remembered = quarantines.get(key)
        if (
            remembered is not None
            and remembered.status == FAILED_QA
            and not (settings.recheck or settings.retry_failed)
            and _same_memory(remembered, seen, qa_conditions)
        ):
            why = f"failed QA in run {remembered.run_id}, nothing changed since"
            outcome = RowOutcome(
                info=info,
                status=FAILED_QA,
                reasons=(
                    f"failed QA kept: {remembered.reason} (unchanged since run {remembered.run_id}; "
                    "--recheck to render again)",
                ),
                output_uri=remembered.output_uri,
                plan=why,
            )
            plans.append(RowPlan(row, info, key, KEEP_FAILED, why, seen, conditions, outcome, qa_conditions))
            continue
        if (
            remembered is not None
            and remembered.status == QUARANTINED
            and not settings.recheck
            and _same_memory(remembered, seen, conditions)
        ):
            why = f"quarantined by run {remembered.run_id}, nothing changed since"
            outcome = RowOutcome(
                info=info,
                status=QUARANTINED,
                reasons=(
                    f"quarantine kept: {remembered.reason} (inputs, limits and parameters unchanged since run "
                    f"{remembered.run_id}; --recheck to probe again)",
                ),
                plan=why,
            )
            plans.append(RowPlan(row, info, key, KEEP_QUARANTINE, why, seen, conditions, outcome, qa_conditions))
            continue
        entry = entries.get(key)
        if entry is None:
            why = "new row" if remembered is None else _why_remembered_changed(remembered, settings)
            plans.append(RowPlan(row, info, key, WORK, why, seen, conditions, qa_conditions=qa_conditions))
            continue
        if entry.video not in present or entry.sidecar not in present:
            missing = "video" if entry.video not in present else "sidecar"
            why = f"published {missing} is missing from the catalog: rendering again"
            plans.append(RowPlan(row, info, key, WORK, why, seen, conditions, qa_conditions=qa_conditions))
            continue
        gone = [name for name in key_of.renditions if f"{rendition_key(key, name)}.mp4" not in present]
        if gone:
            why = f"published {gone[0]} rendition is missing from the catalog: rendering again"
            plans.append(RowPlan(row, info, key, WORK, why, seen, conditions, qa_conditions=qa_conditions))
            continue
        undecided = RowPlan(row, info, key, WORK, "", seen, conditions, qa_conditions=qa_conditions)
        if entry.portrait_sha256 and entry.audio_sha256:
            changed = other_than_inputs_changed(entry, key_of, pair[2] is not None)
            if changed:
                # burn_captions switched: burned from the published renditions, or why not.
                plans.append(burn_switched(undecided, entry, key_of) or dataclasses.replace(undecided, why=changed))
                continue
            known = {name: known_sha(entry, seen, name) for name in inputs_of(seen)}
            if all(known.values()):
                shas = {name: getattr(entry, f"{name}_sha256") for name in known}
                plans.append(settle(undecided, entry, key_of, shas, catalog, ""))
                continue
        plans.append(None)  # decided below, from the inputs' bytes
        to_hash.append((position, undecided, entry, key_of))
    timings["decide_s"] = _lap(mark)

    mark = time.perf_counter()
    hashed: dict[str, str | None] = {}
    if to_hash:
        needed = [
            getattr(plan.seen, f"{name}_uri")
            for _, plan, entry, _ in to_hash
            for name in inputs_of(plan.seen)
            if not known_sha(entry, plan.seen, name)
        ]
        hashed = hash_inputs(needed, settings.max_file_bytes, threads=threads)
    for position, plan, entry, key_of in to_hash:
        shas = {
            name: getattr(entry, f"{name}_sha256")
            if known_sha(entry, plan.seen, name)
            else hashed.get(getattr(plan.seen, f"{name}_uri"))
            for name in inputs_of(plan.seen)
        }
        if any(sha is None for sha in shas.values()):
            plans[position] = dataclasses.replace(plan, why="inputs could not be read in full: the probe will say why")
        else:
            plans[position] = settle(plan, entry, key_of, shas, catalog, what_changed(entry, plan.seen))
    timings["hash_s"] = _lap(mark)
    if settings.new_seed:
        # A row re-rolled again still replaces its own seed (the manifest's or the defaults').
        own_seeds = {key: seeds[key].replaces for key in seeds if key not in seeds_dropped}
        plans = [_with_new_seed(plan, settings, params_cache, own_seeds.get(plan.key)) for plan in plans]
    timings["total_s"] = _lap(started)
    return RunPlan(
        rows=plans,
        timings=timings,
        hashed_inputs=len(hashed),
        sidecars_read=sidecars_read,
        seeds_dropped=seeds_dropped,
    )


def _lap(since: float) -> float:
    return round(time.perf_counter() - since, 4)


_KeyMaker = KeyMaker  # the name the tests knew it by


def _row_conditions(
    row, settings: PlanSettings, cache: dict, seen: SeenInputs
) -> tuple[KeyMaker | Exception, str, str]:
    """`_params`, with the row's captions sources folded into its remembered verdicts' conditions
    (`tasks.verdict_conditions.with_captions`): a fixed script or captions file is checked again."""
    key_of, conditions, qa_conditions = _params(row, settings, cache)
    if isinstance(key_of, Exception):
        return key_of, conditions, qa_conditions
    return (
        key_of,
        *with_captions(conditions, qa_conditions, key_of.script_sha256, seen.captions_uri, seen.captions_fingerprint),
    )


def _params(row, settings: PlanSettings, cache: dict) -> tuple[KeyMaker | Exception, str, str]:
    """The content-key maker for the row's effective parameters (and script), its quarantine
    conditions and its QA failure conditions; the parameters' part computed once per distinct set
    of overrides (most rows have none), the script's (a hash each, ~20 us) per row: in a catalog
    every row has a script of its own."""
    from manifests.schema import OVERRIDE_COLUMNS, PRESET_COLUMN

    script = script_sha256(getattr(row, "script_text", None))
    # Whether the row has captions decides whether burn_captions is in its keys (`key_params`).
    has_captions = bool(getattr(row, "captions_uri", None)) or script is not None
    overrides = (*(getattr(row, name, None) for name in (*OVERRIDE_COLUMNS, PRESET_COLUMN)), has_captions)
    if overrides not in cache:
        try:
            params = dataclasses.asdict(row.render_params(settings.defaults))
            conditions = quarantine_conditions(params, settings)
            key_of = KeyMaker(settings, params, has_captions=has_captions)
            cache[overrides] = (key_of, conditions, failure_conditions(conditions, settings))
        except Exception as exc:  # noqa: BLE001 - the probe reports a bad parameter
            cache[overrides] = (exc, "", "")
    key_of, conditions, qa_conditions = cache[overrides]
    if script is None or isinstance(key_of, Exception):
        return key_of, conditions, qa_conditions
    return key_of.with_script(script), conditions, qa_conditions


def _effective_seed(row, settings: PlanSettings) -> int | None:
    try:
        return int(row.render_params(settings.defaults).seed)
    except Exception:  # noqa: BLE001 - a bad parameter: the probe says so
        return None


def _with_rerolled_seed(row, rerolled: RerolledSeed, settings: PlanSettings) -> tuple[object, bool]:
    """The row with the seed `rerun --new-seed` chose for it, while its own seed is still the one
    that seed replaced; (row unchanged, False) once the manifest or the defaults give another."""
    if _effective_seed(row, settings) != rerolled.replaces:
        return row, False
    return dataclasses.replace(row, seed=rerolled.seed), True


def _with_new_seed(plan: RowPlan, settings: PlanSettings, cache: dict, own_seed: int | None) -> RowPlan:
    """`new_seed`: a row that would render (or keep its QA failure) renders with a fresh seed.
    Skipped rows (in the catalog, unchanged) and kept quarantines are left as they are.
    `own_seed`: the seed the row's cells and the defaults give, when a re-rolled one replaced it."""
    if plan.decision not in (WORK, KEEP_FAILED):
        return plan
    why = plan.why if plan.decision == WORK else f"failed QA kept by the plan ({plan.why})"
    if not settings.seeded:
        why = f"{why}; --new-seed: the {settings.generator} generator takes no seed, so it renders again as it was"
        return dataclasses.replace(plan, decision=WORK, why=why, outcome=None, burn_only=None)
    old = _effective_seed(plan.row, settings)
    if old is None:
        return plan
    chooser = random.SystemRandom()
    seed = old
    while seed == old:
        seed = chooser.randint(*SEED_RANGE)
    row = dataclasses.replace(plan.row, seed=seed)
    _, conditions, qa_conditions = _row_conditions(row, settings, cache, plan.seen)
    return dataclasses.replace(
        plan,
        row=row,
        decision=WORK,
        why=f"{why}; --new-seed: seed {seed} (was {old})",
        outcome=None,
        conditions=conditions,
        qa_conditions=qa_conditions,
        new_seed=(old if own_seed is None else own_seed, seed),
        burn_only=None,  # new frames: rendered, not burned from the published renditions
    )


def _why_remembered_changed(remembered: RememberedQuarantine, settings: PlanSettings) -> str:
    """Why a row with a remembered verdict that was not kept goes the full way."""
    if remembered.status == FAILED_QA:
        if settings.recheck:
            return "--recheck"
        if settings.retry_failed:
            return f"failed QA in run {remembered.run_id}: rendered again (rerun)"
        return f"failed QA in run {remembered.run_id}; something it depended on changed"
    if settings.recheck:
        return "--recheck"
    return f"quarantined by run {remembered.run_id}; something it depended on changed"


def _same_memory(remembered: RememberedQuarantine, seen: SeenInputs, conditions: str) -> bool:
    """Whether a remembered verdict still holds: same conditions, same URIs, same trusted fingerprints."""
    return (
        remembered.conditions == conditions
        and seen.portrait_fingerprint is not None
        and seen.audio_fingerprint is not None
        and (
            remembered.portrait_uri,
            remembered.portrait_fingerprint,
            remembered.audio_uri,
            remembered.audio_fingerprint,
        )
        == (seen.portrait_uri, seen.portrait_fingerprint, seen.audio_uri, seen.audio_fingerprint)
    )


def captions_update_of(planned: RowPlan, siblings: tuple = ()) -> CaptionsUpdate:
    """What the captions-only update of an `update_captions` row needs (`tasks.captions_update`);
    `siblings`: the other rows of its item (`tasks.siblings`)."""
    content, frames = planned.captions_update
    return CaptionsUpdate(planned.row, planned.info, planned.seen, content, frames, planned.why, siblings)


# --- the Prefect task ------------------------------------------------------------------------------


@task(name="plan-run", task_run_name="plan-run", cache_policy=NO_CACHE)
def plan_run_task(rows, manifest_url: str, catalog_url: str, settings: PlanSettings) -> RunPlan:
    """`plan_rows` as one task for the whole run (no task per row)."""
    plan = plan_rows(rows, manifest_url, catalog_url, settings)
    counts = plan.counts()
    get_run_logger().info(
        "plan: %d rows to work on, %d captions to update (frames kept), %d unchanged and skipped, %d quarantines "
        "and %d QA failures kept (%d inputs hashed, %.2f s)",
        counts[WORK],
        counts[UPDATE_CAPTIONS],
        counts[SKIP],
        counts[KEEP_QUARANTINE],
        counts[KEEP_FAILED],
        plan.hashed_inputs,
        plan.timings.get("total_s", 0.0),
    )
    return plan
