"""Turn rollouts into what trainers consume: Tinker datums, slime samples, SFT rows.

Plain Python, NumPy and Arrow; the trainer packages themselves are optional.
"""

from hud_ray.adapters._segments import Segment, row_segments, segments, table_segments
from hud_ray.adapters.sft import sft_rows
from hud_ray.adapters.slime import flat_samples, slime_groups, write_debug_rollouts
from hud_ray.adapters.tinker import LOSS_KEYS, TinkerDatum, tinker_datums

__all__ = ["LOSS_KEYS", "Segment", "TinkerDatum", "flat_samples", "row_segments", "segments",
           "sft_rows", "slime_groups", "table_segments", "tinker_datums",
           "write_debug_rollouts"]
