"""What every use case needs: the database and the programs."""

from collections.abc import Mapping
from dataclasses import dataclass

from pricing.errors import ProgramNotFound
from pricing.program import Program
from server.store.db import Database


@dataclass(frozen=True)
class Deps:
    db: Database
    programs: Mapping[str, Program]

    def program(self, program_id: str) -> Program:
        try:
            return self.programs[program_id]
        except KeyError:
            raise ProgramNotFound(program_id) from None
