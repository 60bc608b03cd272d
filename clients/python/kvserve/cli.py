"""kvserve-client (also `python3 -m kvserve`): the Python client's calls from a shell.

    kvserve-client generate "Prince Andrew" --max-tokens 32
    kvserve-client chat "Who is Natasha?"
    kvserve-client tokenize "War and Peace"
    kvserve-client info
"""
import argparse
import json
import sys


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="kvserve-client", description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="localhost:50051", help="server host:port")
    parser.add_argument("--api-key", default=None, help="the server's --api-key")
    parser.add_argument("--tls-ca", default=None, help="CA certificate (PEM): connect with TLS")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per call")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, what in (("generate", "stream the continuation of a prompt"),
                       ("chat", "stream the reply to one user message")):
        p = commands.add_parser(name, help=what)
        p.add_argument("text")
        p.add_argument("--max-tokens", type=int, default=64)
        p.add_argument("--temperature", type=float, default=None)
        p.add_argument("--seed", type=int, default=None)
        p.add_argument("--stop", action="append", default=[])
        p.add_argument("--ignore-eos", action="store_true", default=None)
        p.add_argument("--json", action="store_true", help="one JSON object per delta")
        if name == "chat":
            p.add_argument("--system", default=None, help="a system message first")
    p = commands.add_parser("tokenize", help="token ids of a text")
    p.add_argument("text")
    p.add_argument("--add-special-tokens", action="store_true", default=None)
    commands.add_parser("info", help="the model's and the server's info as JSON")
    return parser.parse_args(argv)


def stream(deltas, as_json, out):
    last = None
    for delta in deltas:
        if as_json:
            fields = {k: v for k, v in vars(delta).items() if k != "logprobs"}
            out.write(json.dumps(fields) + "\n")
        else:
            out.write(delta.text)
        out.flush()
        last = delta
    if not as_json:
        out.write("\n")
        if last is not None and last.finish_reason:
            print(f"[{last.finish_reason}: {last.usage['prompt_tokens']} prompt + "
                  f"{last.usage['completion_tokens']} generated tokens]", file=sys.stderr)


def main(argv=None, out=sys.stdout):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import kvserve
    except ImportError as e:  # MissingGrpcError says what to do
        print(f"kvserve-client: {e}", file=sys.stderr)
        return 2
    client = kvserve.Client(args.target, api_key=args.api_key, tls_ca=args.tls_ca,
                            timeout=args.timeout)
    try:
        if args.command in ("generate", "chat"):
            sampling = dict(max_tokens=args.max_tokens, temperature=args.temperature,
                            seed=args.seed, stop=args.stop, ignore_eos=args.ignore_eos)
            if args.command == "generate":
                deltas = client.generate(args.text, **sampling)
            else:
                messages = ([{"role": "system", "content": args.system}] if args.system else [])
                messages.append({"role": "user", "content": args.text})
                deltas = client.chat(messages, **sampling)
            stream(deltas, args.json, out)
        elif args.command == "tokenize":
            ids = client.tokenize(args.text, add_special_tokens=args.add_special_tokens)
            out.write(json.dumps({"ids": ids}) + "\n")
        else:
            out.write(json.dumps({"model": client.model_info(),
                                  "server": client.server_info()}) + "\n")
    except kvserve.KvserveError as e:
        print(f"kvserve-client: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
