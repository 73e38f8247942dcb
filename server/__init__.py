"""The loyalty service: gRPC servicers, use cases, persistence, configuration."""
