"""Generated gRPC stubs of kvserve.v1 (clients/python/generate_stubs.py writes them)."""
