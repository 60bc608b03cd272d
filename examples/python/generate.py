#!/usr/bin/env python3
"""Streams one generation from a kvserve server with grpcio.

The client code is generated from proto/kvserve/v1/generation.proto at build time into
build/proto/python (set KVSERVE_PROTO_PYTHON to use another place). Needs grpcio and protobuf
(Debian: python3-grpcio python3-protobuf).

    kvserve serve &                      # demo model on port 50051
    python3 examples/python/generate.py --prompt "Hello" --max-tokens 32
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("KVSERVE_PROTO_PYTHON",
                                  os.path.join(HERE, "..", "..", "build", "proto", "python")))

import grpc  # noqa: E402
from kvserve.v1 import generation_pb2 as pb  # noqa: E402
from kvserve.v1 import generation_pb2_grpc as pb_grpc  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="localhost:50051")
    parser.add_argument("--prompt", default="Hello")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--stop", action="append", default=[])
    parser.add_argument("--ignore-eos", action="store_true")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    stub = pb_grpc.GenerationStub(grpc.insecure_channel(args.target))
    request = pb.GenerateRequest(
        prompt=args.prompt, max_tokens=args.max_tokens, stop=args.stop,
        ignore_eos=args.ignore_eos, sampling=pb.SamplingParams(temperature=args.temperature))
    last = None
    try:
        for message in stub.Generate(request, timeout=args.timeout):
            sys.stdout.write(message.text)
            sys.stdout.flush()
            last = message
    except grpc.RpcError as e:
        print(f"\nerror: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    reason = pb.FinishReason.Name(last.finish_reason).replace("FINISH_REASON_", "")
    print(f"\n[finish_reason={reason} prompt_tokens={last.usage.prompt_tokens} "
          f"completion_tokens={last.usage.completion_tokens} "
          f"ttft={last.timings.time_to_first_token_seconds:.3f}s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
