"""The Sonic pipeline: portrait + speech -> 25 fps frames, in numbered steps like diffusers' pipelines.

`SonicPipeline.run` reads top to bottom as these steps, one helper each:

     1. Check inputs: settings the release has but this implementation does not support are refused
     2. Define call parameters: frames to sample at 12.5 fps and to yield at 25 fps, windows, generator
     3. Prepare the portrait: face crop, model resolution, face mask, VAE and CLIP inputs
     4. Encode the speech: Whisper states -> one window of states per generated frame
     5. Encode the conditions: CLIP embedding, audio tokens (speech and silence), motion buckets
     6. Encode the portrait with the VAE: the reference latent and the image latent
     7. Prepare timesteps: the checkpoint's Euler scheduler (Karras sigmas)
     8. Prepare latent variables: every frame starts at the reference latent + sigma_max * noise
     9. Prepare the UNet conditioning: the three guidance branches' inputs, added time ids per window
    10. Prepare guidance scales: image and audio, one value per step
    11. Denoising loop: circular shifting windows, 3-way guidance in one batch (sampler.py)
    12. Decode 8 latents at a time -> RIFE middle frames -> uint8, yielded frame by frame

Steps 1-11 hold only what scales with the latents; step 12 streams, so memory does not grow
with the length beyond the latents.

Every intermediate tensor goes through one hook, `capture(name, tensor)`, under the parity
fixtures' names (recorder.py; a no-op unless the caller passes one, as `parity` does).

"The release" is the public implementation, github.com/jixiaozhong/Sonic: `sonic.py` (`test()`
prepares the audio and motion inputs), `src/pipelines/pipeline_sonic.py` (`SonicPipeline.__call__`,
a modified diffusers StableVideoDiffusionPipeline) and `config/inference/sonic.yaml` (the settings).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
import torch
from diffusers import EulerDiscreteScheduler
from diffusers.image_processor import VaeImageProcessor
from PIL import Image
from transformers import CLIPImageProcessorPil

from sonic_model.crop import FACE_MASK_AREA_SCALE, face_mask_rect, prepare_portrait
from sonic_model.sonic.audio_features import frame_windows, pad_for_windows, whisper_input_features, whisper_states
from sonic_model.sonic.models import SonicModels
from sonic_model.sonic.recorder import Capture, no_capture
from sonic_model.sonic.sampler import WindowPlan, euler_scheduler, sample_windows

SAMPLES_PER_AUDIO_FRAME = 640  # 16 kHz / 25 fps
WHISPER_POSITIONS_PER_AUDIO_FRAME = 2  # 50 positions/s / 25 fps
# audio2bucket predicts normalised motion values; the release maps each y back to 16 y + 16
# (sonic.py, test(): `motion_bucket = motion_bucket * 16 + 16`) before its pipeline multiplies
# them by `motion_bucket_scale` (our dynamic_scale). The UNet is conditioned on that scale
# (y = 0 -> 16; SVD's own default motion_bucket_id is 127), so the mapping belongs to the weights.
MOTION_BUCKET_SCALE, MOTION_BUCKET_OFFSET = 16.0, 16.0
AUDIO_WINDOWS_PER_BATCH = 64  # audio MLP windows per call: bounds their activations on long audio


@dataclass(frozen=True)
class SonicSettings:
    """Every knob of one run. Defaults are the release's `sonic.yaml`."""

    min_resolution: int = 512
    expand_ratio: float = 0.5
    crop: bool = True
    inference_steps: int = 25
    dynamic_scale: float = 1.0
    seed: int = 42
    fps_conditioning: float = 12.5
    frames_per_window: int = 25
    window_overlap: int = 0
    shift_offset_per_step: int = 7
    audio_frame_step: int = 2  # audio frames (25 fps) per generated frame (12.5 fps)
    guidance_scale_image_min_max: tuple[float, float] = (2.0, 2.0)
    guidance_scale_audio_min_max: tuple[float, float] = (7.5, 7.5)
    face_mask_area_scale: float = FACE_MASK_AREA_SCALE
    decode_chunk_size: int = 8
    noise_aug_strength: float = 0.0
    i2i_noise_strength: float = 1.0
    audio_token_scale: float = 1.0
    frame_interpolation: bool = True
    max_audio_frames_25fps: int = 10000

    @classmethod
    def from_params(cls, params: dict) -> SonicSettings:
        """From a parity fixture's `params.json` (unknown keys ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items() if k in known}
        if "motion_bucket_scale" in params and "dynamic_scale" not in params:
            values["dynamic_scale"] = params["motion_bucket_scale"]
        return cls(**values)


# Settings the release exposes that this implementation runs at one value only.
SUPPORTED_ONLY_AT = {"face_mask_area_scale": FACE_MASK_AREA_SCALE, "i2i_noise_strength": 1.0, "audio_token_scale": 1.0}


@dataclass(frozen=True)
class CallParameters:
    """Step 2: the sizes of one run and its noise source."""

    num_frames: int  # N, frames sampled at 12.5 fps
    output_frames: int  # frames yielded at 25 fps
    windows: WindowPlan
    generator: torch.Generator  # every random draw of the run, in the release's order


@dataclass
class Conditions:
    """Step 5: what steers the UNet besides the portrait's latent."""

    image_embeds: torch.Tensor  # [D] CLIP embedding of the portrait
    audio_tokens: torch.Tensor  # [N, tokens, D] speech tokens, one set per generated frame
    silence_tokens: torch.Tensor  # [tokens, D] audio2token of all-zero windows: the "no audio" branches
    motion_buckets: torch.Tensor  # [N, 2] float32, already x dynamic_scale


@dataclass
class BranchConditioning:
    """Step 9: the UNet inputs besides the latents, for the three guidance branches batched in one
    call: (no image, silence), (image, silence), (image, speech). The release builds the same
    batch (pipeline_sonic.py, `_clip_encode_image` and `_encode_vae_image`)."""

    image_latents: torch.Tensor  # [3, C, h, w]: zeros, image latent, image latent
    clip_context: torch.Tensor  # [3, 1, D]: zeros, CLIP embedding, CLIP embedding (one token per video)
    silence_tokens: torch.Tensor  # [tokens, D]
    speech_tokens: torch.Tensor  # [N, tokens, D]
    added_time_ids: torch.Tensor  # [steps, windows, 3] float32 on the CPU
    face_mask: torch.Tensor  # [H, W]


def generated_frame_count(num_samples_16k: int, settings: SonicSettings, output_frames: int | None) -> int:
    """N, the frames sampled at 12.5 fps.

    `output_frames=None` is the release rule (N = audio frames // 2, so the video is 2N - 1
    frames and ends up to 120 ms before the audio). With a target count F the pipeline samples
    N = F // 2 + 1 so that 2N - 1 >= F, and the caller keeps the first F frames."""
    if output_frames is None:
        audio_frames = min(num_samples_16k // SAMPLES_PER_AUDIO_FRAME, settings.max_audio_frames_25fps)
        return audio_frames // settings.audio_frame_step
    return output_frames // 2 + 1 if settings.frame_interpolation else output_frames


def crop_stages(
    rgb: np.ndarray, face_box_xywh, crop_box: tuple[int, int, int, int], crop: bool
) -> dict[str, torch.Tensor]:
    """The photo as the crop rules see it, under the fixtures' names: the input, the crop, and the
    face mask on the crop before resizing (`prepare_portrait` returns the mask resized only)."""
    x0, y0, x1, y1 = crop_box
    used = rgb[y0:y1, x0:x1]
    x, y, w, h = face_box_xywh
    mx0, my0, mx1, my1 = face_mask_rect((x - x0, y - y0, x - x0 + w, y - y0 + h), (used.shape[1], used.shape[0]))
    unresized = np.zeros(used.shape[:2], np.uint8)
    unresized[my0:my1, mx0:mx1] = 255
    stages = {"image.input_rgb_uint8": torch.tensor(rgb)}
    if crop:
        stages["image.cropped_rgb_uint8"] = torch.tensor(used)
    stages["image.face_mask_unresized_uint8"] = torch.from_numpy(unresized)
    return stages


def added_time_ids(motion_buckets: torch.Tensor, windows: WindowPlan, steps: int, fps: float) -> torch.Tensor:
    """[steps, windows, 3] float32: SVD's added time ids for every UNet call.

    Not SVD's [fps - 1, motion_bucket_id, noise_aug_strength]: the release passes
    `_get_add_time_ids(fps, motion_bucket[0], motion_bucket[1])` (pipeline_sonic.py), so
    - fps is sonic.yaml's 12.5, the rate frames are generated at: the release comments out
      the `fps = fps - 1` of diffusers' StableVideoDiffusionPipeline;
    - the second motion value takes the slot SVD trained for noise_aug_strength;
    - both motion values are the mean over the window's frames: one set per window."""
    frames = torch.stack([windows.frame_indices(step) for step in range(steps)])  # [S, W, F]
    window_means = motion_buckets.cpu()[frames].mean(dim=2)  # [S, W, 2]
    return torch.cat([torch.full((*frames.shape[:2], 1), fps), window_means], dim=-1)


class SonicPipeline:
    def __init__(self, models: SonicModels):
        self.models = models
        vae_scale_factor = 2 ** (len(models.vae.config.block_out_channels) - 1)
        # Portraits arrive at model resolution (multiples of 64): no resizing, only [0, 255] -> [-1, 1].
        self.vae_image_processor = VaeImageProcessor(vae_scale_factor=vae_scale_factor, do_resize=False)
        # The release runs CLIPImageProcessor() on a 224 x 224 LANCZOS resize (src/dataset/
        # test_preprocess.py), so its own resize and centre crop change nothing: they are off here.
        # The PIL backend by name: the default class switches to torchvision where that is installed.
        mean, std = models.clip_mean_std
        self.clip_image_processor = CLIPImageProcessorPil(
            do_resize=False, do_center_crop=False, image_mean=list(mean), image_std=list(std)
        )

    # ----- the whole run -----
    @torch.no_grad()
    def run(
        self,
        portrait_rgb: np.ndarray,
        face_box_xywh: tuple[float, float, float, float],
        waveform_16k: np.ndarray,
        settings: SonicSettings,
        *,
        output_frames: int | None = None,
        latent_noise: torch.Tensor | None = None,
        capture: Capture = no_capture,
    ) -> Iterator[np.ndarray]:
        """Yield uint8 frames at 25 fps: `output_frames` of them, or the release's 2N - 1 when None.

        `latent_noise` [1, N, C, h, w] replaces the seeded draw (parity fixtures inject theirs);
        `capture(name, tensor)` receives every intermediate tensor (see recorder.py)."""
        # 1. Check inputs
        self.check_inputs(settings)
        # 2. Define call parameters
        call = self.call_parameters(len(waveform_16k), settings, output_frames)
        # 3. Prepare the portrait
        ref_tensor, face_mask, clip_pixels = self.prepare_portrait(portrait_rgb, face_box_xywh, settings, capture)
        # 4. Encode the speech
        token_windows, bucket_windows = self.encode_speech(waveform_16k, call.num_frames, settings, capture)
        # 5. Encode the conditions
        conditions = self.encode_conditions(clip_pixels, token_windows, bucket_windows, settings, capture)
        del token_windows, bucket_windows
        # 6. Encode the portrait with the VAE
        ref_latent, image_latent = self.encode_portrait(ref_tensor, call.generator, settings, capture)
        # 7. Prepare timesteps
        scheduler = self.prepare_timesteps(settings, capture)
        # 8. Prepare latent variables
        latents = self.prepare_latents(ref_latent, scheduler, call, latent_noise, capture)
        # 9. Prepare the UNet conditioning
        branches = self.branch_conditioning(conditions, image_latent, face_mask, call.windows, settings, capture)
        # 10. Prepare guidance scales
        guidance_image, guidance_audio = self.guidance_scales(settings, capture)
        # 11. Denoising loop
        latents = self.denoise(latents, scheduler, call.windows, (guidance_image, guidance_audio), branches, capture)
        # 12. Decode -> interpolate -> uint8, streamed
        yield from self.video_frames(latents, call.output_frames, settings, capture)

    # ----- 1. check inputs -----
    def check_inputs(self, settings: SonicSettings) -> None:
        for name, supported in SUPPORTED_ONLY_AT.items():
            value = getattr(settings, name)
            if not math.isclose(value, supported):
                raise ValueError(
                    f"SonicSettings.{name}={value} is not supported; "
                    f"this implementation runs the release's value {supported}, leave it at that"
                )

    # ----- 2. define call parameters -----
    def call_parameters(
        self, num_samples_16k: int, settings: SonicSettings, output_frames: int | None
    ) -> CallParameters:
        num_frames = generated_frame_count(num_samples_16k, settings, output_frames)
        if num_frames < 1:
            needed = SAMPLES_PER_AUDIO_FRAME * settings.audio_frame_step
            raise ValueError(
                f"the audio has {num_samples_16k} samples at 16 kHz; "
                f"Sonic needs at least {needed} ({needed / 16000:g} s) for one frame"
            )
        if output_frames is None:
            output_frames = 2 * num_frames - 1 if settings.frame_interpolation else num_frames
        windows = WindowPlan(
            num_frames, settings.frames_per_window, settings.window_overlap, settings.shift_offset_per_step
        )
        # One CPU generator for every draw: the same noise from the same seed on any device.
        generator = torch.Generator().manual_seed(settings.seed)
        return CallParameters(num_frames, output_frames, windows, generator)

    # ----- 3. prepare the portrait -----
    def prepare_portrait(self, rgb: np.ndarray, face_box_xywh, settings: SonicSettings, capture=no_capture):
        """(VAE input [3, H, W] in [-1, 1], face mask [H, W] in [0, 1], CLIP input [3, 224, 224])."""
        portrait = prepare_portrait(
            rgb,
            face_box_xywh,
            expand_ratio=settings.expand_ratio,
            min_resolution=settings.min_resolution,
            crop=settings.crop,
        )
        image = Image.fromarray(portrait.image)
        ref_tensor = self.vae_image_processor.preprocess(image)[0]
        face_mask = torch.tensor(portrait.face_mask, dtype=torch.float32) / 255.0  # a copy: PIL's arrays are read-only
        size = self.models.clip_size
        clip_rgb = np.asarray(image.resize((size, size), Image.LANCZOS))
        clip_pixels = self.clip_image_processor(images=clip_rgb, return_tensors="pt").pixel_values[0]
        for name, stage in crop_stages(rgb, face_box_xywh, portrait.crop_box, settings.crop).items():
            capture(name, stage)
        capture("image.resized_rgb_uint8", torch.tensor(portrait.image))
        capture("image.ref_tensor", ref_tensor)
        capture("image.face_mask", face_mask.expand(3, -1, -1))
        capture("clip.input_224_rgb_uint8", torch.tensor(clip_rgb))
        capture("clip.pixel_values", clip_pixels)
        return ref_tensor, face_mask, clip_pixels

    # ----- 4. encode the speech -----
    def encode_speech(self, waveform_16k, num_frames: int, settings: SonicSettings, capture=no_capture):
        """Whisper states in windows: ([N, 10, layers + 1, C] for audio2token, [N, 50, 1, C] for audio2bucket)."""
        m = self.models
        audio_frames = min(len(waveform_16k) // SAMPLES_PER_AUDIO_FRAME, settings.max_audio_frames_25fps)
        positions = audio_frames * WHISPER_POSITIONS_PER_AUDIO_FRAME
        features = whisper_input_features(m.feature_extractor, waveform_16k)
        states = whisper_states(m.whisper_encoder, features, positions)  # [P, layers + 1, C]
        # The release (sonic.py, test()) feeds audio2token every hidden state and audio2bucket the
        # last one only, each in its own window size, two generated frames' positions apart.
        stride = WHISPER_POSITIONS_PER_AUDIO_FRAME * settings.audio_frame_step
        token_padded = pad_for_windows(states, m.audio2token.dims.window)
        bucket_padded = pad_for_windows(states[:, -1:], m.audio2bucket.dims.window)
        token_windows = frame_windows(token_padded, num_frames, m.audio2token.dims.window, stride)
        bucket_windows = frame_windows(bucket_padded, num_frames, m.audio2bucket.dims.window, stride)
        capture("audio.waveform_16k", torch.from_numpy(np.asarray(waveform_16k, dtype=np.float32)))
        capture("audio.whisper_input_features", features)
        capture("audio.num_frames_25fps", torch.tensor(audio_frames, dtype=torch.int64))
        capture("whisper.all_states_padded", token_padded)
        capture("whisper.last_state_padded", bucket_padded)
        capture("audio2token.input_windows", token_windows)
        capture("audio2bucket.input_windows", bucket_windows)
        return token_windows, bucket_windows

    # ----- 5. encode the conditions -----
    @torch.no_grad()
    def encode_conditions(
        self, clip_pixels, token_windows, bucket_windows, settings: SonicSettings, capture=no_capture
    ) -> Conditions:
        m = self.models
        on_device = lambda t: t.to(m.device, m.dtype)  # noqa: E731 (a one-line local helper)
        image_embeds = m.image_encoder(pixel_values=on_device(clip_pixels[None])).image_embeds[0]
        audio_tokens = torch.cat(
            [m.audio2token(on_device(chunk)) for chunk in token_windows.split(AUDIO_WINDOWS_PER_BATCH)]
        )
        # The release runs audio2token on zero windows for every frame (sonic.py, test()); the
        # result is the same for all frames, so one is computed.
        silence_tokens = m.audio2token(on_device(torch.zeros_like(token_windows[:1])))[0]
        raw = torch.cat(
            [m.audio2bucket(on_device(chunk), image_embeds) for chunk in bucket_windows.split(AUDIO_WINDOWS_PER_BATCH)]
        ).float()
        motion_buckets = raw * MOTION_BUCKET_SCALE + MOTION_BUCKET_OFFSET
        scaled = motion_buckets * settings.dynamic_scale  # pipeline_sonic.py: `motion_buckets * motion_bucket_scale`
        capture("clip.image_embeds", image_embeds)
        capture("audio2token.cond_tokens", audio_tokens)
        capture("audio2token.uncond_tokens", silence_tokens.expand(len(audio_tokens), -1, -1))
        capture("audio2bucket.raw_output", raw)
        capture("audio2bucket.motion_buckets", motion_buckets)
        capture("sampler.motion_buckets_scaled", scaled)
        return Conditions(image_embeds, audio_tokens, silence_tokens, scaled)

    # ----- 6. encode the portrait with the VAE -----
    @torch.no_grad()
    def encode_portrait(self, ref_tensor, generator, settings: SonicSettings, capture=no_capture):
        """(reference latent [C, h, w]: the posterior mean x scaling factor, where every frame starts;
        image latent [C, h, w]: unscaled, beside every frame in the UNet input, as in SVD)."""
        vae, device, dtype = self.models.vae, self.models.device, self.models.vae_dtype
        # Drawn even at strength 0, as the release does: the draw moves the generator, and the
        # latent noise of step 8 comes after it.
        image_noise = torch.randn((1, *ref_tensor.shape), generator=generator)
        mean = vae.encode(ref_tensor[None].to(device, dtype)).latent_dist.mean[0].float()
        # The release multiplies by a literal 0.18215, the value of SVD's VAE config.
        ref_latent = mean * vae.config.scaling_factor
        if settings.noise_aug_strength:
            noisy = ref_tensor + settings.noise_aug_strength * image_noise[0]
            image_latent = vae.encode(noisy[None].to(device, dtype)).latent_dist.mode()[0].float()
        else:
            image_latent = mean  # the mode of the same Gaussian: no second encode
        capture("noise.image_aug", image_noise)
        capture("vae.ref_latent_mean", mean)
        capture("vae.cond_latent", image_latent)
        capture("vae.ref_latent_scaled", ref_latent)
        return ref_latent, image_latent

    # ----- 7. prepare timesteps -----
    def prepare_timesteps(self, settings: SonicSettings, capture=no_capture) -> EulerDiscreteScheduler:
        scheduler = euler_scheduler(self.models.scheduler_config, settings.inference_steps)
        capture("sampler.sigmas", scheduler.sigmas)
        capture("sampler.timesteps", scheduler.timesteps)  # 0.25 ln(sigma): continuous timesteps
        return scheduler

    # ----- 8. prepare latent variables -----
    def prepare_latents(
        self, ref_latent, scheduler, call: CallParameters, latent_noise=None, capture=no_capture
    ) -> torch.Tensor:
        """[N, C, h, w] float32 on the CPU."""
        shape = (1, call.num_frames, *ref_latent.shape)
        if latent_noise is None:
            latent_noise = torch.randn(shape, generator=call.generator)
        elif tuple(latent_noise.shape) != shape:
            raise ValueError(f"injected latent noise has shape {tuple(latent_noise.shape)}, expected {shape}")
        # Not SVD's pure noise x init_noise_sigma: the release noises the portrait's latent to the
        # first timestep for every frame (pipeline_sonic.py, prepare_latents -> scheduler.add_noise).
        latents = scheduler.add_noise(ref_latent.cpu()[None], latent_noise[0].float(), scheduler.timesteps[:1])
        capture("noise.latent", latent_noise)
        capture("sampler.latents_init", latents)
        return latents

    # ----- 9. prepare the UNet conditioning -----
    @torch.no_grad()
    def branch_conditioning(
        self, conditions: Conditions, image_latent, face_mask, windows: WindowPlan, settings, capture=no_capture
    ) -> BranchConditioning:
        device, dtype = self.models.device, self.models.dtype
        image_latent = image_latent.to(device, dtype)
        embeds = conditions.image_embeds.to(device, dtype).reshape(1, 1, -1)
        time_ids = added_time_ids(
            conditions.motion_buckets, windows, settings.inference_steps, settings.fps_conditioning
        )
        capture("sampler.added_time_ids", time_ids)
        return BranchConditioning(
            image_latents=torch.stack([torch.zeros_like(image_latent), image_latent, image_latent]),
            clip_context=torch.cat([torch.zeros_like(embeds), embeds, embeds]),
            silence_tokens=conditions.silence_tokens.to(device, dtype),
            speech_tokens=conditions.audio_tokens,
            added_time_ids=time_ids,
            face_mask=face_mask,
        )

    # ----- 10. prepare guidance scales -----
    def guidance_scales(self, settings: SonicSettings, capture=no_capture) -> tuple[torch.Tensor, torch.Tensor]:
        """Image and audio scales, one per step (SVD ramps its one scale over frames instead)."""
        guidance_image = torch.linspace(*settings.guidance_scale_image_min_max, settings.inference_steps)
        guidance_audio = torch.linspace(*settings.guidance_scale_audio_min_max, settings.inference_steps)
        capture("sampler.guidance_scale_image", guidance_image)
        capture("sampler.guidance_scale_audio", guidance_audio)
        return guidance_image, guidance_audio

    # ----- 11. denoising loop -----
    @torch.no_grad()
    def denoise(
        self, latents, scheduler, windows: WindowPlan, guidance, branches: BranchConditioning, capture=no_capture
    ):
        m = self.models
        device, dtype = m.device, m.dtype
        for grid in m.unet.face_mask_grids(branches.face_mask):
            capture(f"unet.face_mask_{grid.shape[0]}x{grid.shape[1]}", grid)
        face_mask = branches.face_mask.to(device, dtype)

        def predict(model_input, timestep, frames, step, window, capture):
            num = len(frames)
            window_latents = model_input.to(device, dtype).expand(3, -1, -1, -1, -1)
            image_latents = branches.image_latents[:, None].expand(-1, num, -1, -1, -1)
            sample = torch.cat([window_latents, image_latents], dim=2)
            speech = branches.speech_tokens[frames.to(branches.speech_tokens.device)].to(device, dtype)
            audio = torch.cat([branches.silence_tokens.expand(2 * num, -1, -1), speech])
            time_ids = branches.added_time_ids[step, window].to(device, dtype).expand(3, -1)
            capture("unet_call0.sample", sample)
            capture("unet_call0.timestep", timestep)
            capture("unet_call0.clip_context", branches.clip_context.repeat_interleave(num, dim=0))  # as the release
            capture("unet_call0.audio_context", audio)
            capture("unet_call0.added_time_ids", time_ids)
            capture("unet_call0.ip_mask", branches.face_mask[None, None])
            prediction = m.unet(sample, timestep.to(device, dtype), branches.clip_context, audio, time_ids, face_mask)
            return prediction.float().cpu()

        latents = sample_windows(latents, scheduler, windows, *guidance, predict, capture)
        capture("sampler.latents_final", latents)
        return latents

    # ----- 12. decode -> interpolate -> uint8 -----
    @torch.no_grad()
    def decoded_chunks(self, latents, settings: SonicSettings, capture=no_capture) -> Iterator[torch.Tensor]:
        """[n, 3, H, W] float frames in [0, 1], `decode_chunk_size` latents at a time.

        Not diffusers' StableVideoDiffusionPipeline.decode_latents: that one decodes in chunks too
        but concatenates every frame before returning; these chunks go on to the encoder one by one."""
        vae = self.models.vae
        scale = 1 / vae.config.scaling_factor  # multiply by the reciprocal, as the release does
        for start in range(0, latents.shape[0], settings.decode_chunk_size):
            chunk = latents[start : start + settings.decode_chunk_size]
            raw = vae.decode(
                chunk.to(self.models.device, self.models.vae_dtype) * scale, num_frames=chunk.shape[0]
            ).sample.float()
            if start == 0:
                capture("decode.frames_raw_first_chunk", raw)
            frames = (raw * 0.5 + 0.5).clamp(0, 1)
            capture("decode.frames", frames)
            yield frames

    @torch.no_grad()
    def interpolated_frames(self, latents, settings: SonicSettings, capture=no_capture) -> Iterator[torch.Tensor]:
        """Decoded frames with a RIFE middle frame between each two (d0, m0, d1, m1, ..., d_last), [3, H, W]."""
        chunks = self.decoded_chunks(latents, settings, capture)
        if not settings.frame_interpolation:
            for chunk in chunks:
                yield from chunk
            return
        dtype = self.models.dtype
        previous = None  # the last frame of the chunk before: the first of the pair across chunks
        for chunk in chunks:
            if previous is None:
                yield chunk[0]
                firsts, seconds = chunk[:-1], chunk[1:]
            else:
                firsts, seconds = torch.cat([previous[None], chunk[:-1]]), chunk
            middles = (
                self.models.interpolator.middle(firsts.to(dtype), seconds.to(dtype)).float()
                if len(seconds)
                else chunk[:0]
            )
            capture("rife.middle_frames", middles)
            for middle, second in zip(middles, seconds, strict=False):
                yield middle
                yield second
            previous = chunk[-1]

    def video_frames(self, latents, count: int, settings: SonicSettings, capture=no_capture) -> Iterator[np.ndarray]:
        """The first `count` frames as trunc(255 x) uint8 [H, W, 3]: truncation, not rounding, as the
        release writes its frames (src/utils/util.py, save_videos_grid); diffusers' VaeImageProcessor
        and VideoProcessor postprocessing round, so they would change about half the values by one level."""
        for frame in itertools.islice(self.interpolated_frames(latents, settings, capture), count):
            frame = (frame.float() * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
            capture("video.frames_uint8", torch.from_numpy(frame)[None])
            yield frame
