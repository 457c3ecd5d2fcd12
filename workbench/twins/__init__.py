"""Trained twins: small real-family models trained on probe scenes (see docs/twins.md)."""
