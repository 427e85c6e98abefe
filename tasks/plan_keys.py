"""The content keys a run's plan computes for 100,000 rows, fast: `KeyMaker`.

A row's content key (`tasks.records.content_key`) has two parts the plan tells apart: the
*frames key* (inputs, generator, version, parameters: what the frames are made from) and the
captions sources (the script's hash, the captions_uri file's SHA-256), which join the key only
when a row has them. A published row whose frames key is unchanged but whose whole key is not
gets its captions updated (`tasks.captions_update`), not rendered again.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import TYPE_CHECKING

from tasks.records import content_key, frames_key, key_params

if TYPE_CHECKING:
    from tasks.plan import PlanSettings

_HEX = re.compile(r"[0-9a-f]{64}")


class KeyMaker:
    """`tasks.records.content_key` and `frames_key` for one run's generator and one set of
    parameters (and one script), with the part that is the same for every row serialised once.

    The material is the same JSON text `content_key` hashes, keys sorted (the test
    `test_content_keys_match_the_renderer_s` holds the two together), so the keys are equal.
    """

    def __init__(
        self,
        settings: PlanSettings,
        params: dict,
        script_sha256: str | None = None,
        *,
        has_captions: bool | None = None,
    ) -> None:
        # What content_key hashes (`key_params`): not which parameters were explicit, nor
        # `burn_captions` where it changes nothing. `has_captions`: the row has a script or a
        # captions file (default: a script given here); `with_script` keeps it, so a maker is
        # shared only by rows alike in it (`tasks.plan._params` keys its cache by it).
        self.has_captions = script_sha256 is not None if has_captions is None else has_captions
        self.all_params = params
        params = key_params(params, has_captions=self.has_captions)
        # Whether these keys have captions burned into renditions (`key_params` kept the switch).
        self.burns = bool(params.get("burn_captions"))
        self.settings, self.params = settings, params
        # The renditions a published row with these parameters has beside its master.
        self.renditions = tuple(name for name in params.get("renditions") or () if name != "master")
        fixed = {"generator": settings.generator, "generator_version": settings.generator_version, "params": params}
        middle = json.dumps(fixed, sort_keys=True)[1:-1].replace("%", "%%")
        self._frames = '{"audio_sha256": "%s", ' + middle + ', "portrait_sha256": "%s"}'
        self._set_script(script_sha256)

    def _set_script(self, script_sha256: str | None) -> None:
        # "script_sha256" sorts last, "captions_file_sha256" second; each only when the row has it.
        self.script_sha256 = script_sha256
        script = "" if script_sha256 is None else f', "script_sha256": "{script_sha256}"'
        self._plain = self._frames[:-1] + script + "}"
        self._with_file = self._plain.replace('"%s", ', '"%s", "captions_file_sha256": "%s", ', 1)

    def with_script(self, script_sha256: str | None) -> KeyMaker:
        """The same key maker for a row with this script (its templates only: a few microseconds)."""
        other = copy.copy(self)
        other._set_script(script_sha256)
        return other

    def flipped_burn(self) -> KeyMaker:
        """The key maker for these parameters with `burn_captions` the other way (same script):
        a published key equal to its key means only the burning changed."""
        params = {**self.all_params, "burn_captions": not self.all_params.get("burn_captions")}
        return KeyMaker(self.settings, params, has_captions=self.has_captions).with_script(self.script_sha256)

    def __call__(self, portrait_sha256: str, audio_sha256: str, captions_file_sha256: str | None = None) -> str:
        """The whole content key (captions sources included)."""
        if not (_HEX.fullmatch(portrait_sha256 or "") and _HEX.fullmatch(audio_sha256 or "")) or not (
            captions_file_sha256 is None or _HEX.fullmatch(captions_file_sha256)
        ):
            return self._slow(portrait_sha256, audio_sha256, self.script_sha256, captions_file_sha256)
        if captions_file_sha256 is None:
            material = self._plain % (audio_sha256, portrait_sha256)
        else:
            material = self._with_file % (audio_sha256, captions_file_sha256, portrait_sha256)
        return hashlib.sha256(material.encode("utf-8")).hexdigest()

    def frames(self, portrait_sha256: str, audio_sha256: str) -> str:
        """The frames key: the content key without the captions sources."""
        if not (_HEX.fullmatch(portrait_sha256 or "") and _HEX.fullmatch(audio_sha256 or "")):
            return frames_key(
                portrait_sha256=portrait_sha256,
                audio_sha256=audio_sha256,
                generator=self.settings.generator,
                generator_version=self.settings.generator_version,
                params=self.params,
                has_captions=self.has_captions,
            )
        return hashlib.sha256((self._frames % (audio_sha256, portrait_sha256)).encode("utf-8")).hexdigest()

    def _slow(self, portrait_sha256, audio_sha256, script_sha256, captions_file_sha256) -> str:
        return content_key(
            portrait_sha256=portrait_sha256,
            audio_sha256=audio_sha256,
            generator=self.settings.generator,
            generator_version=self.settings.generator_version,
            params=self.params,
            script_sha256=script_sha256,
            captions_file_sha256=captions_file_sha256,
        )
