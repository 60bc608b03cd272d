// Hugging Face Hub downloads for `--model hf:OWNER/REPO[:FILE.gguf]`.
//
// Files come from `{endpoint}/{OWNER}/{REPO}/resolve/main/{FILE}` (libcurl, redirects followed)
// into `{cache}/hf/{OWNER}/{REPO}/{FILE}`. A download is written to `FILE.incomplete`, resumed
// with a Range request when a previous attempt left one behind (and retried a few times within
// one call when the connection drops), checked against the size (X-Linked-Size /
// Content-Range / Content-Length) and, when the server names one, the SHA-256 (X-Linked-Etag or
// ETag holding 64 hex digits, as the Hub sends for LFS files), and only then renamed to FILE. So
// a FILE in the cache is always complete and is never downloaded again.
//
// Errors: PermissionDenied for HTTP 401/403 (naming the repo and HF_TOKEN), NotFound for 404
// (naming the URL), DataLoss for a size or SHA-256 mismatch (the partial file is removed),
// Unavailable for network failures, FailedPrecondition in offline mode when a file is not
// cached (naming the cache path).
//
// Thread-safety: functions are reentrant; concurrent processes downloading the same file
// serialize on an flock of `FILE.lock`.
#ifndef KVSERVE_SERVER_MODELS_HF_HUB_H_
#define KVSERVE_SERVER_MODELS_HF_HUB_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvserve::server {

struct HfHubOptions {
  std::string endpoint = "https://huggingface.co";  // no trailing slash
  std::string cache_dir;                            // the kvserve cache root (not .../hf)
  std::string token;                                // sent as "Authorization: Bearer" if set
  bool offline = false;                             // only the cache, no HTTP at all
  int max_attempts = 4;  // per file, for dropped connections (each resumes the partial file)

  // HF_ENDPOINT, KVSERVE_CACHE (default $HOME/.cache/kvserve), HF_TOKEN, and offline when
  // `offline_flag` is set or HF_HUB_OFFLINE is 1/true/yes.
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

// InvalidArgument naming the problem: owner/repo must be [A-Za-z0-9._-]+ (not "." or ".."),
// FILE a relative path without "." / ".." components.
absl::StatusOr<HfModelRef> ParseHfModelRef(absl::string_view spec);

// The local path of a Hub file, downloading it unless it is cached. `optional`: a 404 returns
// NotFound too, but without a log line, so callers can skip the file.
absl::StatusOr<std::string> FetchHfFile(const HfModelRef& repo, const std::string& file,
                                        const HfHubOptions& options, bool optional = false);

// Makes `ref` available locally and returns its path: the GGUF file for `hf:OWNER/REPO:FILE`;
// for `hf:OWNER/REPO` the folder holding config.json, tokenizer.json, the optional
// tokenizer_config.json / generation_config.json / chat_template.jinja, and model.safetensors or
// model.safetensors.index.json with every shard it lists (unless `include_weights` is false:
// `kvserve tokenize` needs only the config and tokenizer files).
absl::StatusOr<std::string> ResolveHfModel(const HfModelRef& ref, const HfHubOptions& options,
                                           bool include_weights = true);

// Lower-case hex SHA-256 of a file's bytes (OpenSSL EVP).
absl::StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_MODELS_HF_HUB_H_
