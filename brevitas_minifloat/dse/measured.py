"""Old import path of the DSE's measured MAC column; it lives in `brevitas_minifloat.hw.folded`."""

from brevitas_minifloat.hw import folded as _home
from brevitas_minifloat.hw.folded import *  # noqa: F403

__all__ = _home.__all__
