"""Coreset (selection) baselines: each module registers one method under its CLI name
(file name with '_' for '-'). Herding, k-center and k-means share the feature space of `_common`."""
from . import best_of_random, class_mean, herding, kcenter, kmeans, random  # noqa: F401
