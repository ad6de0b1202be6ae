"""Generated protobuf and gRPC stubs of the akidb.v1 API (see generate.py)."""
