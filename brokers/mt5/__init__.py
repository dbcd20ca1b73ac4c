"""MetaTrader 5: the terminal agent and its pure parts (no Django here)."""
