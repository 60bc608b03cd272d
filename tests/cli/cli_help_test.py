#!/usr/bin/python3
"""`kvserve COMMAND --help` and unknown flags, driven as a user would.

The flags each command must list are written out here by hand (from what each command reads),
not taken from the binary; a second check parses every ABSL_FLAG in server/cli/ so that a new
flag that no help page lists fails this test.

Usage: cli_help_test.py --kvserve BIN [unittest args]   (or KVSERVE_BIN in the environment)
"""
import os
import re
import subprocess
import sys
import unittest

KVSERVE_BIN = os.environ.get("KVSERVE_BIN", "kvserve")
SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

MODEL = {"model", "offline", "weight-dtype"}
CLIENT_TLS = {"tls-ca", "tls-client-cert", "tls-client-key", "tls-server-name"}
EXPECTED = {
    "serve": MODEL | {
        "max-num-seqs", "max-num-batched-tokens", "max-queued-requests", "enable-prefix-caching",
        "kv-cache-dtype", "kv-cache-memory", "kv-page-size", "host", "grpc-port", "http-port",
        "http-io-threads", "http-max-connections", "http-max-header-bytes", "http-max-body-bytes",
        "http-header-timeout", "http-body-timeout", "http-idle-timeout", "api-key", "tls-cert",
        "tls-key", "tls-client-ca", "drain-timeout", "debug-step-delay-ms"},
    "generate": MODEL | {
        "prompt", "prompt-ids", "prompt-ids-file", "max-tokens", "temperature", "seed",
        "ignore-eos", "max-num-seqs", "max-num-batched-tokens", "enable-prefix-caching",
        "kv-cache-dtype", "kv-pages"},
    "tokenize": MODEL | {"add-special-tokens"},
    "logits": MODEL | {"prompt-ids", "kv-cache-dtype", "out"},
    "client": CLIENT_TLS | {
        "target", "timeout", "prompt", "prompt-ids", "max-tokens", "temperature", "seed",
        "ignore-eos", "stop", "logprobs", "json", "info"},
    "health": CLIENT_TLS | {"target", "service", "timeout"},
}


def run(*args):
    return subprocess.run([KVSERVE_BIN, *args], capture_output=True, text=True, timeout=30)


def listed_flags(help_text):
    return set(re.findall(r"^  --([a-z0-9-]+)", help_text, re.M))


def sections(help_text):
    """{group title: [flag, ...]} of a help page."""
    groups, current = {}, None
    for line in help_text.splitlines():
        heading = re.match(r"^([A-Z][^:]*):$", line)
        if heading:
            current = groups.setdefault(heading[1], [])
        elif current is not None:
            flag = re.match(r"^  --([a-z0-9-]+)", line)
            if flag:
                current.append(flag[1])
    return groups


class HelpTest(unittest.TestCase):
    def test_every_command_lists_its_flags_and_exits_0(self):
        for command, expected in EXPECTED.items():
            for spelling in ("--help", "-h"):
                with self.subTest(command=command, spelling=spelling):
                    r = run(command, spelling)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertIn(f"usage: kvserve {command}", r.stdout)
                    self.assertEqual(listed_flags(r.stdout), expected)
                    self.assertNotIn("No flags matched", r.stdout + r.stderr)

    def test_serve_groups_its_flags(self):
        groups = sections(run("serve", "--help").stdout)
        self.assertIn("model", groups["Model"])
        self.assertIn("max-num-seqs", groups["Scheduling"])
        self.assertIn("kv-cache-memory", groups["KV cache"])
        self.assertIn("grpc-port", groups["Network"])
        self.assertIn("http-port", groups["Network"])
        self.assertIn("api-key", groups["Security"])
        self.assertIn("tls-cert", groups["Security"])

    def test_defaults_are_shown(self):
        serve = run("serve", "--help").stdout
        self.assertRegex(serve, r"--grpc-port=INT  \(default 50051\)")
        self.assertRegex(serve, r"--http-port=INT  \(default 8080\)")
        self.assertRegex(serve, r'--kv-cache-memory=TEXT  \(default "auto"\)')
        self.assertRegex(serve, r'--kv-cache-dtype=TEXT  \(default "f16"\)')
        self.assertRegex(serve, r"--enable-prefix-caching  \(default true\)")
        client = run("client", "--help").stdout
        self.assertRegex(client, r'--target=TEXT  \(default "localhost:50051"\)')
        self.assertRegex(client, r"--max-tokens=INT  \(default 16\)")

    def test_help_is_found_after_other_flags(self):
        r = run("tokenize", "--model", "x.gguf", "--noadd-special-tokens", "--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("usage: kvserve tokenize", r.stdout)

    def test_every_flag_defined_in_the_cli_is_on_some_page(self):
        defined = set()
        cli = os.path.join(SOURCE, "server", "cli")
        for name in os.listdir(cli):
            if name.endswith(".cc"):
                with open(os.path.join(cli, name)) as f:
                    defined |= set(re.findall(r"ABSL_FLAG\(\s*[\w:<>]+,\s*(\w+)", f.read()))
        self.assertTrue(defined)
        listed = set()
        for command in EXPECTED:
            listed |= listed_flags(run(command, "--help").stdout)
        self.assertEqual({d.replace("_", "-") for d in defined} - listed, set())

    def test_top_level_help(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        for command in EXPECTED:
            self.assertIn(command, r.stderr)


class UnknownFlagTest(unittest.TestCase):
    def test_a_typo_names_itself_and_the_nearest_flag(self):
        for args, wrong, nearest in ((("serve", "--grpc-prot", "1"), "--grpc-prot", "--grpc-port"),
                                     (("serve", "--kv-cache-mem=1G"), "--kv-cache-mem",
                                      "--kv-cache-memory"),
                                     (("generate", "--max_token", "3"), "--max-token",
                                      "--max-tokens"),
                                     (("health", "--targte=x:1"), "--targte", "--target")):
            with self.subTest(args=args):
                r = run(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(f"unknown flag {wrong}.", r.stderr)
                self.assertIn(f"Did you mean {nearest}?", r.stderr)
                self.assertIn(f"kvserve {args[0]} --help", r.stderr)

    def test_a_flag_of_another_command_says_whose_it_is(self):
        r = run("serve", "--prompt", "hello")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown flag --prompt.", r.stderr)
        self.assertIn("`kvserve generate`", r.stderr)
        self.assertIn("`kvserve client`", r.stderr)

    def test_nothing_near_gets_no_wild_guess(self):
        r = run("health", "--completely-unrelated-thing")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown flag --completely-unrelated-thing.", r.stderr)
        self.assertNotIn("Did you mean", r.stderr)

    def test_unknown_command_suggests_the_nearest(self):
        r = run("serv")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command 'serv'; did you mean 'serve'?", r.stderr)

    def test_the_command_s_own_flags_and_arguments_pass_the_check(self):
        # The check lets them through; the command then fails on the missing model file.
        for args in (("generate", "--model", "/nonexistent/m.gguf", "--prompt", "hello",
                      "--noignore-eos"),
                     ("tokenize", "--model=/nonexistent/m.gguf", "some text")):
            with self.subTest(args=args):
                r = run(*args)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertNotIn("unknown flag", r.stderr)
                self.assertIn("/nonexistent/m.gguf", r.stderr)


if __name__ == "__main__":
    if "--kvserve" in sys.argv:
        i = sys.argv.index("--kvserve")
        KVSERVE_BIN = sys.argv[i + 1]
        del sys.argv[i:i + 2]
    unittest.main()
