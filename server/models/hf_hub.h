// Hugging Face Hub downloads for `--model hf:OWNER/REPO[:FILE.gguf]`, in the Hugging Face cache
// that huggingface-cli, transformers and vLLM share.
//
// The cache (HfHubCacheDir: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub)
// holds one folder per repository, `models--OWNER--REPO/`, with `refs/main` (the commit main
// resolved to), `blobs/ETAG` (the file contents, named by the Hub's ETag: the SHA-256 for LFS
// files, the git blob SHA-1 for the rest) and `snapshots/COMMIT/FILE`, a relative symlink to the
// blob. A file is looked up at snapshots/$(refs/main)/FILE with no request at all; then in
// kvserve's older layout `{KVSERVE_CACHE}/hf/OWNER/REPO/FILE` (read only; a folder model only
// when all its files are there). Otherwise a HEAD of `{endpoint}/OWNER/REPO/resolve/main/FILE`
// (redirects not followed) names the commit (X-Repo-Commit) and the blob (X-Linked-Etag or
// ETag); the file is downloaded (libcurl, redirects followed) from resolve/COMMIT/FILE into
// `blobs/ETAG.incomplete`, resumed with a Range request when an earlier attempt (of kvserve or
// huggingface_hub, which uses the same name) left one behind and retried a few times when the
// connection drops, checked against the size (X-Linked-Size / Content-Range / Content-Length)
// and, when the server names one, the SHA-256 (an ETag of 64 hex digits), renamed to the blob,
// linked from the snapshot, and refs/main is written. The files of one folder model all come
// from one commit. A server that sends no X-Repo-Commit or ETag (a plain file server as
// HF_ENDPOINT) gets the older layout. An optional file the Hub answers 404 for is recorded in
// `.no_exist/COMMIT/FILE`, as huggingface_hub does, and not asked for again.
//
// Errors: PermissionDenied for HTTP 401/403 (naming the repo and HF_TOKEN), NotFound for 404
// (naming the URL), DataLoss for a size or SHA-256 mismatch (the partial file is removed),
// Unavailable for network failures, FailedPrecondition in offline mode when a file is not
// cached (naming the cache paths).
//
// Thread-safety: functions are reentrant; concurrent processes (kvserve or huggingface_hub)
// downloading the same blob serialize on an flock of
// `{cache}/.locks/models--OWNER--REPO/ETAG.lock`.
#ifndef KVSERVE_SERVER_MODELS_HF_HUB_H_
#define KVSERVE_SERVER_MODELS_HF_HUB_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvserve::server {

struct HfHubOptions {
  std::string endpoint = "https://huggingface.co";  // no trailing slash
  std::string hub_cache_dir;  // the Hugging Face hub cache (holds models--OWNER--REPO folders)
  std::string cache_dir;      // kvserve's cache root (its older hf/ layout is read from there)
  std::string token;          // sent as "Authorization: Bearer" if set
  bool offline = false;       // only the cache, no HTTP at all
  int max_attempts = 4;       // per file, for dropped connections (each resumes the partial file)

  // HF_ENDPOINT, HfHubCacheDir(), KVSERVE_CACHE (default $HOME/.cache/kvserve), HF_TOKEN, and
  // offline when `offline_flag` is set or HF_HUB_OFFLINE is 1/true/yes.
  static HfHubOptions FromEnvironment(bool offline_flag);
};

// "hf:OWNER/REPO" or "hf:OWNER/REPO:FILE". `file` is empty for a whole Hugging Face folder.
struct HfModelRef {
  std::string owner;
  std::string repo;
  std::string file;

  std::string repo_id() const { return owner + "/" + repo; }
};

bool IsHfModelRef(absl::string_view spec);  // starts with "hf:"

// $HF_HUB_CACHE, else $HF_HOME/hub, else $HOME/.cache/huggingface/hub.
std::string HfHubCacheDir();

// {options.hub_cache_dir}/models--OWNER--REPO.
std::string HfRepoCacheDir(const HfModelRef& ref, const HfHubOptions& options);

// InvalidArgument naming the problem: owner/repo must be [A-Za-z0-9._-]+ (not "." or ".."),
// FILE a relative path without "." / ".." components.
absl::StatusOr<HfModelRef> ParseHfModelRef(absl::string_view spec);

// The local path of a Hub file, downloading it unless it is cached. `optional`: a 404 returns
// NotFound too, but without a log line, so callers can skip the file.
absl::StatusOr<std::string> FetchHfFile(const HfModelRef& repo, const std::string& file,
                                        const HfHubOptions& options, bool optional = false);

// Makes `ref` available locally and returns its path: the GGUF file for `hf:OWNER/REPO:FILE`;
// for `hf:OWNER/REPO` the folder (a snapshot, or the older layout's folder) holding config.json,
// tokenizer.json, the optional tokenizer_config.json / generation_config.json /
// chat_template.jinja, and model.safetensors or model.safetensors.index.json with every shard it
// lists (unless `include_weights` is false: `kvserve tokenize` needs only the config and tokenizer
// files).
absl::StatusOr<std::string> ResolveHfModel(const HfModelRef& ref, const HfHubOptions& options,
                                           bool include_weights = true);

// Lower-case hex SHA-256 of a file's bytes (OpenSSL EVP).
absl::StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_MODELS_HF_HUB_H_
