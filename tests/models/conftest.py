"""Fixtures for the model tests live in tests/conftest.py (probe_clip, the isolated cache)."""
