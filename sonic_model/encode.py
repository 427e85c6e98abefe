"""The one video encoder: frames streamed into ffmpeg, H.264 + AAC MP4.

Frames are piped to ffmpeg as a generator produces them, so memory stays flat however long the
audio is. The writer is strict about length: it must receive exactly `num_frames` frames
(`frame_count(audio duration)`), which makes the video last as long as the audio to within
half a frame. There is no `-shortest` (the public Sonic pipeline's cut that ends videos up to
~120 ms early) and no padding with black. The file appears under its final name only when
ffmpeg succeeded: it is written next to it and renamed (atomic on one filesystem).

Several videos of the same sound (a master's renditions) can share one AAC encode
(`EncodedAudioTrack`): each writer then encodes its picture alone and, when it closes, copies
the picture and the shared track into its MP4 (no sample re-encoded).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import numpy as np

from sonic_model.errors import OutputError, SonicCatalogError
from sonic_model.files import temporary_beside

FPS = 25
AI_DISCLOSURE = (
    "AI-generated video: the presenter's face was animated by software from a still photo and a script audio."
)


def frame_count(duration_s: float, fps: float = FPS) -> int:
    """Frames a video needs to last `duration_s` to within half a frame."""
    return max(1, round(duration_s * fps))


def ffmpeg_executable() -> str:
    """ffmpeg from the imageio-ffmpeg wheel (has libx264 + aac), else the system's."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        system = shutil.which("ffmpeg")
        if system:
            return system
        raise OutputError("no ffmpeg found: install the imageio-ffmpeg package or the system ffmpeg") from None


def _bits_per_second(bitrate: str) -> float:
    """An ffmpeg bitrate ("8M", "600k", "2500000") in bit/s."""
    text = str(bitrate).strip()
    scale = {"k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6}.get(text[-1:], 1.0)
    return float(text[:-1] if scale != 1.0 else text) * scale


def _doubled(bitrate: str) -> str:
    """Twice an ffmpeg bitrate such as "8M" or "800k" (the VBV buffer), in bit/s."""
    return str(round(2 * _bits_per_second(bitrate)))


def _ffmpeg_error(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "(no message)"


class EncodedAudioTrack:
    """The script's presented sound encoded once to AAC, for several `VideoWriter`s to stream-copy.

    AAC costs ~0.8 s of CPU per 10 s of 48 kHz stereo (ffmpeg's encoder), as much as a
    rendition's picture encode costs in a third of that time: with three renditions of the
    same sound, encoding it once instead of three times is ~1.6 s of CPU less per 10 s clip.
    The copied track keeps the encode's priming edit list, so it decodes to the same samples,
    at the same time, as a track encoded into each MP4 directly.

    `start()` decodes the sound (`write_script_wav`, like `VideoWriter`) and starts the encoder
    in the background (it runs while the frames are generated); `wait()` returns the encoded
    file; `cleanup()` removes it. The file is written beside `beside` (same filesystem).
    """

    def __init__(
        self,
        audio_path: str | Path,
        beside: str | Path,
        *,
        bitrate: str = "128k",
        sample_rate: int | None = None,
        channels: int | None = None,
    ) -> None:
        self.audio_path = Path(audio_path)
        self.beside = Path(beside)
        self.bitrate, self.sample_rate, self.channels = bitrate, sample_rate, channels
        self.path: Path | None = None
        self._wav: Path | None = None
        self._process: subprocess.Popen | None = None
        self._done = False

    def start(self) -> EncodedAudioTrack:
        from sonic_model.audio import write_script_wav

        self.path = temporary_beside(self.beside, ".audio.m4a")
        self._wav = self.path.with_suffix(".wav")
        try:
            write_script_wav(self.audio_path, self._wav)
            args = [ffmpeg_executable(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(self._wav)]
            args += ["-map", "0:a:0", "-c:a", "aac", "-b:a", self.bitrate]
            if self.sample_rate:
                args += ["-ar", str(self.sample_rate)]
            if self.channels:
                args += ["-ac", str(self.channels)]
            args += ["-f", "mp4", str(self.path)]
            self._process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except BaseException:
            self.cleanup()
            raise
        return self

    def wait(self) -> Path:
        """The encoded track (waits for the encoder); raises `OutputError` if it failed."""
        if self.path is None:
            raise RuntimeError("EncodedAudioTrack.wait() before start()")
        if not self._done:
            _, stderr = self._process.communicate()
            if self._process.returncode != 0:
                raise OutputError(
                    f"ffmpeg failed encoding the sound (exit {self._process.returncode}): {_ffmpeg_error(stderr)}"
                )
            self._done = True
            if self._wav is not None:
                self._wav.unlink(missing_ok=True)
        return self.path

    def cleanup(self) -> None:
        """Stop the encoder if it still runs and remove its files."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.communicate()
        for path in (self.path, self._wav):
            if path is not None:
                path.unlink(missing_ok=True)
        self.path = self._wav = None


class VideoWriter:
    """Stream RGB frames into an H.264/AAC MP4 with the given audio track.

    Use as a context manager; `write(frame)` takes [H, W, 3] uint8 frames one at a time. On a
    clean exit the frame count is checked and the file is moved to `out_path`; on an error
    nothing is left under `out_path`.

    `audio_track` (instead of `audio_path`): a started `EncodedAudioTrack` shared with other
    writers; the picture is encoded alone and muxed with a copy of the track at `close()`.
    """

    def __init__(
        self,
        out_path: str | Path,
        *,
        width: int,
        height: int,
        num_frames: int,
        audio_path: str | Path | None,
        fps: int = FPS,
        generator: str = "unknown",
        crf: int = 18,
        preset: str = "veryfast",
        audio_offset_s: float = 0.0,
        extra_metadata: dict[str, str] | None = None,
        max_bitrate: str | None = None,
        audio_bitrate: str = "128k",
        audio_sample_rate: int | None = None,
        audio_channels: int | None = None,
        input_pix_fmt: str = "rgb24",
        x264_params: str | None = None,
        audio_track: EncodedAudioTrack | None = None,
        qp: int | None = None,
    ) -> None:
        self.out_path = Path(out_path)
        self.width, self.height = int(width), int(height)
        self.num_frames = int(num_frames)
        self.audio_path = None if audio_path is None else Path(audio_path)
        self.fps = fps
        self.generator = generator
        self.crf, self.preset = crf, preset
        # Constant quality (CRF); `max_bitrate` adds a VBV cap (buffer: twice the cap), as the
        # renditions have: a talking head needs far less than a platform's cap most seconds.
        # `qp`: a constant quantiser instead (no rate control, so x264 makes no half-size analysis
        # picture per frame, and a still background is coded once and skipped after); x264 has no
        # VBV without a rate control, so the cap is checked on the finished stream instead, and a
        # stream with any second over it is encoded again at `crf` under the VBV cap (`close`).
        self.qp = qp
        self.max_bitrate = max_bitrate
        self.reencoded_under_cap = False
        self.audio_bitrate = audio_bitrate
        self.audio_sample_rate, self.audio_channels = audio_sample_rate, audio_channels
        # "rgb24": frames are [H, W, 3]; "yuv420p": frames are I420 buffers [H * 3 / 2, W] (even
        # sides), converted by the caller (a rendition converts only what changed).
        if input_pix_fmt not in ("rgb24", "yuv420p"):
            raise ValueError(f"input_pix_fmt must be rgb24 or yuv420p, got {input_pix_fmt!r}")
        self.input_pix_fmt = input_pix_fmt
        self.x264_params = x264_params
        self.audio_offset_s = audio_offset_s
        if audio_track is not None and (audio_path is not None or audio_offset_s):
            raise ValueError("give a VideoWriter audio_path (encoded here) or audio_track (copied), not both")
        self.audio_track = audio_track
        self.metadata = {"comment": AI_DISCLOSURE, "ai_generated": "true", "generator": generator}
        self.metadata.update(extra_metadata or {})
        self.frames_written = 0
        self._process: subprocess.Popen | None = None
        self._tmp_path: Path | None = None
        self._audio_wav: Path | None = None
        self._video_only: Path | None = None  # the picture alone, when muxed with a shared track
        self._log = None

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> VideoWriter:
        self.open()
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        import ffmpeg

        self._tmp_path = temporary_beside(self.out_path, ".partial.mp4")
        if self.audio_path is not None:
            # The sound muxed is the script's presented sound, decoded here once: its first audio
            # stream from its first sample (a video's picture and its track's start time ignored),
            # exactly the samples the generator listened to. Handing ffmpeg the source itself
            # would map every audio stream and keep a track's container start time.
            from sonic_model.audio import write_script_wav

            self._audio_wav = self._tmp_path.with_suffix(".wav")
            try:
                write_script_wav(self.audio_path, self._audio_wav)
            except BaseException:
                self.abort()
                raise

        video = ffmpeg.input(
            "pipe:", format="rawvideo", pix_fmt=self.input_pix_fmt, s=f"{self.width}x{self.height}", r=self.fps
        )
        streams = [video.video]
        if self.width % 2 or self.height % 2:
            # yuv420p needs even sides: drop the odd last row/column rather than scale.
            streams = [video.video.filter("crop", "trunc(iw/2)*2", "trunc(ih/2)*2")]
        if self.audio_path is not None:
            audio_input = (
                ffmpeg.input(str(self._audio_wav), itsoffset=self.audio_offset_s)
                if self.audio_offset_s
                else ffmpeg.input(str(self._audio_wav))
            )
            streams.append(audio_input.audio)
        output_args = {
            **self._picture_codec_args(),
            "r": self.fps,
            "movflags": "+faststart+use_metadata_tags",  # custom keys such as generator
            "map_metadata": -1,
        }
        if self.qp is not None:
            output_args["qp"] = self.qp
        else:
            output_args["crf"] = self.crf
            if self.max_bitrate:
                output_args.update({"maxrate": self.max_bitrate, "bufsize": _doubled(self.max_bitrate)})
        if self.audio_path is not None:
            output_args.update({"acodec": "aac", "audio_bitrate": self.audio_bitrate})
            if self.audio_sample_rate:
                output_args["ar"] = self.audio_sample_rate
            if self.audio_channels:
                output_args["ac"] = self.audio_channels
        # Global (container) tags: the AI disclosure travels with the file itself.
        for index, (key, value) in enumerate(self.metadata.items()):
            output_args[f"metadata:g:{index}"] = f"{key}={value}"
        encode_to = self._tmp_path
        if self.audio_track is not None:
            # The picture alone now; the MP4 (faststart, tags) is made at close() with the track.
            self._video_only = encode_to = self._tmp_path.with_suffix(".video.mp4")
            for key in [key for key in output_args if key.startswith("metadata:g:")]:
                del output_args[key]
            del output_args["movflags"]
        stream = ffmpeg.output(*streams, str(encode_to), format="mp4", **output_args)
        stream = stream.global_args("-nostdin", "-hide_banner", "-loglevel", "error")
        args = stream.overwrite_output().compile(cmd=ffmpeg_executable())
        self._log = tempfile.TemporaryFile()
        # An argument list, never a shell string: nothing from a manifest reaches a shell.
        self._process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)

    def write(self, frame: np.ndarray) -> None:
        if self._process is None:
            raise RuntimeError("VideoWriter.write() before open()")
        expected = (self.height, self.width, 3) if self.input_pix_fmt == "rgb24" else (self.height * 3 // 2, self.width)
        if frame.shape != expected or frame.dtype != np.uint8:
            raise ValueError(f"frame {self.frames_written} is {frame.shape} {frame.dtype}; expected {expected} uint8")
        if self.frames_written >= self.num_frames:
            raise ValueError(f"more frames than the {self.num_frames} the audio needs")
        try:
            # The array's own buffer (no copy of a 6 MB frame); write() returns when it is all in the pipe.
            self._process.stdin.write(np.ascontiguousarray(frame).data)
        except BrokenPipeError:
            raise OutputError(f"ffmpeg stopped while encoding: {self._ffmpeg_log()}") from None
        self.frames_written += 1

    def close(self) -> Path:
        """Finish the file; raise (and leave nothing) if the frame count is wrong or ffmpeg failed."""
        if self.frames_written != self.num_frames:
            self.abort()
            raise SonicCatalogError(
                f"generator produced {self.frames_written} frames, the audio needs {self.num_frames}"
            )
        process = self._process
        try:
            process.stdin.close()
        except BrokenPipeError:
            pass
        code = process.wait()
        if code != 0:
            message = self._ffmpeg_log()
            self.abort()
            raise OutputError(f"ffmpeg failed (exit {code}): {message}")
        if self.qp is not None and self.max_bitrate:
            try:
                self._keep_under_cap(self._video_only or self._tmp_path)
            except BaseException:
                self.abort()
                raise
        if self.audio_track is not None:
            try:
                self._mux_audio_track()
            except BaseException:
                self.abort()
                raise
        try:
            os.replace(self._tmp_path, self.out_path)
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write {self.out_path}: {exc.strerror or exc}") from None
        self._cleanup()
        return self.out_path

    def _picture_codec_args(self) -> dict:
        """ffmpeg's output options for the picture: H.264 High, yuv420p, the preset and x264 options."""
        args = {"vcodec": "libx264", "pix_fmt": "yuv420p", "profile:v": "high", "preset": self.preset}
        if self.x264_params:
            args["x264-params"] = self.x264_params
        return args

    def _keep_under_cap(self, encoded: Path) -> None:
        """Encode the picture again at `crf` under a VBV cap if any second of it exceeds `max_bitrate`."""
        import ffmpeg

        from sonic_model.video_reader import peak_video_bitrate

        cap = _bits_per_second(self.max_bitrate)
        if peak_video_bitrate(encoded) <= cap:
            return
        capped = temporary_beside(self.out_path, ".capped.mp4")
        try:
            # Half the cap as the VBV rate and half as its buffer: the bits of any one second are
            # at most the buffer plus one second at the rate, the cap (a buffer of twice the rate,
            # as the master has, lets a second carry up to three times the rate).
            half = str(round(cap / 2))
            output_args = {
                "c": "copy",
                **self._picture_codec_args(),
                "crf": self.crf,
                "maxrate": half,
                "bufsize": half,
                "map_metadata": 0,
                "movflags": "+faststart+use_metadata_tags",
            }
            stream = ffmpeg.input(str(encoded))
            streams = [stream.video] + ([stream.audio] if self.audio_path is not None else [])
            args = (
                ffmpeg.output(*streams, str(capped), format="mp4", **output_args)
                .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
                .overwrite_output()
                .compile(cmd=ffmpeg_executable())
            )
            done = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if done.returncode != 0:
                raise OutputError(
                    f"ffmpeg failed encoding under the {self.max_bitrate} cap (exit {done.returncode}): "
                    f"{_ffmpeg_error(done.stderr)}"
                )
            os.replace(capped, encoded)
        finally:
            capped.unlink(missing_ok=True)
        self.reencoded_under_cap = True

    def _mux_audio_track(self) -> None:
        """The encoded picture and a copy of the shared sound into the MP4 (faststart, the tags)."""
        import ffmpeg

        track = self.audio_track.wait()
        output_args = {"c": "copy", "movflags": "+faststart+use_metadata_tags", "map_metadata": -1}
        for index, (key, value) in enumerate(self.metadata.items()):
            output_args[f"metadata:g:{index}"] = f"{key}={value}"
        picture, sound = ffmpeg.input(str(self._video_only)), ffmpeg.input(str(track))
        stream = ffmpeg.output(picture.video, sound.audio, str(self._tmp_path), format="mp4", **output_args)
        stream = stream.global_args("-nostdin", "-hide_banner", "-loglevel", "error")
        args = stream.overwrite_output().compile(cmd=ffmpeg_executable())
        done = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode != 0:
            raise OutputError(f"ffmpeg failed muxing the sound (exit {done.returncode}): {_ffmpeg_error(done.stderr)}")

    def abort(self) -> None:
        """Stop ffmpeg and remove the partial file."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self._tmp_path is not None:
            self._tmp_path.unlink(missing_ok=True)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._process is not None and self._process.stdin and not self._process.stdin.closed:
            try:
                self._process.stdin.close()
            except BrokenPipeError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._audio_wav is not None:
            self._audio_wav.unlink(missing_ok=True)
            self._audio_wav = None
        if self._video_only is not None:
            self._video_only.unlink(missing_ok=True)
            self._video_only = None
        self._process = None
        self._tmp_path = None

    def _ffmpeg_log(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else "(no message)"
