#!/usr/bin/python3
"""`--model hf:OWNER/REPO[:FILE]` against a local fake of the Hugging Face Hub (never the internet),
stored in and read from the Hugging Face cache layout (models--OWNER--REPO/{blobs,snapshots,refs}).

FakeHub serves GET and HEAD of `/OWNER/REPO/resolve/REVISION/FILE` (REVISION: main or the repo's
one commit) from a folder the way the Hub does: every answer names the commit (X-Repo-Commit);
small files come directly with their git blob SHA-1 as ETag, weights (.gguf, .safetensors) as a
302 to a CDN path with X-Linked-Etag (SHA-256) and X-Linked-Size; Range requests are answered
with 206, a gated repo wants `Authorization: Bearer <token>`, and switches cut a file's first
transfer halfway or announce a wrong SHA-256. Every request is logged so tests can see methods,
Range and auth headers, or that none was made.

Environment: KVSERVE_BIN (the kvserve binary).
"""
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import unittest

import hf_fixtures

KVSERVE_BIN = os.environ.get("KVSERVE_BIN", "kvserve")
TOKEN = "hf_test_secret"


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def git_blob_sha1(path):
    """The Hub's ETag of a file not in LFS: git's object id of the blob."""
    with open(path, "rb") as f:
        data = f.read()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def commit_of(repo_id):
    """The fake Hub's one commit of a repository."""
    return hashlib.sha1(repo_id.encode()).hexdigest()


def is_lfs(rel):
    return rel.endswith((".gguf", ".safetensors"))


class FakeHub:
    def __init__(self, root):
        self.root = root
        self.requests = []  # dicts: path, range, auth
        self.cut_once = set()  # "owner/repo/file": the first transfer stops halfway
        self.bad_sha = set()  # "owner/repo/file": a wrong SHA-256 is announced
        self.gated = {"owner/gated"}
        self.lock = threading.Lock()
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                hub.handle(self)

            def do_HEAD(self):
                hub.handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def seen(self):
        with self.lock:
            return list(self.requests)

    def clear(self):
        with self.lock:
            self.requests.clear()

    def announced_sha(self, rel):
        digest = sha256(os.path.join(self.root, rel))
        return ("0" * 64) if rel in self.bad_sha else digest

    def handle(self, h):
        with self.lock:
            self.requests.append({"method": h.command, "path": h.path,
                                  "range": h.headers.get("Range"),
                                  "auth": h.headers.get("Authorization")})
        if h.path.startswith("/cdn/"):
            return self.send_file(h, h.path[len("/cdn/"):])
        parts = h.path.lstrip("/").split("/", 4)
        if len(parts) != 5 or parts[2] != "resolve":
            return self.send_error(h, 400)
        repo_id, rel = f"{parts[0]}/{parts[1]}", "/".join([parts[0], parts[1], parts[4]])
        if parts[3] not in ("main", commit_of(repo_id)):
            return self.send_error(h, 404)
        if repo_id in self.gated and h.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.send_error(h, 401)
        path = os.path.join(self.root, rel)
        if not os.path.isfile(path):
            return self.send_error(h, 404, commit=commit_of(repo_id))
        if is_lfs(rel):
            # LFS file: the Hub redirects to its CDN and names the checksum and size.
            h.send_response(302)
            h.send_header("Location", f"/cdn/{rel}")
            h.send_header("X-Repo-Commit", commit_of(repo_id))
            h.send_header("X-Linked-Etag", f'"{self.announced_sha(rel)}"')
            h.send_header("X-Linked-Size", str(os.path.getsize(path)))
            h.send_header("ETag", f'"{self.announced_sha(rel)}"')
            h.send_header("Content-Length", "0")
            h.end_headers()
            return None
        return self.send_file(h, rel, etag=git_blob_sha1(path), commit=commit_of(repo_id))

    def send_error(self, h, code, commit=None):
        body = json.dumps({"error": f"HTTP {code}"}).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        if commit:
            h.send_header("X-Repo-Commit", commit)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def send_file(self, h, rel, etag=None, commit=None):
        with open(os.path.join(self.root, rel), "rb") as f:
            data = f.read()
        start = 0
        rng = h.headers.get("Range")
        if rng:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                return self.send_error(h, 416)
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("Content-Length", str(len(data) - start))
        if etag:
            h.send_header("ETag", f'"{etag}"')
        if commit:
            h.send_header("X-Repo-Commit", commit)
        h.end_headers()
        if h.command == "HEAD":
            return None
        body = data[start:]
        with self.lock:
            cut = rel in self.cut_once
            self.cut_once.discard(rel)
        if cut:
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return None
        h.wfile.write(body)
        return None


class HfHubTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kvserve_hf_hub_")
        cls.local = os.path.join(cls.tmp, "local")
        root = os.path.join(cls.tmp, "hub")
        os.makedirs(cls.local)
        cls.gguf = hf_fixtures.write_gguf(os.path.join(cls.local, "model.gguf"))
        cls.folder = os.path.join(cls.local, "folder")
        hf_fixtures.write_hf_folder(cls.folder, shards=2)
        for repo in ("gguf-repo", "gated", "corrupt"):
            os.makedirs(os.path.join(root, "owner", repo))
            shutil.copy(cls.gguf, os.path.join(root, "owner", repo, "model.gguf"))
        shutil.copytree(cls.folder, os.path.join(root, "owner", "folder-repo"))
        cls.hub = FakeHub(root)
        cls.hub.bad_sha.add("owner/corrupt/model.gguf")
        # Expected outputs: the same models run from local paths.
        local = cls.__new__(cls)
        local.cache = os.path.join(cls.tmp, "unused_cache")
        local.hub_cache = os.path.join(cls.tmp, "unused_hub_cache")
        cls.gguf_out = local.run_ok(cls.gguf, prompt_ids="1,5,9,42,7")
        cls.folder_out = local.run_ok(cls.folder, prompt="the cat is in the hat")

    @classmethod
    def tearDownClass(cls):
        cls.hub.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.cache = tempfile.mkdtemp(prefix="cache_", dir=self.tmp)
        self.hub_cache = tempfile.mkdtemp(prefix="hub_cache_", dir=self.tmp)
        self.hub.clear()

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items()
               if k not in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT", "KVSERVE_CACHE",
                            "HF_HOME", "HF_HUB_CACHE")}
        env.update(KVSERVE_CACHE=self.cache, HF_ENDPOINT=self.hub.endpoint,
                   HF_HUB_CACHE=self.hub_cache)
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def generate(self, model, prompt_ids=None, prompt=None, flags=(), **env):
        args = [KVSERVE_BIN, "generate", "--model", model, "--max-tokens", "8", "--ignore-eos",
                "--weight-dtype", "f32", *flags]
        args += ["--prompt-ids", prompt_ids] if prompt_ids else ["--prompt", prompt]
        return subprocess.run(args, capture_output=True, text=True, timeout=120,
                              env=self.env(**env))

    def run_ok(self, model, **kw):
        r = self.generate(model, **kw)
        if r.returncode != 0:
            raise AssertionError(f"generate --model {model} failed: {r.stderr}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    def repo_dir(self, repo, hub_cache=None):
        return os.path.join(hub_cache or self.hub_cache, f"models--owner--{repo}")

    def cached(self, repo, file, hub_cache=None):
        """Where the Hugging Face layout puts `file`: in the snapshot of the repo's commit."""
        return os.path.join(self.repo_dir(repo, hub_cache), "snapshots",
                            commit_of(f"owner/{repo}"), file)

    def legacy_cached(self, repo, file):
        return os.path.join(self.cache, "hf", "owner", repo, file)

    def assert_layout(self, repo, file, source, hub_cache=None):
        """`file` of owner/`repo` is in the cache as huggingface_hub lays it out: refs/main names
        the commit, the snapshot entry is a relative symlink to blobs/ETAG (SHA-256 for LFS
        files, the git blob SHA-1 for the rest) holding `source`'s bytes."""
        repo_dir = self.repo_dir(repo, hub_cache)
        with open(os.path.join(repo_dir, "refs", "main")) as f:
            self.assertEqual(f.read().strip(), commit_of(f"owner/{repo}"))
        link = self.cached(repo, file, hub_cache)
        self.assertTrue(os.path.islink(link), link)
        target = os.readlink(link)
        self.assertFalse(os.path.isabs(target), target)
        etag = sha256(source) if is_lfs(file) else git_blob_sha1(source)
        self.assertEqual(os.path.normpath(os.path.join(os.path.dirname(link), target)),
                         os.path.join(repo_dir, "blobs", etag))
        self.assertEqual(sha256(link), sha256(source))

    def test_gguf_file_equals_the_local_file_and_is_downloaded_once(self):
        out = self.run_ok("hf:owner/gguf-repo:model.gguf", prompt_ids="1,5,9,42,7")
        self.assertEqual(out["ids"], self.gguf_out["ids"])
        self.assert_layout("gguf-repo", "model.gguf", self.gguf)
        seen = [(r["method"], r["path"]) for r in self.hub.seen()]
        commit = commit_of("owner/gguf-repo")
        self.assertEqual(seen[0], ("HEAD", "/owner/gguf-repo/resolve/main/model.gguf"))
        self.assertIn(("GET", f"/owner/gguf-repo/resolve/{commit}/model.gguf"), seen)
        self.assertIn(("GET", "/cdn/owner/gguf-repo/model.gguf"), seen)  # the redirect followed
        self.assertFalse(os.path.exists(self.legacy_cached("gguf-repo", "model.gguf")))
        self.hub.clear()
        r = self.generate("hf:owner/gguf-repo:model.gguf", prompt_ids="1,5,9,42,7")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("already in the Hugging Face cache", r.stderr)
        self.assertEqual(self.hub.seen(), [])

    def test_folder_repo_equals_the_local_folder(self):
        out = self.run_ok("hf:owner/folder-repo", prompt="the cat is in the hat")
        self.assertEqual(out, self.folder_out)
        for name in ("config.json", "tokenizer.json", "tokenizer_config.json",
                     "generation_config.json", "model.safetensors.index.json",
                     "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
            with self.subTest(file=name):
                self.assert_layout("folder-repo", name, os.path.join(self.folder, name))
        # The optional chat_template.jinja was asked for (in the same commit), got a 404, and did
        # not matter; the 404 is recorded as huggingface_hub records it.
        commit = commit_of("owner/folder-repo")
        self.assertIn(f"/owner/folder-repo/resolve/{commit}/chat_template.jinja",
                      [r["path"] for r in self.hub.seen()])
        self.assertFalse(os.path.exists(self.cached("folder-repo", "chat_template.jinja")))
        self.assertTrue(os.path.isfile(os.path.join(self.repo_dir("folder-repo"), ".no_exist",
                                                    commit, "chat_template.jinja")))
        # A second run asks nothing: not even for the file the Hub does not have.
        self.hub.clear()
        self.assertEqual(self.run_ok("hf:owner/folder-repo", prompt="the cat is in the hat"),
                         self.folder_out)
        self.assertEqual(self.hub.seen(), [])

    def test_tokenize_fetches_no_weights(self):
        args = [KVSERVE_BIN, "tokenize", "--model", "hf:owner/folder-repo", "the cat is in the hat"]
        r = subprocess.run(args, capture_output=True, text=True, timeout=60, env=self.env())
        self.assertEqual(r.returncode, 0, r.stderr)
        local = subprocess.run([KVSERVE_BIN, "tokenize", "--model", self.folder,
                                "the cat is in the hat"], capture_output=True, text=True,
                               timeout=60, env=self.env())
        self.assertEqual(local.returncode, 0, local.stderr)
        self.assertEqual(r.stdout, local.stdout)
        paths = [r["path"] for r in self.hub.seen()]
        self.assertTrue([p for p in paths if p.endswith("/tokenizer.json")], paths)
        self.assertFalse([p for p in paths if "safetensors" in p], paths)

    def test_interrupted_download_resumes_with_a_range_request(self):
        self.hub.cut_once.add("owner/gguf-repo/model.gguf")
        r = self.generate("hf:owner/gguf-repo:model.gguf", prompt_ids="1,5,9,42,7")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout.strip().splitlines()[-1])["ids"],
                         self.gguf_out["ids"])
        cdn = [x for x in self.hub.seen() if x["path"] == "/cdn/owner/gguf-repo/model.gguf"]
        self.assertEqual(len(cdn), 2, cdn)
        self.assertIsNone(cdn[0]["range"])
        half = os.path.getsize(self.gguf) // 2
        self.assertEqual(cdn[1]["range"], f"bytes={half}-")
        self.assertIn("resuming", r.stderr)
        self.assert_layout("gguf-repo", "model.gguf", self.gguf)

    def test_partial_file_from_an_earlier_run_is_resumed(self):
        # Where huggingface_hub leaves an interrupted download, too.
        partial = os.path.join(self.repo_dir("gguf-repo"), "blobs", sha256(self.gguf) + ".incomplete")
        os.makedirs(os.path.dirname(partial))
        with open(self.gguf, "rb") as f, open(partial, "wb") as out:
            out.write(f.read()[:1000])
        out = self.run_ok("hf:owner/gguf-repo:model.gguf", prompt_ids="1,5,9,42,7")
        self.assertEqual(out["ids"], self.gguf_out["ids"])
        cdn = [x for x in self.hub.seen() if x["path"].startswith("/cdn/")]
        self.assertEqual([x["range"] for x in cdn], ["bytes=1000-"])
        self.assertFalse(os.path.exists(partial))

    def test_wrong_sha256_is_refused(self):
        r = self.generate("hf:owner/corrupt:model.gguf", prompt_ids="1,2")
        self.assertEqual(r.returncode, 1)
        self.assertIn("SHA-256 mismatch", r.stderr)
        self.assertIn("model.gguf of hf:owner/corrupt", r.stderr)
        self.assertFalse(os.path.exists(self.cached("corrupt", "model.gguf")))
        blobs = os.path.join(self.repo_dir("corrupt"), "blobs")
        self.assertEqual(os.listdir(blobs) if os.path.isdir(blobs) else [], [])

    def test_404_names_the_missing_file(self):
        r = self.generate("hf:owner/gguf-repo:missing.gguf", prompt_ids="1,2")
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{self.hub.endpoint}/owner/gguf-repo/resolve/main/missing.gguf", r.stderr)
        self.assertIn("404", r.stderr)

    def test_gated_repo_needs_hf_token(self):
        r = self.generate("hf:owner/gated:model.gguf", prompt_ids="1,5,9,42,7")
        self.assertEqual(r.returncode, 1)
        self.assertIn("hf:owner/gated", r.stderr)
        self.assertIn("HF_TOKEN", r.stderr)
        self.assertIn("401", r.stderr)
        self.hub.clear()
        r = self.generate("hf:owner/gated:model.gguf", prompt_ids="1,5,9,42,7", HF_TOKEN=TOKEN)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout.strip().splitlines()[-1])["ids"],
                         self.gguf_out["ids"])
        self.assertEqual(self.hub.seen()[0]["auth"], f"Bearer {TOKEN}")

    def test_offline_with_an_empty_cache_is_a_clear_error(self):
        for how in ({"HF_HUB_OFFLINE": "1"}, {}):
            flags = () if how else ("--offline",)
            r = self.generate("hf:owner/folder-repo", prompt="hi", flags=flags, **how)
            self.assertEqual(r.returncode, 1)
            self.assertIn("offline mode", r.stderr)
            self.assertIn(self.repo_dir("folder-repo") + "/snapshots/", r.stderr)
            self.assertIn(self.legacy_cached("folder-repo", "config.json"), r.stderr)
        self.assertEqual(self.hub.seen(), [])

    def test_offline_with_a_full_cache_makes_no_request(self):
        self.run_ok("hf:owner/folder-repo", prompt="the cat is in the hat")
        self.run_ok("hf:owner/gguf-repo:model.gguf", prompt_ids="1,5,9,42,7")
        self.hub.clear()
        out = self.run_ok("hf:owner/folder-repo", prompt="the cat is in the hat",
                          HF_HUB_OFFLINE="1")
        self.assertEqual(out, self.folder_out)
        out = self.run_ok("hf:owner/gguf-repo:model.gguf", prompt_ids="1,5,9,42,7",
                          flags=("--offline",))
        self.assertEqual(out["ids"], self.gguf_out["ids"])
        self.assertEqual(self.hub.seen(), [])

    def place(self, repo, file, source, hub_cache=None, commit="0123abcd"):
        """Lays `source` out as huggingface_hub would have downloaded it (commit of our choosing,
        so the fake Hub, which knows another commit, could not have produced it)."""
        repo_dir = self.repo_dir(repo, hub_cache)
        etag = sha256(source)
        os.makedirs(os.path.join(repo_dir, "blobs"), exist_ok=True)
        shutil.copy(source, os.path.join(repo_dir, "blobs", etag))
        snapshot = os.path.join(repo_dir, "snapshots", commit)
        os.makedirs(snapshot, exist_ok=True)
        os.symlink(os.path.join("..", "..", "blobs", etag), os.path.join(snapshot, file))
        os.makedirs(os.path.join(repo_dir, "refs"), exist_ok=True)
        with open(os.path.join(repo_dir, "refs", "main"), "w") as f:
            f.write(commit)
        return os.path.join(snapshot, file)

    def test_a_file_in_the_hugging_face_cache_is_used_with_no_request(self):
        path = self.place("gguf-repo", "model.gguf", self.gguf)
        for flags in ((), ("--offline",)):
            with self.subTest(flags=flags):
                r = self.generate("hf:owner/gguf-repo:model.gguf", prompt_ids="1,5,9,42,7",
                                  flags=flags)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(json.loads(r.stdout.strip().splitlines()[-1])["ids"],
                                 self.gguf_out["ids"])
                self.assertIn(path, r.stderr)
        self.assertEqual(self.hub.seen(), [])

    def test_a_folder_in_the_hugging_face_cache_is_used_with_no_request(self):
        for name in os.listdir(self.folder):
            self.place("folder-repo", name, os.path.join(self.folder, name))
        out = self.run_ok("hf:owner/folder-repo", prompt="the cat is in the hat",
                          HF_HUB_OFFLINE="1")
        self.assertEqual(out, self.folder_out)
        self.assertEqual(self.hub.seen(), [])

    def test_hf_home_and_home_decide_the_cache_without_hf_hub_cache(self):
        hf_home = tempfile.mkdtemp(prefix="hf_home_", dir=self.tmp)
        self.run_ok("hf:owner/gguf-repo:model.gguf", prompt_ids="1,5,9,42,7",
                    HF_HUB_CACHE=None, HF_HOME=hf_home)
        self.assert_layout("gguf-repo", "model.gguf", self.gguf, os.path.join(hf_home, "hub"))
        home = tempfile.mkdtemp(prefix="home_", dir=self.tmp)
        self.run_ok("hf:owner/gguf-repo:model.gguf", prompt_ids="1,5,9,42,7",
                    HF_HUB_CACHE=None, HOME=home)
        self.assert_layout("gguf-repo", "model.gguf", self.gguf,
                           os.path.join(home, ".cache", "huggingface", "hub"))
        self.assertEqual(os.listdir(self.hub_cache), [])

    def test_the_older_kvserve_cache_is_still_read(self):
        os.makedirs(os.path.dirname(self.legacy_cached("gguf-repo", "model.gguf")))
        shutil.copy(self.gguf, self.legacy_cached("gguf-repo", "model.gguf"))
        shutil.copytree(self.folder, os.path.dirname(self.legacy_cached("folder-repo", "x")))
        out = self.run_ok("hf:owner/gguf-repo:model.gguf", prompt_ids="1,5,9,42,7")
        self.assertEqual(out["ids"], self.gguf_out["ids"])
        self.assertEqual(self.run_ok("hf:owner/folder-repo", prompt="the cat is in the hat"),
                         self.folder_out)
        self.assertEqual(self.hub.seen(), [])

    def test_owner_slash_repo_without_such_a_path_is_a_hub_repository(self):
        r = subprocess.run([KVSERVE_BIN, "tokenize", "--model", "owner/folder-repo",
                            "the cat is in the hat"], capture_output=True, text=True,
                           timeout=60, env=self.env(), cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("loading it as hf:owner/folder-repo", r.stderr)
        self.assertTrue(os.path.exists(self.cached("folder-repo", "tokenizer.json")))
        # A local folder of that name wins.
        os.makedirs(os.path.join(self.tmp, "owner"), exist_ok=True)
        shutil.copytree(self.folder, os.path.join(self.tmp, "owner", "local-folder"))
        self.hub.clear()
        r = subprocess.run([KVSERVE_BIN, "tokenize", "--model", "owner/local-folder", "hi"],
                           capture_output=True, text=True, timeout=60, env=self.env(),
                           cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("loading it as hf:", r.stderr)
        self.assertEqual(self.hub.seen(), [])

    def test_bad_references_are_named(self):
        r = self.generate("hf:owner/../x", prompt_ids="1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("hf:OWNER/REPO", r.stderr)
        r = self.generate("hf:owner/gguf-repo:../../etc/passwd", prompt_ids="1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("'..'", r.stderr)
        self.assertEqual(self.hub.seen(), [])


if __name__ == "__main__":
    unittest.main()
