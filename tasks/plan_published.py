"""How the plan compares a published row with what the manifest now gives: whether its inputs'
remembered hashes still describe them (`known_sha`), and, once the hashes are known, whether the
row is unchanged (skip), changed only in its captions (update its captions: its frames key, the
content key without the captions sources, is the published one) or needs a render (`settle`);
and whether a row whose keys differ only in `burn_captions` can be burned from its published
renditions (`burn_switched`).

Pure functions over the plan's records (`tasks/plan.py` decides; this module compares).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from sonic_model.renditions import RENDITIONS
from tasks.catalog import Catalog, rendition_key
from tasks.catalog_index import SeenInputs
from tasks.catalog_state import PublishedEntry
from tasks.plan_keys import KeyMaker
from tasks.records import SKIP, SKIPPED_CACHED, UPDATE_CAPTIONS, RowInfo, RowOutcome

if TYPE_CHECKING:
    from tasks.plan import RowPlan


def known_sha(entry: PublishedEntry, seen: SeenInputs, name: str) -> bool:
    """Whether the remembered hash of one input still describes it (same URI, same trusted fingerprint)."""
    fingerprint = getattr(seen, f"{name}_fingerprint")
    return (
        bool(getattr(entry, f"{name}_sha256"))
        and fingerprint is not None
        and getattr(entry, f"{name}_uri") == getattr(seen, f"{name}_uri")
        and getattr(entry, f"{name}_fingerprint") == fingerprint
    )


def inputs_of(seen: SeenInputs) -> tuple[str, ...]:
    """The inputs whose bytes make a row's content key: portrait, audio, and its captions file if any."""
    return ("portrait", "audio", "captions") if seen.captions_uri else ("portrait", "audio")


def what_changed(entry: PublishedEntry, seen: SeenInputs) -> str:
    parts = []
    for name in inputs_of(seen):
        if known_sha(entry, seen, name):
            continue
        if getattr(entry, f"{name}_uri") != getattr(seen, f"{name}_uri") and getattr(entry, f"{name}_uri"):
            parts.append(f"{name} now read from another URI")
        elif getattr(seen, f"{name}_fingerprint") is None:
            parts.append(f"{name} fingerprint not trusted")
        elif getattr(entry, f"{name}_fingerprint") is None:
            parts.append(f"{name} had no fingerprint yet")
        else:
            parts.append(f"{name} touched, same bytes")
    return ", ".join(parts) or "fingerprints refreshed"


def other_than_inputs_changed(entry: PublishedEntry, key_of: KeyMaker, captions_file: bool) -> str:
    """Why a published row renders again whatever its inputs' bytes are ('' when that depends on them).

    With a frames key: the generator, its version or the parameters changed when the frames key
    of the remembered input hashes differs. An entry published before frames keys were kept is
    compared whole (its script changing renders it again, once)."""
    if entry.frames_key:
        if key_of.frames(entry.portrait_sha256, entry.audio_sha256) != entry.frames_key:
            return f"generator or parameters changed since run {entry.run_id}"
        return ""
    remembered_file = entry.captions_sha256 if captions_file else None
    if key_of(entry.portrait_sha256, entry.audio_sha256, remembered_file) != entry.content_key:
        return f"generator, parameters or script changed since run {entry.run_id}"
    return ""


def burn_switched(plan: RowPlan, entry: PublishedEntry, key_of: KeyMaker) -> RowPlan | None:
    """A published row whose keys differ from the published ones only in `burn_captions` (None:
    something else changed). Switched on, its inputs and captions unchanged: its published
    renditions are burned (`tasks.burn_published`, `burn_only`), no frames generated. Switched on
    while its script or captions file changed too: rendered again, like a captions change of a
    burned row (`settle`): the new words must be burned into pictures without the old ones, which
    only a render has; a captions update followed by a burn would encode the renditions a second
    time for the same result. Switched off: rendered again (the published pictures have them)."""
    portrait, audio = entry.portrait_sha256, entry.audio_sha256
    captions_file = entry.captions_sha256 if plan.seen.captions_uri else None
    flipped = key_of.flipped_burn()
    if entry.frames_key:
        if flipped.frames(portrait, audio) != entry.frames_key:
            return None
    elif flipped(portrait, audio, captions_file) != entry.content_key:
        return None
    since = f"since run {entry.run_id}"
    if not key_of.burns:
        why = f"burned captions switched off {since}: rendered again (the published renditions have them burned in)"
        return dataclasses.replace(plan, why=why)
    if flipped(portrait, audio, captions_file) != entry.content_key:
        # The frames key of the published inputs, burning aside, is the published one: its captions changed.
        what = captions_change(
            entry, key_of.script_sha256, dataclasses.replace(plan.seen, captions_sha256=captions_file)
        )
        why = f"captions to be burned in and {what} {since}: rendered again (new words into unburned pictures)"
        return dataclasses.replace(plan, why=why)
    if not (entry.captions and all(known_sha(entry, plan.seen, name) for name in inputs_of(plan.seen))):
        return dataclasses.replace(plan, why=f"captions to be burned in {since} (inputs to be checked: rendered again)")
    why = f"captions to be burned in {since}: its renditions are made again from the published ones, no new frames"
    keys = (key_of(portrait, audio, captions_file), key_of.frames(portrait, audio))
    return dataclasses.replace(plan, why=why, burn_only=keys)


def settle(
    plan: RowPlan,
    entry: PublishedEntry,
    key_of: KeyMaker,
    shas: dict,
    catalog: Catalog,
    rehashed: str,
) -> RowPlan:
    """A published row's decision once its inputs' hashes are known: skip it (same content key),
    update its captions (same frames key, other captions sources), or render it again."""
    seen = dataclasses.replace(
        plan.seen,
        portrait_sha256=shas["portrait"],
        audio_sha256=shas["audio"],
        captions_sha256=shas.get("captions"),
    )
    whole = key_of(shas["portrait"], shas["audio"], shas.get("captions"))
    if whole == entry.content_key:
        reason = f"unchanged since run {entry.run_id}" + (f" (content re-hashed: {rehashed})" if rehashed else "")
        return dataclasses.replace(
            plan, decision=SKIP, why=reason, seen=seen, outcome=skipped(catalog, plan.info, entry, reason, key_of)
        )
    frames = key_of.frames(shas["portrait"], shas["audio"])
    if entry.frames_key != frames:
        changed = [name for name in ("portrait", "audio") if shas[name] != getattr(entry, f"{name}_sha256")]
        if changed and entry.portrait_sha256:
            why = f"{' and '.join(changed)} changed since run {entry.run_id}"
        elif entry.frames_key is None and entry.portrait_sha256:
            # Same inputs, same frames (checked whole before hashing): its captions file changed.
            why = f"captions changed since run {entry.run_id}, published before frames keys were kept: rendering again"
        else:
            why = f"content changed since run {entry.run_id}"
        return dataclasses.replace(plan, why=why)
    what = captions_change(entry, key_of.script_sha256, seen)
    if key_of.script_sha256 is None and not seen.captions_uri:
        return dataclasses.replace(plan, why=f"captions removed since run {entry.run_id}: rendering again")
    if key_of.burns:
        # Captions burned into its renditions (the frames key has burn_captions): their pictures
        # have the old words, and the pictures without them are not kept, so a re-mux cannot
        # update them; rendering again is the one way that gives every file the new captions.
        why = f"{what} since run {entry.run_id}; its renditions have the captions burned in: rendering again"
        return dataclasses.replace(plan, why=why)
    why = f"{what} since run {entry.run_id}; its frames kept"
    return dataclasses.replace(plan, decision=UPDATE_CAPTIONS, why=why, seen=seen, captions_update=(whole, frames))


def captions_change(entry: PublishedEntry, script: str | None, seen: SeenInputs) -> str:
    """What changed in a row's captions sources since it was published, in words."""
    parts = []
    if script != entry.script_sha256:
        if entry.script_sha256 is None:
            parts.append("script added")
        elif script is None:
            parts.append("script removed")
        else:
            parts.append("script changed")
    if (seen.captions_uri, seen.captions_sha256) != (entry.captions_uri, entry.captions_sha256):
        if not seen.captions_uri:
            parts.append("captions file removed")
        elif not entry.captions_uri:
            parts.append("captions file added")
        else:
            parts.append("captions file changed")
    return " and ".join(parts) or "captions changed"


def skipped(catalog: Catalog, info: RowInfo, entry: PublishedEntry, reason: str, key_of: KeyMaker) -> RowOutcome:
    # A rendition's size is fixed by its name (RENDITIONS): listed as a rendered row lists it.
    renditions = tuple(
        {
            "name": name,
            "uri": catalog.uri(catalog.path(f"{rendition_key(entry.key, name)}.mp4")),
            "width": RENDITIONS[name].width,
            "height": RENDITIONS[name].height,
            "passed": True,
        }
        for name in key_of.renditions
    )
    return RowOutcome(
        renditions=renditions,
        info=info,
        status=SKIPPED_CACHED,
        reasons=(reason,),
        plan=reason,
        output_uri=catalog.uri(catalog.path(entry.video)),
        poster_uri=catalog.uri(catalog.path(entry.poster)) if entry.poster else None,
        sidecar_uri=catalog.uri(catalog.path(entry.sidecar)),
        content_key=entry.content_key,
    )
