"""Our Sonic inference: loads the official release weights, reproduces the public implementation
stage by stage (see `parity`), and renders through the generator protocol (`SonicGenerator`)."""

from sonic_model.sonic.generator import SonicGenerator
from sonic_model.sonic.parity import StageResult, format_parity_table, run_parity
from sonic_model.sonic.pipeline import SonicPipeline, SonicSettings

__all__ = ["SonicGenerator", "SonicPipeline", "SonicSettings", "StageResult", "format_parity_table", "run_parity"]
