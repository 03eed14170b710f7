"""Shared test kit: paths to the real data, builders of small frames, closeness helpers."""
