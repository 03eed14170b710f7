"""External, order-book and esoteric features."""
