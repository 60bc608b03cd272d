"""Python client of the kvserve LLM inference server (gRPC, kvserve.v1.Generation).

    import kvserve
    with kvserve.Client("localhost:50051") as client:
        for delta in client.generate("Prince Andrew", max_tokens=32):
            print(delta.text, end="", flush=True)
        print(client.tokenize("Natasha"), client.model_info()["name"])

kvserve.AsyncClient has the same calls for asyncio (grpc.aio). The generated stubs are
kvserve.v1.generation_pb2 / generation_pb2_grpc. `python3 -m kvserve --help` (or the
kvserve-client script) is a command line over the same calls.

Importing this package without grpcio or protobuf raises kvserve.MissingGrpcError (an
ImportError) that says which interpreter lacks them and how to get them.
"""
from kvserve._grpc_import import MissingGrpcError  # noqa: F401
from kvserve.client import Client, Delta, KvserveError  # noqa: F401
from kvserve.aio import AsyncClient  # noqa: F401

__version__ = "0.1.0"
__all__ = ["Client", "AsyncClient", "Delta", "KvserveError", "MissingGrpcError"]
