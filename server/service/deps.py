"""What every use case needs: the database and the programs."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from pricing.errors import ProgramNotFound
from pricing.program import Program
from server.metrics import Metrics
from server.store.db import Database


@dataclass(frozen=True)
class Deps:
    db: Database
    programs: Mapping[str, Program]
    metrics: Metrics = field(default_factory=Metrics)

    def program(self, program_id: str) -> Program:
        try:
            return self.programs[program_id]
        except KeyError:
            raise ProgramNotFound(program_id) from None
