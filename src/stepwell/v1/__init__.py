"""Generated protobuf and gRPC code for the stepwell.v1 contracts (do not edit)."""
