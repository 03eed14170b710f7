"""External-factor (ExF) HTTP clients: Binance USDT-M, Deribit DVOL, alternative.me F&G."""
