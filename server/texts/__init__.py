"""What the service says to shoppers, in their language (SPEC §10)."""
