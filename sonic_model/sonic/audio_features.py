"""Speech -> Whisper encoder states -> one window of states per generated video frame.

Whisper always encodes whole 30 s windows (1500 positions, 50 per second); longer audio is cut
into 30 s chunks, each padded and normalised on its own by the feature extractor, and the
encoder outputs are concatenated. Only positions that cover the audio are kept: everything
outside is zero, which is also what frames past the end of the audio see.
"""

from __future__ import annotations

import numpy as np
import torch


def whisper_input_features(feature_extractor, waveform_16k: np.ndarray) -> torch.Tensor:
    """[mel bins, 3000 * chunks] log-mel features, one block per 30 s chunk."""
    chunk = feature_extractor.n_samples
    blocks = []
    for start in range(0, max(len(waveform_16k), 1), chunk):
        piece = waveform_16k[start : start + chunk]
        blocks.append(
            feature_extractor(piece, sampling_rate=feature_extractor.sampling_rate, return_tensors="pt").input_features[
                0
            ]
        )
    return torch.cat(blocks, dim=-1)


@torch.no_grad()
def whisper_states(encoder, features: torch.Tensor, num_positions: int) -> torch.Tensor:
    """[num_positions, layers + 1, C]: every encoder hidden state (input embedding, each layer;
    the last one after the final LayerNorm) at the first `num_positions` positions."""
    frames_per_block = encoder.config.max_source_positions * 2  # the conv stem halves the rate
    param = next(encoder.parameters())
    states = []
    for start in range(0, features.shape[-1], frames_per_block):
        if sum(s.shape[0] for s in states) >= num_positions:
            break  # later 30 s blocks hold no kept positions
        block = features[None, :, start : start + frames_per_block].to(param.device, param.dtype)
        hidden = encoder(block, output_hidden_states=True).hidden_states
        states.append(torch.stack(hidden, dim=2)[0].float().cpu())
    stacked = torch.cat(states)[:num_positions]
    if stacked.shape[0] < num_positions:
        stacked = torch.cat([stacked, stacked.new_zeros(num_positions - stacked.shape[0], *stacked.shape[1:])])
    return stacked


def pad_for_windows(states: torch.Tensor, window: int) -> torch.Tensor:
    """Zero rows around the states so frame i's window is rows stride*i ... stride*i + window - 1.

    The release centres a `window`-position window on each frame's first positions:
    window//2 - 1 zero rows in front (4 for 10, 24 for 50) and the rest behind."""
    front = window // 2 - 1
    back = window - front
    return torch.cat([states.new_zeros(front, *states.shape[1:]), states, states.new_zeros(back, *states.shape[1:])])


def frame_windows(padded: torch.Tensor, num_frames: int, window: int, stride: int) -> torch.Tensor:
    """[num_frames, window, states, C]: rows stride*i ... of `padded` (zeros past its end)."""
    needed = stride * (num_frames - 1) + window
    if padded.shape[0] < needed:
        padded = torch.cat([padded, padded.new_zeros(needed - padded.shape[0], *padded.shape[1:])])
    index = torch.arange(num_frames)[:, None] * stride + torch.arange(window)[None, :]
    return padded[index]
