"""Core types shared by every layer: errors, configs, records, clock."""
