"""Importing this module registers every dataset source in `DATASETS`."""
from . import bundled, cifar, folder, idx, tensors  # noqa: F401
