"""The verdict on one video: `QAResult`."""

from __future__ import annotations

from dataclasses import dataclass, field

from sonic_model.encode import FPS


@dataclass(frozen=True)
class QAResult:
    """The verdict on one video. `figures` is flat and JSON-able (for the sidecar and ledger)."""

    passed: bool
    failures: list[str]
    figures: dict[str, float | int | str]
    mouth_series: list[float | None] = field(default_factory=list)
    envelope_series: list[float] = field(default_factory=list)
    speech_series: list[bool] = field(default_factory=list)
    fps: float = float(FPS)

    @property
    def reason(self) -> str:
        """All failures in one line, for a ledger's reason column ('' when passed)."""
        return "; ".join(self.failures)
