"""Reference threaded TCP chat server and client that store every message in SQLite (PFO 1)."""

__version__ = "0.1.0"
