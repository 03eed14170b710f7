"""What a person reads: the self-contained HTML backtest and sweep reports."""
