#!/usr/bin/env python3
"""Streams one generation from a kvserve server with the kvserve Python client.

The client is clients/python (package `kvserve`): installed with `pip install ./clients/python`,
or used from this checkout as it is (this script puts clients/python on sys.path). It needs
grpcio and protobuf: Debian's /usr/bin/python3 has them with python3-grpcio python3-protobuf.

    kvserve serve &                      # the default model (trained on War and Peace) on port 50051
    /usr/bin/python3 examples/python/generate.py --prompt "Hello" --max-tokens 32
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))

try:
    import kvserve
except ImportError as e:  # kvserve.MissingGrpcError names the interpreter and the fix
    sys.exit(f"generate.py: {e}")


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

    last = None
    with kvserve.Client(args.target, timeout=args.timeout) as client:
        try:
            for delta in client.generate(args.prompt, max_tokens=args.max_tokens,
                                         temperature=args.temperature, stop=args.stop,
                                         ignore_eos=args.ignore_eos):
                sys.stdout.write(delta.text)
                sys.stdout.flush()
                last = delta
        except kvserve.KvserveError as e:
            print(f"\nerror: {e.code}: {e.details}", file=sys.stderr)
            return 1
    usage = last.usage
    print(f"\n[finish_reason={last.finish_reason.upper()} prompt_tokens={usage['prompt_tokens']} "
          f"completion_tokens={usage['completion_tokens']} "
          f"ttft={last.timings['time_to_first_token_seconds']:.3f}s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
