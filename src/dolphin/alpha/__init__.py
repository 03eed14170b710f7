"""Alpha engine: signal, DC, IRP, sizing, exits, fees (Bible §4–§8, §13)."""
