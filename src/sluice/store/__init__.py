"""Object storage with one global revision and watch fan-out (SQLite backend)."""
