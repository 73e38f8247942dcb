"""End-to-end tests: a real `loyalty-server` process on SQLite and on PostgreSQL."""
