"""What the service says to shoppers, in their language (docs/rules.md §10)."""
