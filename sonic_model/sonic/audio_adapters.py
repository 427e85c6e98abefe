"""Sonic's two audio MLPs, sized from their weight files (never from constants).

- `AudioTokenProjector` (`audio2token.pth`): a window of Whisper states around one video frame
  (10 positions x 5 hidden states x C) -> 32 audio tokens of the UNet's cross-attention width.
- `MotionBucketRegressor` (`audio2bucket.pth`): a wider window of the last Whisper state
  (50 positions x C) plus the CLIP image embedding -> 2 motion values for SVD's added time ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class AudioMLPDims:
    """Sizes of one audio MLP. `window` positions x `states` hidden states x `channels` in."""

    window: int
    states: int
    channels: int
    extra_inputs: int  # appended after the flattened window (the CLIP embedding), 0 for tokens
    hidden: int
    tokens: int
    token_width: int

    @classmethod
    def from_shapes(
        cls, shapes: dict[str, tuple[int, ...]], *, states: int, channels: int, extra_inputs: int, token_width: int
    ) -> AudioMLPDims:
        """Read the window length, hidden width and token count from the weight shapes.

        `states` and `channels` come from the Whisper config, `token_width` from the UNet's
        cross-attention width (or 1 for the bucket regressor's scalar outputs).
        """
        hidden, inputs = shapes["proj1.weight"]
        window, rest = divmod(inputs - extra_inputs, states * channels)
        if rest or window <= 0:
            raise ValueError(
                f"proj1 takes {inputs} inputs, not a whole window of {states}x{channels} Whisper values "
                f"(+{extra_inputs})"
            )
        outputs = shapes["proj3.weight"][0]
        if outputs % token_width:
            raise ValueError(f"proj3 gives {outputs} outputs, not a whole number of tokens of width {token_width}")
        return cls(window, states, channels, extra_inputs, hidden, outputs // token_width, token_width)


class AudioTokenProjector(nn.Module):
    """audio2token: Linear-ReLU-Linear-ReLU-Linear, reshape to [tokens, width], LayerNorm."""

    def __init__(self, dims: AudioMLPDims):
        super().__init__()
        self.dims = dims
        self.proj1 = nn.Linear(dims.window * dims.states * dims.channels, dims.hidden)
        self.proj2 = nn.Linear(dims.hidden, dims.hidden)
        self.proj3 = nn.Linear(dims.hidden, dims.tokens * dims.token_width)
        self.norm = nn.LayerNorm(dims.token_width)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """windows [frames, window, states, C] -> tokens [frames, tokens, width].

        Flattened in (position, state, channel) order, as the weights were trained."""
        x = windows.reshape(windows.shape[0], -1)
        x = torch.relu(self.proj1(x))
        x = torch.relu(self.proj2(x))
        tokens = self.proj3(x).reshape(x.shape[0], self.dims.tokens, self.dims.token_width)
        return self.norm(tokens)


class MotionBucketRegressor(nn.Module):
    """audio2bucket: [window of the last Whisper state, CLIP embedding] -> Linear-SiLU x2 -> Linear."""

    def __init__(self, dims: AudioMLPDims):
        super().__init__()
        self.dims = dims
        self.proj1 = nn.Linear(dims.window * dims.states * dims.channels + dims.extra_inputs, dims.hidden)
        self.proj2 = nn.Linear(dims.hidden, dims.hidden)
        self.proj3 = nn.Linear(dims.hidden, dims.tokens * dims.token_width)

    def forward(self, windows: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        """windows [frames, window, 1, C], image_embeds [D] -> raw motion values [frames, 2]."""
        x = windows.reshape(windows.shape[0], -1)
        x = torch.cat([x, image_embeds.reshape(1, -1).expand(x.shape[0], -1).to(x.dtype)], dim=-1)
        x = nn.functional.silu(self.proj1(x))
        x = nn.functional.silu(self.proj2(x))
        return self.proj3(x).reshape(x.shape[0], -1)
