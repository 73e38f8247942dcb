"""What every use case needs: the database and the programs."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from pricing.errors import ProgramNotFound
from pricing.program import Program
from server.metrics import Metrics
from server.store.db import Database
from server.store.secrets import secret as stored_secret


@dataclass(frozen=True)
class Deps:
    db: Database
    programs: Mapping[str, Program]
    metrics: Metrics = field(default_factory=Metrics)
    # Keys read once from the database (server/store/secrets.py), by name.
    secrets: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def secret(self, name: str) -> bytes:
        found = self.secrets.get(name)
        if found is None:
            found = self.secrets[name] = self.db.read(lambda c: stored_secret(c, name))
        return found

    def program(self, program_id: str) -> Program:
        try:
            return self.programs[program_id]
        except KeyError:
            raise ProgramNotFound(program_id) from None
