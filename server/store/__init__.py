"""Persistence: SQLAlchemy Core tables, queries per aggregate, engines and migrations."""
