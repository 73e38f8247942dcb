"""Use cases: one module each, one database transaction each."""
