"""Explainers: each returns numpy arrays and small dataclasses; nothing here writes files."""
