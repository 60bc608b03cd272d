#!/usr/bin/python3
"""Regenerates the checked-in gRPC stubs of the Python client from proto/ (the wire contract).

    clients/python/generate_stubs.py          # rewrites kvserve/v1/generation_pb2*.py
    clients/python/generate_stubs.py --check  # exit 1 if they differ from what proto/ gives

Uses protoc and grpc_python_plugin (Debian: protobuf-compiler, protobuf-compiler-grpc, the same
tools the CMake build generates the C++ and test stubs with). The stubs are checked in so that
`pip install ./clients/python` needs neither tool; the ctest `python_client_stubs_current` runs
--check, so a change to the .proto without regenerating fails CI.
"""
import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "..", "proto")
PROTOS = ["kvserve/v1/generation.proto"]
OUTPUTS = ["kvserve/v1/generation_pb2.py", "kvserve/v1/generation_pb2_grpc.py"]


def generate(out_dir, protoc, plugin):
    for proto in PROTOS:
        subprocess.run([protoc, "-I", PROTO_ROOT, f"--python_out={out_dir}",
                        f"--grpc_python_out={out_dir}",
                        f"--plugin=protoc-gen-grpc_python={plugin}",
                        os.path.join(PROTO_ROOT, proto)], check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare instead of writing; exit 1 when out of date")
    parser.add_argument("--protoc", default=shutil.which("protoc") or "protoc")
    parser.add_argument("--plugin", default=shutil.which("grpc_python_plugin")
                        or "/usr/bin/grpc_python_plugin")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, args.protoc, args.plugin)
        stale = []
        for rel in OUTPUTS:
            fresh, checked_in = os.path.join(tmp, rel), os.path.join(HERE, rel)
            if not os.path.exists(checked_in) or not filecmp.cmp(fresh, checked_in, shallow=False):
                stale.append(rel)
                if not args.check:
                    shutil.copyfile(fresh, checked_in)
    if args.check and stale:
        print("out of date with proto/ (run clients/python/generate_stubs.py): "
              + ", ".join(stale), file=sys.stderr)
        return 1
    print("regenerated: " + ", ".join(stale) if stale else "stubs are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
