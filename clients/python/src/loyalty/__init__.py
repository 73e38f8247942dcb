"""Client stubs for the loyalty checkout pricing service."""
