"""`kvserve serve --model HF_FOLDER`: a synthetic Hugging Face folder (safetensors shards,
tokenizer.json, generation_config.json) served over gRPC, compared with the offline commands on
the same folder."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import hf_fixtures
from kvserve.v1 import generation_pb2 as pb
from server_harness import KVSERVE_BIN, Server, collect, greedy_request


def kvserve(*args):
    out = subprocess.run([KVSERVE_BIN, *args], check=True, capture_output=True, text=True,
                         timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])


class HfFolderServeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kvserve_hf_serve_")
        cls.folder = os.path.join(cls.tmp, "tiny-hf-llama")
        hf_fixtures.write_hf_folder(cls.folder, shards=2)
        cls.server = Server("--model", cls.folder)
        cls.stub = cls.server.stub

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_model_info_comes_from_the_folder(self):
        info = self.stub.GetModelInfo(pb.GetModelInfoRequest())
        self.assertFalse(info.demo)
        self.assertEqual(info.name, "tiny-hf-llama")
        self.assertEqual(info.architecture, "llama")
        self.assertEqual(info.vocab_size, hf_fixtures.VOCAB)
        self.assertEqual(info.context_length, 256)
        self.assertEqual(list(info.eos_token_ids), [hf_fixtures.EOS])
        self.assertEqual(info.bos_token_id, hf_fixtures.BOS)
        vocabulary = self.server.wait_for_line(r"vocabulary: (.*)", 1)
        self.assertIsNotNone(vocabulary)
        self.assertNotIn("token ids only", vocabulary[1])

    def test_tokenize_uses_tokenizer_json(self):
        text = "the cat is on the mat"
        r = self.stub.Tokenize(pb.TokenizeRequest(text=text))
        offline = kvserve("tokenize", "--model", self.folder, "--add-special-tokens", text)["ids"]
        self.assertEqual(list(r.token_ids), offline)
        self.assertEqual(r.token_ids[0], hf_fixtures.BOS)
        # " c" is not a merge but " t" and "th", "he" are: fewer ids than bytes.
        self.assertLess(len(r.token_ids), 1 + len(text))
        back = self.stub.Tokenize(pb.TokenizeRequest(token_ids=pb.TokenIds(ids=r.token_ids)))
        self.assertEqual(back.text, text)

    def test_greedy_tokens_equal_kvserve_generate(self):
        prompt = [hf_fixtures.BOS, 84, 104, 256 + 19, 17, 290]
        ids, text, last = collect(self.stub.Generate(greedy_request(16, ids=prompt)))
        offline = kvserve("generate", "--model", self.folder, "--prompt-ids",
                          ",".join(map(str, prompt)), "--max-tokens", "16", "--ignore-eos",
                          "--weight-dtype", "f32")
        self.assertEqual(ids, offline["ids"])
        self.assertEqual(text, offline["text"])
        self.assertEqual(last.finish_reason, pb.FINISH_REASON_LENGTH)


if __name__ == "__main__":
    unittest.main()
