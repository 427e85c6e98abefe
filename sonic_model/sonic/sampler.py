"""Sonic's sampler: Euler (v-prediction) over circular, shifting 25-frame windows, 3-way guidance.

Each step s runs every window w over frames (stride * w - shift * s + k) mod N, k < window: the
clip is treated as a loop so a fixed-size UNet covers any length, and the shift moves the
window seams every step so they do not stay visible. Each window's UNet call batches the three
guidance branches (no image / image / image + audio) together; the Euler results of all windows
are summed per frame and divided by the number of window slots that landed on the frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from sonic_model.sonic.recorder import Recorder


@dataclass(frozen=True)
class WindowPlan:
    """Window layout of one sampling run."""

    num_frames: int
    window: int = 25
    overlap: int = 0
    shift: int = 7

    @property
    def windows_per_step(self) -> int:
        stride = self.window - self.overlap
        return max(1, math.ceil((self.num_frames - self.overlap) / stride))

    def starts(self, step: int) -> torch.Tensor:
        """[windows] start of each window before the modulo."""
        stride = self.window - self.overlap
        return torch.arange(self.windows_per_step, dtype=torch.int64) * stride - self.shift * step

    def frame_indices(self, step: int) -> torch.Tensor:
        """[windows, window] frame index of every window slot at this step."""
        return (self.starts(step)[:, None] + torch.arange(self.window, dtype=torch.int64)) % self.num_frames


def euler_v_step(sample: torch.Tensor, v_pred: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """One Euler step for a v-prediction model, in float32 (as diffusers' EulerDiscreteScheduler)."""
    sample, v_pred = sample.float(), v_pred.float()
    denoised = v_pred * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)
    return sample + (sample - denoised) / sigma * (sigma_next - sigma)


def combine_guidance(outputs: torch.Tensor, image_scale: float, audio_scale: float) -> torch.Tensor:
    """outputs [3, F, ...] = (no image, image, image + audio) -> guided prediction [F, ...]."""
    uncond, image, image_audio = outputs.float().unbind(0)
    return uncond + image_scale * (image - uncond) + audio_scale * (image_audio - image)


# One window's UNet call: (window latents / sqrt(sigma^2 + 1) [F, C, h, w], timestep,
# frame indices [F], step, window) -> v-prediction of the three branches [3, F, C, h, w].
DenoiseFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int, int], torch.Tensor]


def sample_windows(
    latents: torch.Tensor,
    sigmas: torch.Tensor,
    timesteps: torch.Tensor,
    plan: WindowPlan,
    guidance_image: torch.Tensor,
    guidance_audio: torch.Tensor,
    denoise: DenoiseFn,
    recorder: "Recorder | None" = None,
) -> torch.Tensor:
    """Run all steps. `latents` [N, C, h, w] float32; `denoise(window_latents_scaled, t, frames, step, window)`
    returns the three-branch v-prediction [3, F, C, h, w] for one window."""
    for step in range(len(timesteps)):
        sigma, sigma_next = sigmas[step], sigmas[step + 1]
        summed = torch.zeros_like(latents)
        visits = torch.zeros(latents.shape[0], dtype=latents.dtype)
        window_outputs = []
        for window_index, frames in enumerate(plan.frame_indices(step)):
            window_latents = latents[frames]
            v_pred = denoise(window_latents / ((sigma**2 + 1) ** 0.5), timesteps[step], frames, step, window_index)
            guided = combine_guidance(v_pred, float(guidance_image[step]), float(guidance_audio[step]))
            stepped = euler_v_step(window_latents, guided, sigma, sigma_next)
            # index_add_: a frame that occurs twice in one (wrapped) window counts twice.
            summed.index_add_(0, frames, stepped)
            visits.index_add_(0, frames, torch.ones(len(frames), dtype=visits.dtype))
            if recorder is not None:
                window_outputs.append(stepped)
                if step == 0 and window_index == 0:
                    recorder.add("unet_call0.output", v_pred)
                    recorder.add("unet_call0.guided_output", guided)
                    recorder.add("unet_call0.window_latents_in", window_latents)
                    recorder.add("unet_call0.step_output", stepped)
        latents = summed / visits.view(-1, 1, 1, 1)
        if recorder is not None:
            recorder.append("sampler.frame_visit_count", visits)
            recorder.append("sampler.latents_after_step", latents)
            if step == 0:
                recorder.add("sampler.step0_window_outputs", torch.stack(window_outputs))
    return latents
