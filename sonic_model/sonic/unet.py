"""Sonic's UNet: the SVD-xt spatio-temporal UNet with an audio branch in every cross-attention.

The parameters are diffusers' `UNetSpatioTemporalConditionModel`, unchanged, plus one bias-free
audio key/value projection pair (`attn2.processor.to_k_ip.0`, `attn2.processor.to_v_ip.0`) per
cross-attention layer, so `Sonic/unet.pth` loads with `strict=True`.

What Sonic changes is the cross-attention computation, done here by `AudioCrossAttnProcessor`:

    spatial layers (rows = frames):  out = attn(q, CLIP token) + scale * mask * attn(q, audio tokens of the frame)
    temporal layers (rows = pixels): out = attn(q, CLIP token) + scale * attn(q, audio tokens averaged over the window)

followed by the layer's own output projection. The CLIP token reaches the processors the normal
SVD way (`encoder_hidden_states`, one token per video, identical for every frame). The audio
tokens differ per frame and the mask per attention grid, which SVD's block code has no argument
for, so `SonicUNet.forward` puts them in one `AudioConditioning` that every processor of the
UNet shares for the duration of that call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers import UNetSpatioTemporalConditionModel
from torch import nn


@dataclass
class AudioConditioning:
    """Inputs of the audio branch for the UNet call in progress."""

    audio_tokens: torch.Tensor | None = None  # [videos * frames, tokens, D]
    num_frames: int = 0
    # Face mask at each spatial attention grid, keyed by the grid's token count: [1, tokens, 1].
    mask_by_grid: dict[int, torch.Tensor] = field(default_factory=dict)
    _window_mean: torch.Tensor | None = None

    def window_mean_tokens(self) -> torch.Tensor:
        """[videos, tokens, D]: each video's audio tokens averaged over its frames (computed once)."""
        if self._window_mean is None:
            tokens = self.audio_tokens
            self._window_mean = tokens.reshape(-1, self.num_frames, *tokens.shape[1:]).mean(dim=1)
        return self._window_mean

    def clear(self) -> None:
        self.audio_tokens, self._window_mean, self.mask_by_grid = None, None, {}


class AudioCrossAttnProcessor(nn.Module):
    """Cross-attention over the CLIP token plus a second attention over the audio tokens.

    It owns the audio key/value projections (key names as in the release: `to_k_ip.0`).
    Attention runs through PyTorch SDPA (flash / memory-efficient kernels on CUDA).
    """

    def __init__(
        self,
        hidden_size: int,
        cross_attention_dim: int,
        *,
        temporal: bool,
        conditioning: AudioConditioning,
        scale: float = 1.0,
    ):
        super().__init__()
        self.to_k_ip = nn.ModuleList([nn.Linear(cross_attention_dim, hidden_size, bias=False)])
        self.to_v_ip = nn.ModuleList([nn.Linear(cross_attention_dim, hidden_size, bias=False)])
        self.temporal = temporal
        self.scale = scale
        self.conditioning = conditioning

    def __call__(
        self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor, attention_mask=None, temb=None
    ) -> torch.Tensor:
        cond = self.conditioning
        rows, heads = hidden_states.shape[0], attn.heads

        def split_heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(x.shape[0], -1, heads, x.shape[-1] // heads).transpose(1, 2)

        def merge_heads(x: torch.Tensor) -> torch.Tensor:
            return x.transpose(1, 2).reshape(x.shape[0], -1, x.shape[1] * x.shape[-1])

        query = split_heads(attn.to_q(hidden_states))
        image_out = F.scaled_dot_product_attention(
            query, split_heads(attn.to_k(encoder_hidden_states)), split_heads(attn.to_v(encoder_hidden_states))
        )

        audio = cond.window_mean_tokens() if self.temporal else cond.audio_tokens
        audio_key = split_heads(self.to_k_ip[0](audio))
        audio_value = split_heads(self.to_v_ip[0](audio))
        if self.temporal:
            # Temporal rows are (video, pixel): all pixels of a video share its averaged tokens,
            # so project once per video and repeat.
            pixels = rows // audio.shape[0]
            audio_key = audio_key.repeat_interleave(pixels, dim=0)
            audio_value = audio_value.repeat_interleave(pixels, dim=0)
        audio_out = merge_heads(F.scaled_dot_product_attention(query, audio_key, audio_value))
        if not self.temporal:
            audio_out = audio_out * cond.mask_by_grid[hidden_states.shape[1]].to(audio_out.dtype)

        out = merge_heads(image_out) + self.scale * audio_out
        return attn.to_out[1](attn.to_out[0](out))


class SonicUNet(UNetSpatioTemporalConditionModel):
    """The SVD UNet whose cross-attentions carry Sonic's audio branch; keys equal `unet.pth`'s."""

    @classmethod
    def from_svd_config(cls, config: dict, *, audio_scale: float = 1.0) -> SonicUNet:
        config = {k: v for k, v in config.items() if not k.startswith("_")}
        unet = cls.from_config(config)
        unet.add_audio_branch(audio_scale)
        return unet

    def add_audio_branch(self, audio_scale: float = 1.0) -> None:
        self.audio_conditioning = AudioConditioning()
        processors = {}
        for name, processor in self.attn_processors.items():
            if name.endswith("attn2.processor"):
                attention = self.get_submodule(name.rsplit(".", 1)[0])
                processor = AudioCrossAttnProcessor(
                    attention.to_q.out_features,
                    attention.to_k.in_features,
                    temporal=".temporal_transformer_blocks." in name,
                    conditioning=self.audio_conditioning,
                    scale=audio_scale,
                )
            processors[name] = processor
        self.set_attn_processor(processors)

    def face_mask_grids(self, face_mask: torch.Tensor) -> list[torch.Tensor]:
        """The face mask ([H, W], model resolution) at every spatial attention grid, largest first.

        Bicubic, half-pixel centres, no antialiasing: values can overshoot [0, 1] on small
        grids, as in the release.
        """
        height, width = face_mask.shape[-2:]
        grid_h, grid_w = height // 8, width // 8  # the VAE downsamples by 8
        grids = []
        for _ in self.config.block_out_channels:
            mask = F.interpolate(
                face_mask.reshape(1, 1, height, width).float(),
                size=(grid_h, grid_w),
                mode="bicubic",
                align_corners=False,
            )
            grids.append(mask[0, 0])
            # Each down block halves the grid with a stride-2, padding-1 convolution.
            grid_h, grid_w = math.ceil(grid_h / 2), math.ceil(grid_w / 2)
        return grids

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        clip_context: torch.Tensor,
        audio_context: torch.Tensor,
        added_time_ids: torch.Tensor,
        face_mask: torch.Tensor,
    ) -> torch.Tensor:
        """One evaluation: sample [B, F, C, h, w], clip_context [B, 1, D] (one token per video),
        audio_context [B * F, tokens, D], added_time_ids [B, 3], face_mask [H, W].
        Returns the v-prediction [B, F, out_channels, h, w]."""
        cond = self.audio_conditioning
        cond.audio_tokens = audio_context
        cond.num_frames = sample.shape[1]
        cond.mask_by_grid = {m.numel(): m.reshape(1, -1, 1) for m in self.face_mask_grids(face_mask)}
        try:
            return super().forward(
                sample, timestep, encoder_hidden_states=clip_context, added_time_ids=added_time_ids, return_dict=False
            )[0]
        finally:
            cond.clear()
