"""Optional capture of intermediate tensors (what the parity check compares with a fixture)."""

from __future__ import annotations

import torch


class Recorder:
    """Collects named tensors on the CPU in float32 (integers and uint8 kept as they are)."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self._lists: dict[str, list[torch.Tensor]] = {}

    @staticmethod
    def _cpu(value) -> torch.Tensor:
        tensor = torch.as_tensor(value).detach().cpu()
        return tensor.float() if tensor.is_floating_point() and tensor.dtype != torch.float64 else tensor

    def add(self, name: str, value) -> None:
        self.tensors[name] = self._cpu(value).clone()

    def append(self, name: str, value) -> None:
        """One slice of a tensor stacked along a new first axis (per step, per frame chunk)."""
        self._lists.setdefault(name, []).append(self._cpu(value).clone())

    def extend(self, name: str, value) -> None:
        """Rows concatenated along the first axis (frames arriving chunk by chunk)."""
        self._lists.setdefault("\0cat\0" + name, []).append(self._cpu(value).clone())

    def result(self) -> dict[str, torch.Tensor]:
        out = dict(self.tensors)
        for key, parts in self._lists.items():
            if key.startswith("\0cat\0"):
                out[key[5:]] = torch.cat(parts)
            else:
                out[key] = torch.stack(parts)
        return {k: v.contiguous() for k, v in out.items()}
