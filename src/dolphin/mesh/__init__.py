"""The mesh: DOLPHIN's services run as supervised OS processes (``dolphin mesh``)."""
