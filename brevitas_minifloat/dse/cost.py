"""Old import path of the analytic MAC cost model; it lives in `brevitas_minifloat.hw.analytic`."""

from brevitas_minifloat.hw import analytic as _home
from brevitas_minifloat.hw.analytic import *  # noqa: F403

__all__ = _home.__all__
