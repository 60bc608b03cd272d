"""Integration tests: the real `kvserve serve` binary driven by the Python grpcio client.

Each TestCase class is one ctest test (see CMakeLists.txt) with its own server.
"""
import concurrent.futures
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc
import numpy as np

import health_pb2
from kvserve.v1 import generation_pb2 as pb
from server_harness import KVSERVE_BIN, Server, collect, greedy_request

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def offline_generate(model, ids, max_tokens):
    """Greedy ids from `kvserve generate` (no server involved)."""
    out = subprocess.run(
        [KVSERVE_BIN, "generate", "--model", model, "--prompt-ids", ",".join(map(str, ids)),
         "--max-tokens", str(max_tokens), "--ignore-eos", "--weight-dtype", "f32"],
        check=True, capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])["ids"]


def offline_logits(model, ids, vocab):
    with tempfile.NamedTemporaryFile(suffix=".f32") as f:
        subprocess.run(
            [KVSERVE_BIN, "logits", "--model", model, "--prompt-ids", ",".join(map(str, ids)),
             "--out", f.name, "--weight-dtype", "f32"],
            check=True, capture_output=True, timeout=60)
        return np.fromfile(f.name, dtype=np.float32).reshape(len(ids), vocab)


class StreamingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.stub = cls.server.stub
        cls.vocab = cls.stub.GetModelInfo(pb.GetModelInfoRequest()).vocab_size

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def generate(self, request, timeout=60):
        return collect(self.stub.Generate(request, timeout=timeout))

    def test_health_serving_and_reflection_lists_the_service(self):
        self.assertEqual(self.server.health_status(""), SERVING)
        self.assertEqual(self.server.health_status("kvserve.v1.Generation"), SERVING)
        # Reflection, called with a hand-encoded ServerReflectionRequest{list_services: ""}
        # (Debian has no grpc_reflection module): field 7, empty string.
        call = self.server.channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        replies = list(call(iter([b"\x3a\x00"]), timeout=5))
        self.assertTrue(any(b"kvserve.v1.Generation" in r for r in replies))

    def test_model_info(self):
        info = self.stub.GetModelInfo(pb.GetModelInfoRequest())
        self.assertTrue(info.demo)
        self.assertEqual(info.vocab_size, 258)
        self.assertEqual(list(info.eos_token_ids), [257])
        self.assertEqual(info.context_length, 2048)
        self.assertEqual(info.weight_dtype, "f32")

    def test_tokenize_round_trips_text(self):
        text = "héllo, wörld ✓"
        r = self.stub.Tokenize(pb.TokenizeRequest(text=text))
        self.assertEqual(list(r.token_ids), [256] + list(text.encode()))
        back = self.stub.Tokenize(pb.TokenizeRequest(token_ids=pb.TokenIds(ids=r.token_ids)))
        self.assertEqual(back.text, text)
        with self.assertRaises(grpc.RpcError) as e:
            self.stub.Tokenize(pb.TokenizeRequest(token_ids=pb.TokenIds(ids=[1, 999])))
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("token_ids[1]", e.exception.details())

    def test_streamed_text_concatenates_to_the_decoded_tokens(self):
        ids, text, last = self.generate(greedy_request(48, prompt="The quick brown fox"))
        self.assertEqual(len(ids), 48)
        self.assertEqual(last.finish_reason, pb.FINISH_REASON_LENGTH)
        self.assertEqual(last.usage.completion_tokens, 48)
        self.assertEqual(last.usage.prompt_tokens, 1 + len("The quick brown fox"))
        self.assertGreater(last.timings.time_to_first_token_seconds, 0)
        decoded = self.stub.Tokenize(pb.TokenizeRequest(token_ids=pb.TokenIds(ids=ids))).text
        self.assertEqual(text, decoded)
        # Independent decoding: the demo vocabulary is bytes.
        self.assertEqual(text, bytes(i for i in ids if i < 256).decode("utf-8", "replace"))

    def test_greedy_tokens_equal_kvserve_generate(self):
        prompt = [256] + list(b"Once upon a time")
        ids, _, _ = self.generate(greedy_request(24, ids=prompt))
        self.assertEqual(ids, offline_generate(self.server.model_path, prompt, 24))

    def test_64_concurrent_streams_all_complete_correctly(self):
        prompts = [[256] + list(f"prompt number {k}".encode()) for k in range(4)]
        alone = [self.generate(greedy_request(16, ids=p))[0] for p in prompts]
        with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
            futures = [pool.submit(self.generate, greedy_request(16, ids=prompts[k % 4]))
                       for k in range(64)]
            results = [f.result() for f in futures]
        for k, (ids, text, last) in enumerate(results):
            self.assertEqual(ids, alone[k % 4], f"stream {k}")
            self.assertEqual(last.finish_reason, pb.FINISH_REASON_LENGTH)
        self.server.wait_idle()

    def test_logprobs_equal_log_softmax_of_the_logits(self):
        prompt = [256] + list(b"Logits, please")
        _, _, _ = None, None, None
        msgs = list(self.stub.Generate(greedy_request(3, ids=prompt, logprobs=5), timeout=60))
        first = next(m for m in msgs if m.token_ids)
        lp = first.logprobs[0]
        logits = offline_logits(self.server.model_path, prompt, self.vocab)[-1].astype(np.float64)
        log_softmax = logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
        chosen = first.token_ids[0]
        self.assertEqual(lp.chosen.token_id, chosen)
        self.assertEqual(chosen, int(np.argmax(logits)))  # greedy
        self.assertAlmostEqual(lp.chosen.logprob, log_softmax[chosen], delta=1e-4)
        order = np.argsort(-log_softmax, kind="stable")[:5]
        self.assertEqual([t.token_id for t in lp.top], [int(i) for i in order])
        for t in lp.top:
            self.assertAlmostEqual(t.logprob, log_softmax[t.token_id], delta=1e-4)
            self.assertEqual(t.token_bytes, bytes([t.token_id]) if t.token_id < 256 else b"")

    def test_each_invalid_field_is_named(self):
        def req(**kw):
            r = greedy_request(4, prompt="hi")
            for k, v in kw.items():
                if k.startswith("s_"):
                    setattr(r.sampling, k[2:], v)
                else:
                    setattr(r, k, v)
            return r

        cases = [
            (pb.GenerateRequest(max_tokens=4), "input"),
            (pb.GenerateRequest(prompt="", max_tokens=4), "prompt"),
            (greedy_request(4, ids=[1, 2, 300]), "prompt_token_ids[2]"),
            (greedy_request(4, ids=[-1]), "prompt_token_ids[0]"),
            (req(s_temperature=-1.0), "sampling.temperature"),
            (req(s_top_p=0.0), "sampling.top_p"),
            (req(s_top_p=1.01), "sampling.top_p"),
            (req(s_top_k=-2), "sampling.top_k"),
            (req(s_min_p=1.5), "sampling.min_p"),
            (req(s_repetition_penalty=0.0), "sampling.repetition_penalty"),
            (req(s_presence_penalty=2.5), "sampling.presence_penalty"),
            (req(s_frequency_penalty=-2.5), "sampling.frequency_penalty"),
            (req(logprobs=21), "logprobs"),
            (req(max_tokens=0), "max_tokens"),
        ]
        bad_bias = greedy_request(4, prompt="hi")
        bad_bias.sampling.logit_bias[999] = 1.0
        cases.append((bad_bias, "sampling.logit_bias"))
        empty_stop = greedy_request(4, prompt="hi", stop=["a", ""])
        cases.append((empty_stop, "stop[1]"))
        cases.append((greedy_request(4, prompt="hi", stop_token_ids=[258]), "stop_token_ids[0]"))
        for request, field in cases:
            with self.subTest(field=field):
                with self.assertRaises(grpc.RpcError) as e:
                    self.generate(request, timeout=10)
                self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                self.assertIn(field, e.exception.details())
        with self.assertRaises(grpc.RpcError) as e:
            self.generate(greedy_request(2048, prompt="hi"))
        self.assertEqual(e.exception.code(), grpc.StatusCode.OUT_OF_RANGE)

    def test_default_max_tokens_is_the_rest_of_the_context(self):
        r = pb.GenerateRequest(prompt_token_ids=pb.TokenIds(ids=[65] * 2040), ignore_eos=True,
                               sampling=pb.SamplingParams(temperature=0))
        ids, _, last = self.generate(r)
        self.assertEqual(len(ids), 8)
        self.assertIn(last.finish_reason, (pb.FINISH_REASON_LENGTH,
                                           pb.FINISH_REASON_CONTEXT_LENGTH))

    def check_stops(self, reference, stops, include):
        """Runs the reference prompt with `stops` and checks against a whole-text oracle."""
        best = None  # (end, -len, stop): the stop string complete earliest in the text
        for s in stops:
            pos = reference.find(s)
            if pos >= 0:
                cand = (pos + len(s), -len(s), s)
                best = cand if best is None or cand < best else best
        self.assertIsNotNone(best)
        end, neg_len, stop = best
        expected = reference[:end] if include else reference[:end + neg_len]
        msgs = list(self.stub.Generate(
            greedy_request(64, prompt=self.stop_prompt, stop=stops,
                           include_stop_str_in_output=include), timeout=60))
        shown = ""
        for m in msgs:
            shown += m.text
            self.assertTrue(expected.startswith(shown), (shown, expected))
        last = msgs[-1]
        self.assertEqual(shown, expected)
        self.assertEqual(last.finish_reason, pb.FINISH_REASON_STOP_STRING)
        self.assertEqual(last.matched_stop, stop)
        # The token completing the stop string is the last one counted (one byte per token).
        self.assertEqual(last.usage.completion_tokens, end)
        self.assertEqual(sum(len(m.token_ids) for m in msgs), end)
        self.server.wait_idle()

    stop_prompt = "Stop strings:"

    def test_stop_strings(self):
        _, reference, _ = self.generate(greedy_request(64, prompt=self.stop_prompt))
        self.assertTrue(reference.isascii() and len(reference) == 64, reference)
        for include in (False, True):
            with self.subTest("split across tokens", include=include):
                self.check_stops(reference, [reference[20:24]], include)
            with self.subTest("at the very start", include=include):
                self.check_stops(reference, [reference[:3]], include)
            with self.subTest("overlapping", include=include):
                self.check_stops(reference, [reference[30:36], reference[32:35]], include)
            with self.subTest("several, one never matches", include=include):
                self.check_stops(reference, ["\x01never", reference[40:42]], include)

    def test_stop_token_id_ends_with_stop_and_hides_its_text(self):
        ids, text, _ = self.generate(greedy_request(32, prompt=self.stop_prompt))
        stop_id = ids[10]
        first = ids.index(stop_id)
        ids2, text2, last = self.generate(
            greedy_request(32, prompt=self.stop_prompt, stop_token_ids=[stop_id]))
        self.assertEqual(ids2, ids[:first + 1])
        self.assertEqual(last.finish_reason, pb.FINISH_REASON_STOP)
        self.assertEqual(text2, bytes(ids[:first]).decode("utf-8", "replace"))


class CancellationTest(unittest.TestCase):
    """A cancelled, timed-out or vanished client frees its request within a second."""

    @classmethod
    def setUpClass(cls):
        # 2 ms per step: a 2000-token stream lasts at least 4 s, so it is surely still running
        # when the test cancels it, however fast the machine.
        cls.server = Server("--debug-step-delay-ms", "2")

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def assert_idle_within_a_second(self):
        info = self.server.wait_idle(1.0)
        self.assertEqual(info.running_requests, 0)
        self.assertEqual(info.waiting_requests, 0)
        self.assertEqual(info.free_kv_pages, info.total_kv_pages)

    def test_cancel_mid_stream(self):
        call = self.server.stub.Generate(greedy_request(2000, prompt="cancel me"))
        for _ in range(3):
            next(call)
        self.assertEqual(self.server.server_info().running_requests, 1)
        call.cancel()
        self.assert_idle_within_a_second()

    def test_deadline_passes(self):
        with self.assertRaises(grpc.RpcError) as e:
            collect(self.server.stub.Generate(greedy_request(2000, prompt="too slow"),
                                              timeout=0.2))
        self.assertEqual(e.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assert_idle_within_a_second()

    def test_client_that_disconnects(self):
        script = (
            "import os, sys, grpc\n"
            "from server_harness import greedy_request\n"
            "from kvserve.v1 import generation_pb2_grpc as g\n"
            "stub = g.GenerationStub(grpc.insecure_channel(sys.argv[1]))\n"
            "call = stub.Generate(greedy_request(2000, prompt='bye'))\n"
            "next(call); next(call)\n"
            "print('streaming', flush=True)\n"
            "os._exit(0)\n")
        out = subprocess.run([sys.executable, "-c", script, self.server.address],
                             capture_output=True, text=True, timeout=30,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
        self.assertIn("streaming", out.stdout, out.stderr)
        self.assert_idle_within_a_second()


class QueueTest(unittest.TestCase):
    def test_full_queue_is_resource_exhausted_while_others_stream(self):
        # 10 ms per step: the 400-token stream runs for at least 4 s, so it still holds the only
        # batch slot when the third request arrives, however fast the machine (the demo model
        # alone makes 2000 tokens in about a second).
        with Server("--max-num-seqs", "1", "--max-queued-requests", "1",
                    "--debug-step-delay-ms", "10") as server:
            running = server.stub.Generate(greedy_request(400, prompt="running"))
            next(running)
            waiting = server.stub.Generate(greedy_request(8, prompt="waiting"))
            waiting_result = concurrent.futures.ThreadPoolExecutor(1).submit(collect, waiting)
            deadline = time.monotonic() + 5
            while server.server_info().waiting_requests < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            self.assertEqual(server.server_info().waiting_requests, 1)
            with self.assertRaises(grpc.RpcError) as e:
                collect(server.stub.Generate(greedy_request(8, prompt="refused"), timeout=10))
            self.assertEqual(e.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            # The running stream was not disturbed, and the waiting one runs afterwards.
            ids, _, last = collect(running)
            self.assertEqual(len(ids), 400 - 1)  # the first message was consumed above
            self.assertEqual(last.finish_reason, pb.FINISH_REASON_LENGTH)
            self.assertEqual(last.usage.completion_tokens, 400)
            self.assertEqual(len(waiting_result.result(timeout=30)[0]), 8)


class DrainTest(unittest.TestCase):
    def test_sigterm_drains_in_flight_streams_and_exits_zero(self):
        # 5 ms per step: the three 400-token streams last at least 2 s, so SIGTERM surely
        # arrives mid-stream.
        server = Server("--drain-timeout", "30", "--debug-step-delay-ms", "5")
        calls = [server.stub.Generate(greedy_request(400, prompt=f"drain {k}")) for k in range(3)]
        for c in calls:
            next(c)
        results = {}
        threads = []
        for k, c in enumerate(calls):
            t = threading.Thread(target=lambda k=k, c=c: results.__setitem__(k, collect(c)))
            t.start()
            threads.append(t)
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for_line("draining", 5)
        self.assertEqual(server.health_status(""), NOT_SERVING)
        self.assertEqual(server.health_status("kvserve.v1.Generation"), NOT_SERVING)
        with self.assertRaises(grpc.RpcError) as e:
            collect(server.stub.Generate(greedy_request(4, prompt="late"), timeout=5))
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertTrue(server.server_info().draining)
        for t in threads:
            t.join(60)
        for k in range(3):
            ids, _, last = results[k]
            self.assertEqual(last.finish_reason, pb.FINISH_REASON_LENGTH)
            self.assertEqual(last.usage.completion_tokens, 400)
        self.assertEqual(server.proc.wait(timeout=30), 0)
        server.stop()


class ClientsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def test_kvserve_client_streams_text_and_json(self):
        _, expected, _ = collect(self.server.stub.Generate(greedy_request(12, prompt="client")))
        args = [KVSERVE_BIN, "client", "--target", self.server.address, "--prompt", "client",
                "--max-tokens", "12", "--ignore-eos"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, expected + "\n")
        self.assertIn("FINISH_REASON_LENGTH", out.stderr)
        out = subprocess.run(args + ["--json"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = [json.loads(l) for l in out.stdout.splitlines()]
        self.assertEqual("".join(l.get("text", "") for l in lines), expected)
        self.assertEqual(lines[-1]["finish_reason"], "FINISH_REASON_LENGTH")
        bad = subprocess.run(args + ["--logprobs", "50"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("logprobs", bad.stderr)

    def test_model_file_without_tokenizer_is_served_on_token_ids(self):
        prompt = [256] + list(b"model file")
        with Server("--model", self.server.model_path) as server:
            info = server.stub.GetModelInfo(pb.GetModelInfoRequest())
            self.assertFalse(info.demo)
            self.assertEqual(list(info.eos_token_ids), [257])  # from the GGUF metadata
            ids, text, _ = collect(server.stub.Generate(greedy_request(10, ids=prompt)))
            self.assertEqual(ids, offline_generate(self.server.model_path, prompt, 10))
            self.assertEqual(text, "")
            with self.assertRaises(grpc.RpcError) as e:
                collect(server.stub.Generate(greedy_request(4, prompt="text")))
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
            self.assertIn("prompt_token_ids", e.exception.details())

    def test_python_example(self):
        example = os.environ["KVSERVE_EXAMPLES"] + "/python/generate.py"
        _, expected, _ = collect(self.server.stub.Generate(greedy_request(12, prompt="example")))
        out = subprocess.run(
            [sys.executable, example, "--target", self.server.address, "--prompt", "example",
             "--max-tokens", "12", "--ignore-eos"],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.splitlines()[0], expected.splitlines()[0] if expected else "")
        self.assertIn("finish_reason=LENGTH", out.stdout)


if __name__ == "__main__":
    unittest.main()
