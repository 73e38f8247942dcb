"""The keys the service keeps in its database (made by migration 0005_hardening)."""

from sqlalchemy import Connection, select

from server.store.schema import service_secrets


def secret(connection: Connection, name: str) -> bytes:
    query = select(service_secrets.c.secret).where(service_secrets.c.name == name)
    return bytes(connection.execute(query).scalar_one())
