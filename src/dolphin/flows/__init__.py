"""Prefect flows: thin entry points for the slow work (STYLE.md §8); never the hot loop."""
