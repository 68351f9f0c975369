"""Placeholder: dataset sources are registered here."""
