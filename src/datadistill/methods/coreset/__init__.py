"""Coreset (selection) baselines."""
