"""Imports grpc and protobuf, or says in one sentence how to get them."""
import sys

MISSING_HINT = (
    "the kvserve client needs grpcio and protobuf, which this Python ({exe}) does not have "
    "(No module named '{name}'). Use Debian's interpreter, /usr/bin/python3, with its packages "
    "(apt-get install python3-grpcio python3-protobuf), or install them into this one: "
    "{exe} -m pip install grpcio protobuf")


class MissingGrpcError(ImportError):
    """grpcio or protobuf is not importable by the running interpreter."""


def require():
    """Returns the grpc module; raises MissingGrpcError with the hint when it is missing."""
    try:
        import grpc  # noqa: F401
        import google.protobuf  # noqa: F401
    except ModuleNotFoundError as e:
        raise MissingGrpcError(MISSING_HINT.format(exe=sys.executable, name=e.name)) from e
    return grpc
