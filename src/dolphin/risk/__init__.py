"""Risk layer: ACB v6 (survival and forewarner arrive separately)."""
