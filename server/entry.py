"""The `loyalty-server` console script.

gRPC core writes its own plain-text lines to stderr (a busy port is one, before the
server's own), which would break the one-JSON-object-per-line log; the server logs
what matters itself. GRPC_VERBOSITY is read when gRPC is imported, so it is set
here, before `server.main` imports it; an operator's own setting wins.
"""

import os
import sys


def main() -> None:
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from server.main import main as run  # after the variable is set

    sys.exit(run())
