"""The one hook the Sonic pipeline reports its intermediate tensors through, and what records them.

The pipeline calls `capture(name, tensor)` at every stage the parity fixtures name; by default
the hook is `no_capture` and keeps nothing. `parity` passes a `Recorder`'s `capture` instead.
A name captured more than once (per sampling step, per decoded chunk, per frame) is one tensor
sent in pieces: the pieces are concatenated along their first axis, so a per-step piece carries a
leading axis of 1 (`latents[None]`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Capture = Callable[[str, torch.Tensor], None]


def no_capture(name: str, tensor: torch.Tensor) -> None:
    """The default hook: keep nothing."""


class Recorder:
    """Keeps every captured tensor on the CPU, in float32 (integer, uint8 and float64 tensors as they are)."""

    def __init__(self) -> None:
        self._pieces: dict[str, list[torch.Tensor]] = {}

    def capture(self, name: str, tensor: torch.Tensor) -> None:
        # A copy: the pipeline goes on to change some tensors in place or reuse their buffers.
        piece = torch.as_tensor(tensor).detach().cpu()
        if piece.is_floating_point() and piece.dtype != torch.float64:
            piece = piece.float()
        self._pieces.setdefault(name, []).append(piece.clone())

    def result(self) -> dict[str, torch.Tensor]:
        """Name -> tensor: the one piece captured, or all pieces concatenated along the first axis."""
        return {
            name: (pieces[0] if len(pieces) == 1 else torch.cat(pieces)).contiguous()
            for name, pieces in self._pieces.items()
        }
