"""What happened, kept: the hash-chained SQLite ledger (``chain``) and the session trade log
(``tradelog``: fills, denials)."""
