"""Generated protobuf and gRPC code for package ``loyalty.v1``.

Regenerate with ``make protos`` from the repository root; do not edit the
``*_pb2*`` files by hand.
"""
