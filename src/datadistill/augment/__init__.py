"""Differentiable augmentation: DSA (Siamese: one parameter draw applied to real and synthetic)."""
from .dsa import DEFAULT_STRATEGY, OPS, DSAConfig, DSAParams, apply, augment, sample

__all__ = ["DEFAULT_STRATEGY", "OPS", "DSAConfig", "DSAParams", "apply", "augment", "sample"]
