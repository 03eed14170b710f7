"""Prefect adapter: the local Prefect server (``prefect server start``, SQLite), a child."""
