"""What happened, kept: the independent session trade log (``tradelog``: fills, denials)."""
