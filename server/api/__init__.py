"""gRPC edge: servicers, proto ↔ domain translation, and the one error table."""
