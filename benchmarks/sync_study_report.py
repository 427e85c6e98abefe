"""The sync study's printed report: every table for all renders, then by speech kind (espeak-ng, human).

Used by `benchmarks/sync_study.py`; `rows` are its cases (one dict per good or bad render, the
CSV's columns). The tables are Markdown, ready for docs/qa-sync.md.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

SPEECH_BINS = ((0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 5.0), (5.0, 10.0), (10.0, 30.0), (30.0, 1e9))
BAD_KINDS = ("shifted", "other_audio", "frozen")
SPEECH_KINDS = ("espeak", "human")


def _bin_label(low: float, high: float) -> str:
    return f"{low:g}-{high:g} s" if high < 1e8 else f">= {low:g} s"


def _caught(part: list[dict]) -> str:
    if not part:
        return "-"
    caught = sum(r["failed"] for r in part)
    return f"{caught}/{len(part)}" + ("" if caught == len(part) else f" ({100 * caught / len(part):.0f}%)")


def _percent(n: int, d: int) -> str:
    return f"{n}/{d} = {100 * n / max(1, d):.1f}%"


def report(rows: list[dict], clips, presenters, seconds_taken: float) -> None:
    good = [r for r in rows if r["kind"] == "good"]
    print(
        f"{len(good)} good renders ({sum(c.seconds for c in clips):.0f} s of video), {len(rows) - len(good)} bad ones "
        f"derived from them; {len(Counter(c.presenter for c in clips))} presenters; "
        f"{len(Counter(c.language for c in clips if c.speech == 'espeak'))} espeak-ng languages; "
        + ", ".join(
            f"{kind}: {sum(c.speech == kind for c in clips)} renders, "
            f"{sum(c.seconds for c in clips if c.speech == kind):.0f} s"
            for kind in SPEECH_KINDS
        )
        + f"; {seconds_taken:.0f} s"
    )
    for label, speech in (("ALL SPEECH", None), ("ESPEAK-NG", "espeak"), ("HUMAN (LibriVox)", "human")):
        part = [r for r in rows if speech is None or r["speech"] == speech]
        if part:
            print(f"\n===== {label} =====")
            _report_part(part)
    _report_swaps(rows)
    _report_whole_clip(rows)
    _report_presenters(rows, presenters)


def _report_part(rows: list[dict]) -> None:
    good = [r for r in rows if r["kind"] == "good"]
    print("\n| speech | good: failed / unmeasured | shifted caught | other row's audio caught | frozen caught |")
    print("|---|---|---|---|---|")
    for low, high in SPEECH_BINS:
        in_bin = [r for r in rows if low <= r["speech_s"] < high]
        g = [r for r in in_bin if r["kind"] == "good"]
        if not in_bin:
            continue
        failed = sum(r["failed"] for r in g)
        unmeasured = sum(not r["confident"] and not r["failed"] for r in g)
        cells = [_caught([r for r in in_bin if r["kind"] == kind]) for kind in BAD_KINDS]
        print(f"| {_bin_label(low, high)} | {failed} / {unmeasured} of {len(g)} | " + " | ".join(cells) + " |")
    failed_all = sum(r["failed"] for r in good)
    failed_2s = sum(r["failed"] for r in good if r["speech_s"] >= 2.0)
    print(
        f"\nfalse failures: {_percent(failed_all, len(good))} overall (target <= 0.5%), "
        f"{failed_2s}/{sum(r['speech_s'] >= 2.0 for r in good)} with >= 2 s of speech (target 0)"
    )
    for r in good:
        if r["failed"]:
            print(f"  FAILED good #{r['index']} {r['presenter']} {_what(r)}: {r['reason']}")
    for kind in BAD_KINDS:
        part = [r for r in rows if r["kind"] == kind and r["speech_s"] >= 3.0]
        caught = sum(r["failed"] for r in part)
        print(f"{kind}: {_percent(caught, len(part))} caught with >= 3 s of speech (target >= 99%)")
    missed = [r for r in rows if r["kind"] != "good" and r["speech_s"] >= 3.0 and not r["failed"]]
    for r in missed[:12]:
        print(
            f"  missed {r['kind']} {r['swapped_in']} #{r['index']} {r['presenter']} {_what(r)} truth {r['truth']} "
            f"measured {r['offset']} ({r['offset_subframe']}) conf {r['confidence']} corr {r['correlation']} "
            f"whole {r['whole_clip']}: {r['reason'] or 'passed'}"
        )
    shifts = Counter(r["shift_frames"] for r in good)
    print(
        "calibration on good renders (frames it would shift): "
        + ", ".join(f"{k:+d}: {v}" for k, v in sorted(shifts.items()))
        + "  (target: none by more than 1 frame)"
    )
    injected = [r for r in rows if r["kind"] == "shifted" and r["confident"]]
    errors = Counter(r["offset"] - r["truth"] for r in injected)
    within = sum(v for e, v in errors.items() if abs(e) <= 1)
    print(
        f"known injected offsets (±3..±12 frames): {len(injected)}/{sum(r['kind'] == 'shifted' for r in rows)} "
        "confident; error histogram (frames): " + ", ".join(f"{e:+d}: {v}" for e, v in sorted(errors.items()))
    )
    print(f"  |error| <= 1 frame: {_percent(within, len(injected))} (target >= 98%)")
    shifted_ok = sum(1 for r in injected if r["shift_frames"] == r["offset"] and r["offset"] != 0)
    print(f"  calibration would shift {shifted_ok}/{len(injected)} of them (the rest not significantly better than 0)")
    measured = [r for r in good if r["confident"]]
    if measured:
        sub = np.array([r["offset_subframe"] for r in measured], float)
        print(
            f"good renders' confident sub-frame offsets: min {sub.min():+.2f}, mean {sub.mean():+.2f}, "
            f"max {sub.max():+.2f} frames (n={sub.size})"
        )


def _what(r: dict) -> str:
    source = r["sentences"] if r["speech"] == "human" else r["language"]
    return f"{r['speech']} {source} {r['seconds']} s ({r['speech_s']} s speech)"


def _report_swaps(rows: list[dict]) -> None:
    print("\n===== Another row's audio, by the render's speech <- the sound swapped in =====")
    pairs = [(own, swapped) for own in SPEECH_KINDS for swapped in SPEECH_KINDS]
    print("\n| speech | " + " | ".join(f"{own} <- {swapped}" for own, swapped in pairs) + " |")
    print("|---|" + "---|" * len(pairs))
    swaps = [r for r in rows if r["kind"] == "other_audio"]
    for low, high in SPEECH_BINS:
        cells = [
            _caught([r for r in swaps if (r["speech"], r["swapped_in"]) == pair and low <= r["speech_s"] < high])
            for pair in pairs
        ]
        print(f"| {_bin_label(low, high)} | " + " | ".join(cells) + " |")
    for pair in pairs:
        part = [r for r in swaps if (r["speech"], r["swapped_in"]) == pair and r["speech_s"] >= 3.0]
        print(f"{pair[0]} <- {pair[1]}: {_percent(sum(r['failed'] for r in part), len(part))} caught with >= 3 s")


def _report_whole_clip(rows: list[dict]) -> None:
    from sonic_model.qa.thresholds import QAThresholds

    floor, clear = QAThresholds().min_sync_whole_clip_correlation, QAThresholds().sync_whole_clip_clear_correlation
    print("\nWhole-clip correlation within the offset tolerance (min_sync_whole_clip_correlation), >= 2 s of speech:")
    groups = [("good", "espeak", ""), ("good", "human", "")] + [
        ("other_audio", own, swapped) for own in SPEECH_KINDS for swapped in SPEECH_KINDS
    ]
    for kind, speech, swapped in groups:
        part = [
            r
            for r in rows
            if r["kind"] == kind and r["speech"] == speech and r["swapped_in"] == swapped and r["speech_s"] >= 2.0
        ]
        values = np.array([r["whole_clip"] for r in part], float)
        values = values[np.isfinite(values)]
        if values.size:
            low, p1, median, p99, high = np.quantile(values, [0, 0.01, 0.5, 0.99, 1])
            label = f"{kind} {speech}" + (f" <- {swapped}" if swapped else "")
            # the prominence decides between the floor and the clear level
            band = [r["whole_clip_prominence"] for r in part if floor <= r["whole_clip"] < clear]
            print(
                f"  {label:>28}: min {low:.3f}, 1% {p1:.3f}, median {median:.3f}, 99% {p99:.3f}, "
                f"max {high:.3f} (n={values.size}); prominence of the {len(band)} in {floor:g}-{clear:g}: "
                + (f"{min(band):.3f}-{max(band):.3f}" if band else "-")
            )


def _report_presenters(rows: list[dict], presenters) -> None:
    print("\nPer presenter, good renders with >= 2 s of speech: median (min) of correlation, confidence, whole-clip")
    good = [r for r in rows if r["kind"] == "good" and r["speech_s"] >= 2.0]
    for speech in SPEECH_KINDS:
        for presenter in presenters:
            part = [r for r in good if r["speech"] == speech and r["presenter"] == presenter]
            if part:
                cells = [
                    f"{np.median([r[f] for r in part]):.2f} ({min(r[f] for r in part):.2f})"
                    for f in ("correlation", "confidence", "whole_clip")
                ]
                print(f"  {speech:>6} {presenter:>26}: " + " / ".join(cells) + f", n={len(part)}")
