#include "server/models/hf_hub.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/json.h"
#include "base/log.h"

namespace kvserve::server {
namespace {

using base::Log;

namespace fs = std::filesystem;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

bool ValidRepoPart(absl::string_view s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

// A relative path inside the repo: no empty, "." or ".." components and no characters that would
// change the URL's meaning.
absl::Status ValidateRepoFile(absl::string_view file) {
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("Hugging Face file name '", file, "' is not valid: ", why));
  };
  if (file.empty()) return bad("it is empty");
  for (char c : file) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '\\' || c == '?' || c == '#' || c == '%' || c == ' ') {
      return bad("it holds a space, control character or one of \\ ? # %");
    }
  }
  for (absl::string_view part : absl::StrSplit(file, '/')) {
    if (part.empty() || part == "." || part == "..") {
      return bad("it must be a relative path without empty, '.' or '..' components");
    }
  }
  return absl::OkStatus();
}

bool IsSha256Hex(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// ETag values come quoted and sometimes weak: W/"abc" -> abc.
std::string UnquoteEtag(absl::string_view v) {
  v = absl::StripAsciiWhitespace(v);
  absl::ConsumePrefix(&v, "W/");
  absl::ConsumePrefix(&v, "\"");
  absl::ConsumeSuffix(&v, "\"");
  return absl::AsciiStrToLower(v);
}

void InitCurlOnce() {
  static const bool initialized = [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return true;
  }();
  (void)initialized;
}

// State of one HTTP transfer (one curl_easy_perform, redirects included).
struct Transfer {
  FILE* out = nullptr;
  int64_t resume_from = 0;  // bytes already in the partial file when the request was sent
  bool truncated = false;   // a 200 answered our Range request: the partial was discarded
  bool range_mismatch = false;
  int64_t written = 0;
  // Per response (reset at each status line; redirects are responses too).
  long status = 0;
  std::string content_length;
  std::string content_range;
  // Across responses: the Hub's first (redirect) response carries the LFS checksum and size.
  std::string linked_etag;
  std::string linked_size;
  std::string etag_sha256;
  std::string etag;         // the first ETag, unquoted (names the blob in the Hugging Face cache)
  std::string repo_commit;  // X-Repo-Commit: the commit the Hub resolved the revision to
  // Progress bar (terminals only).
  bool progress = false;
  std::string label;
  absl::Time start;
  absl::Time last_draw = absl::InfinitePast();
};

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  Transfer& t = *static_cast<Transfer*>(user);
  const absl::string_view line = absl::StripAsciiWhitespace(absl::string_view(data, size * count));
  if (absl::StartsWith(line, "HTTP/")) {
    t.status = 0;
    t.content_length.clear();
    t.content_range.clear();
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (parts.size() >= 2 && !absl::SimpleAtoi(parts[1], &t.status)) t.status = 0;
    return size * count;
  }
  const size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return size * count;
  const std::string name = absl::AsciiStrToLower(line.substr(0, colon));
  const absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
  if (name == "content-length") {
    t.content_length = std::string(value);
  } else if (name == "content-range") {
    t.content_range = std::string(value);
  } else if (name == "x-linked-etag" && t.linked_etag.empty()) {
    t.linked_etag = UnquoteEtag(value);
  } else if (name == "x-linked-size" && t.linked_size.empty()) {
    t.linked_size = std::string(value);
  } else if (name == "x-repo-commit" && t.repo_commit.empty()) {
    t.repo_commit = absl::AsciiStrToLower(value);
  } else if (name == "etag" && t.etag.empty()) {
    // Only a 64-hex ETag is a SHA-256 (the Hub's git blob ETags are SHA-1, CDNs send MD5s).
    t.etag = UnquoteEtag(value);
    if (IsSha256Hex(t.etag)) t.etag_sha256 = t.etag;
  }
  return size * count;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  Transfer& t = *static_cast<Transfer*>(user);
  const size_t n = size * count;
  // Bodies of error responses are not file content.
  if (t.status != 200 && t.status != 206) return n;
  if (t.written == 0) {
    if (t.status == 200 && t.resume_from > 0) {
      // The server ignored the Range header: start over.
      if (ftruncate(fileno(t.out), 0) != 0) return 0;
      t.truncated = true;
    } else if (t.status == 206) {
      int64_t first = -1;
      absl::string_view range = t.content_range;
      if (absl::ConsumePrefix(&range, "bytes ")) {
        const size_t dash = range.find('-');
        if (dash == absl::string_view::npos || !absl::SimpleAtoi(range.substr(0, dash), &first)) {
          first = -1;
        }
      }
      if (first != t.resume_from) {
        t.range_mismatch = true;
        return 0;  // aborts the transfer
      }
    }
  }
  if (std::fwrite(data, 1, n, t.out) != n) return 0;
  t.written += static_cast<int64_t>(n);
  return n;
}

std::string Mib(int64_t bytes) {
  return absl::StrFormat("%.1f", static_cast<double>(bytes) / (1 << 20));
}

int OnProgress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  Transfer& t = *static_cast<Transfer*>(user);
  const absl::Time time = absl::Now();
  if (time - t.last_draw < absl::Milliseconds(100)) return 0;
  t.last_draw = time;
  const int64_t done = t.resume_from + now;
  const int64_t all = total > 0 ? t.resume_from + total : 0;
  const double seconds = std::max(1e-3, absl::ToDoubleSeconds(time - t.start));
  const double rate = static_cast<double>(now) / seconds / (1 << 20);
  std::string bar;
  if (all > 0) {
    const int width = 30;
    const int filled = static_cast<int>(width * std::min<double>(1.0, 1.0 * done / all));
    bar = absl::StrFormat("[%s%s] %3d%% %s/%s MiB", std::string(filled, '#'),
                          std::string(width - filled, ' '), static_cast<int>(100.0 * done / all),
                          Mib(done), Mib(all));
  } else {
    bar = absl::StrCat(Mib(done), " MiB");
  }
  std::fprintf(stderr, "\r%s %s %.1f MiB/s\x1b[K", t.label.c_str(), bar.c_str(), rate);
  std::fflush(stderr);
  return 0;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

// What the server said about the file.
struct Expected {
  int64_t size = -1;   // -1: unknown
  std::string sha256;  // empty: unknown
};

int64_t FileSize(const fs::path& p) {
  std::error_code ec;
  const uintmax_t n = fs::file_size(p, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

// The error for an HTTP answer that no retry changes (401/403: access, 404: no such file), else OK.
absl::Status RefusalStatus(const HfModelRef& ref, const std::string& file, const std::string& url,
                           long code, const HfHubOptions& options) {
  const std::string repo = absl::StrCat("hf:", ref.repo_id());
  if (code == 401 || code == 403) {
    return absl::PermissionDeniedError(absl::StrCat(
        repo, ": HTTP ", code, " for ", url, ": ",
        options.token.empty()
            ? "the repository is gated or private; set HF_TOKEN to a Hugging Face token "
              "that may read it"
            : "the token in HF_TOKEN may not read this repository (gated: accept its terms on "
              "the Hub first)"));
  }
  if (code == 404) {
    return absl::NotFoundError(
        absl::StrCat(repo, ": file '", file, "' not found (HTTP 404 for ", url, ")"));
  }
  return absl::OkStatus();
}

// Adds the Authorization (when a token is set) and User-Agent headers.
void AddHubHeaders(const HfHubOptions& options, std::unique_ptr<curl_slist, SlistDeleter>* list) {
  // The token goes to the Hub only: curl drops custom Authorization headers on redirects to
  // another host (the CDN's URLs are signed).
  if (!options.token.empty()) {
    list->reset(curl_slist_append(list->release(),
                                  absl::StrCat("Authorization: Bearer ", options.token).c_str()));
  }
  list->reset(curl_slist_append(list->release(), "User-Agent: kvserve"));
}

// What the Hub's first answer to a HEAD of a resolve URL says (redirects are not followed: the
// Hub's own response names the commit and the blob, a CDN's would not).
struct Probe {
  std::string commit;  // X-Repo-Commit; empty when the server sends none (not a Hub)
  std::string etag;    // X-Linked-Etag (LFS: the SHA-256) or ETag; empty when none
};

// One curl handle for `url` with the Hub's headers, the response headers parsed into `t`, a
// 30 s connect timeout and no signals; the caller adds what its request needs. Owns the handle
// and the header list, which must outlive the transfer; `t` must outlive it too.
struct HubRequest {
  HubRequest(const std::string& url, const HfHubOptions& options, Transfer* t) {
    InitCurlOnce();
    curl.reset(curl_easy_init());
    AddHubHeaders(options, &headers);
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  }
  std::unique_ptr<CURL, CurlDeleter> curl;
  std::unique_ptr<curl_slist, SlistDeleter> headers;
};

// Unavailable errors are worth retrying; RefusalStatus errors are final.
absl::StatusOr<Probe> ProbeFile(const HfModelRef& ref, const std::string& file,
                                const std::string& url, const HfHubOptions& options) {
  Transfer t;
  HubRequest request(url, options, &t);
  CURL* c = request.curl.get();
  curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat("HEAD ", url, ": ", curl_easy_strerror(rc)));
  }
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  if (absl::Status refused = RefusalStatus(ref, file, url, code, options); !refused.ok()) {
    return refused;
  }
  if (code >= 500) return absl::UnavailableError(absl::StrCat("HEAD ", url, ": HTTP ", code));
  if (code < 200 || code >= 400) {
    return absl::UnknownError(absl::StrCat("HEAD ", url, ": unexpected HTTP ", code));
  }
  Probe probe;
  probe.commit = t.repo_commit;
  probe.etag = !t.linked_etag.empty() ? t.linked_etag : t.etag;
  return probe;
}

// One request for `url`, appending to `partial` (with a Range request when it is not empty).
// Unavailable errors are worth retrying; the rest are final.
absl::StatusOr<Expected> Attempt(const HfModelRef& ref, const std::string& file,
                                 const std::string& url, const fs::path& partial,
                                 const HfHubOptions& options) {
  Transfer t;
  t.resume_from = FileSize(partial);
  t.out = std::fopen(partial.c_str(), "ab");
  if (t.out == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write '", partial.string(), "' in the kvserve cache"));
  }
  t.progress = isatty(STDERR_FILENO) != 0;
  t.label = file;
  t.start = absl::Now();

  HubRequest request(url, options, &t);
  CURL* c = request.curl.get();
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  // A stalled connection (under 1 byte/s for a minute) counts as dropped.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  if (t.resume_from > 0) {
    curl_easy_setopt(c, CURLOPT_RANGE, absl::StrCat(t.resume_from, "-").c_str());
  }
  if (t.progress) {
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  }
  const CURLcode rc = curl_easy_perform(c);
  const bool close_failed = std::fclose(t.out) != 0;
  if (t.progress) {
    // The last state (a fast transfer may end before the first timed redraw).
    t.last_draw = absl::InfinitePast();
    OnProgress(&t, rc == CURLE_OK ? t.written : 0, t.written, 0, 0);
    std::fprintf(stderr, "\n");
  }
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);

  if (absl::Status refused = RefusalStatus(ref, file, url, code, options); !refused.ok()) {
    return refused;
  }
  if (code == 416) {
    // Our partial file is not a prefix the server can continue (e.g. the file changed): restart.
    std::error_code ec;
    fs::remove(partial, ec);
    return absl::UnavailableError(
        absl::StrCat(url, ": the server cannot resume at byte ", t.resume_from));
  }
  if (t.range_mismatch) {
    std::error_code ec;
    fs::remove(partial, ec);
    return absl::UnavailableError(
        absl::StrCat(url, ": the server resumed at the wrong offset (", t.content_range, ")"));
  }
  if (code >= 500) {
    return absl::UnavailableError(absl::StrCat(url, ": HTTP ", code));
  }
  if (code >= 400 || (rc == CURLE_OK && code != 200 && code != 206)) {
    return absl::UnknownError(absl::StrCat(url, ": unexpected HTTP ", code));
  }
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat("download of ", url, " interrupted after ",
                                               FileSize(partial),
                                               " bytes: ", curl_easy_strerror(rc)));
  }
  if (close_failed) {
    return absl::DataLossError(absl::StrCat("cannot write '", partial.string(), "'"));
  }

  Expected e;
  int64_t n;
  if (!t.linked_size.empty() && absl::SimpleAtoi(t.linked_size, &n)) {
    e.size = n;
  } else if (code == 206) {
    const size_t slash = t.content_range.rfind('/');
    if (slash != std::string::npos &&
        absl::SimpleAtoi(absl::string_view(t.content_range).substr(slash + 1), &n)) {
      e.size = n;
    }
  } else if (absl::SimpleAtoi(t.content_length, &n)) {
    e.size = n;
  }
  e.sha256 = IsSha256Hex(t.linked_etag) ? t.linked_etag : t.etag_sha256;
  return e;
}

// Holds an exclusive flock on a lock file for its lifetime.
class FileLock {
 public:
  explicit FileLock(const fs::path& path) : fd_(open(path.c_str(), O_CREAT | O_RDWR, 0644)) {
    if (fd_ >= 0 && flock(fd_, LOCK_EX) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~FileLock() {
    if (fd_ >= 0) close(fd_);  // releases the lock
  }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

}  // namespace

HfHubOptions HfHubOptions::FromEnvironment(bool offline_flag) {
  HfHubOptions o;
  if (std::string endpoint = Env("HF_ENDPOINT"); !endpoint.empty()) {
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    o.endpoint = endpoint;
  }
  o.hub_cache_dir = HfHubCacheDir();
  o.cache_dir = Env("KVSERVE_CACHE");
  if (o.cache_dir.empty()) {
    const std::string home = Env("HOME");
    o.cache_dir = (fs::path(home.empty() ? "/tmp" : home) / ".cache" / "kvserve").string();
  }
  o.token = Env("HF_TOKEN");
  const std::string hub_offline = absl::AsciiStrToLower(Env("HF_HUB_OFFLINE"));
  o.offline = offline_flag || hub_offline == "1" || hub_offline == "true" || hub_offline == "yes";
  return o;
}

bool IsHfModelRef(absl::string_view spec) { return absl::StartsWith(spec, "hf:"); }

absl::StatusOr<HfModelRef> ParseHfModelRef(absl::string_view spec) {
  absl::string_view rest = spec;
  if (!absl::ConsumePrefix(&rest, "hf:")) {
    return absl::InvalidArgumentError(absl::StrCat("'", spec, "' does not start with hf:"));
  }
  const auto usage = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("--model '", spec, "': ", why,
                                                   "; expected hf:OWNER/REPO or "
                                                   "hf:OWNER/REPO:FILE.gguf"));
  };
  HfModelRef ref;
  const size_t colon = rest.find(':');
  const absl::string_view repo_id = rest.substr(0, colon);
  if (colon != absl::string_view::npos) {
    ref.file = std::string(rest.substr(colon + 1));
    if (absl::Status s = ValidateRepoFile(ref.file); !s.ok()) return usage(s.message());
  }
  const size_t slash = repo_id.find('/');
  if (slash == absl::string_view::npos) return usage("no OWNER/ before the repository name");
  ref.owner = std::string(repo_id.substr(0, slash));
  ref.repo = std::string(repo_id.substr(slash + 1));
  if (!ValidRepoPart(ref.owner) || !ValidRepoPart(ref.repo)) {
    return usage("OWNER and REPO may hold only letters, digits, '.', '_' and '-'");
  }
  return ref;
}

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("OpenSSL: cannot initialize SHA-256");
  }
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize got = in.gcount();
    if (got > 0 && EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(got)) != 1) {
      return absl::InternalError("OpenSSL: SHA-256 update failed");
    }
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading '", path, "'"));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1) {
    return absl::InternalError("OpenSSL: SHA-256 final failed");
  }
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) absl::StrAppendFormat(&hex, "%02x", digest[i]);
  return hex;
}

namespace {

// Downloads `url` into `partial` (resuming what an earlier attempt left there, retrying dropped
// connections), checks the size and SHA-256 the server announced, and renames it to `dest`.
// The caller holds the lock of `dest`.
absl::Status DownloadVerified(const HfModelRef& ref, const std::string& file,
                              const std::string& url, const fs::path& partial, const fs::path& dest,
                              const HfHubOptions& options) {
  const std::string where = absl::StrCat(file, " of hf:", ref.repo_id());
  std::error_code ec;
  absl::StatusOr<Expected> expected;
  for (int attempt = 1;; ++attempt) {
    const int64_t had = FileSize(partial);
    if (had > 0) Log(absl::StrCat("resuming ", where, " at byte ", had));
    expected = Attempt(ref, file, url, partial, options);
    if (expected.ok()) break;
    if (expected.status().code() != absl::StatusCode::kUnavailable ||
        attempt >= options.max_attempts) {
      if (FileSize(partial) == 0) fs::remove(partial, ec);
      return expected.status();
    }
    Log(absl::StrCat(expected.status().message(), "; retrying (attempt ", attempt + 1, " of ",
                     options.max_attempts, ")"));
  }
  const int64_t size = FileSize(partial);
  if (expected->size >= 0 && size != expected->size) {
    fs::remove(partial, ec);
    return absl::DataLossError(absl::StrCat(where, ": downloaded ", size,
                                            " bytes but the server announced ", expected->size,
                                            " (", url, "); the partial file was removed"));
  }
  std::string checked;
  if (!expected->sha256.empty()) {
    absl::StatusOr<std::string> sha = Sha256File(partial.string());
    if (!sha.ok()) return sha.status();
    if (*sha != expected->sha256) {
      fs::remove(partial, ec);
      return absl::DataLossError(absl::StrCat(where, ": SHA-256 mismatch: the server announced ",
                                              expected->sha256, " but ", url, " gave ", *sha,
                                              "; the corrupted download was removed"));
    }
    checked = ", SHA-256 verified";
  }
  fs::rename(partial, dest, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat("cannot rename '", partial.string(), "' to '",
                                                    dest.string(), "': ", ec.message()));
  }
  Log(absl::StrCat("downloaded ", where, " (", size, " bytes", checked, ") from ", url, " to ",
                   dest.string()));
  return absl::OkStatus();
}

absl::Status CreateDirectories(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create the cache folder '", dir.string(), "': ", ec.message()));
  }
  return absl::OkStatus();
}

std::string ReadSmallFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(text.str()));
}

// Writes `text` to `path` through a temporary file and a rename (readers see old or new).
absl::Status WriteSmallFile(const fs::path& path, const std::string& text) {
  const fs::path temporary = path.string() + absl::StrCat(".tmp", getpid());
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) {
      return absl::PermissionDeniedError(absl::StrCat("cannot write '", temporary.string(), "'"));
    }
  }
  std::error_code ec;
  fs::rename(temporary, path, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot rename '", temporary.string(), "': ", ec.message()));
  }
  return absl::OkStatus();
}

// kvserve's own layout before the Hugging Face one: {cache_dir}/hf/OWNER/REPO/FILE. Read when a
// file is not in the Hugging Face cache; written only for servers that are not a Hub (no
// X-Repo-Commit or ETag to name a snapshot and a blob by).
fs::path LegacyPath(const HfModelRef& ref, const std::string& file, const HfHubOptions& options) {
  return fs::path(options.cache_dir) / "hf" / ref.owner / ref.repo / file;
}

absl::StatusOr<std::string> DownloadLegacy(const HfModelRef& ref, const std::string& file,
                                           const std::string& url, const HfHubOptions& options) {
  const fs::path dest = LegacyPath(ref, file, options);
  if (absl::Status s = CreateDirectories(dest.parent_path()); !s.ok()) return s;
  FileLock lock(fs::path(dest.string() + ".lock"));
  if (!lock.ok()) {
    return absl::PermissionDeniedError(absl::StrCat("cannot lock '", dest.string(), ".lock'"));
  }
  std::error_code ec;
  if (fs::is_regular_file(dest, ec)) return dest.string();
  if (absl::Status s =
          DownloadVerified(ref, file, url, fs::path(dest.string() + ".incomplete"), dest, options);
      !s.ok()) {
    return s;
  }
  return dest.string();
}

// A blob or commit name used as a path component: what the Hub sends is hex; anything else
// (a CDN's quoted-printable ETag, a path separator) is not trusted as a file name.
bool SafeName(absl::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

// `file` of `ref`, found in or stored into the Hugging Face cache. `*commit` is the snapshot:
// empty on entry means refs/main's (or, with no refs/main yet, whatever the Hub resolves main
// to); on return it names the snapshot used, so that every file of one model comes from one
// commit (later requests ask the Hub for resolve/COMMIT/FILE).
absl::StatusOr<std::string> FetchFile(const HfModelRef& ref, const std::string& file,
                                      const HfHubOptions& options, bool optional, bool read_legacy,
                                      std::string* commit) {
  if (absl::Status s = ValidateRepoFile(file); !s.ok()) return s;
  const std::string where = absl::StrCat(file, " of hf:", ref.repo_id());
  const fs::path repo_dir = HfRepoCacheDir(ref, options);
  std::error_code ec;
  if (commit->empty()) *commit = ReadSmallFile(repo_dir / "refs" / "main");
  if (!commit->empty() && !SafeName(*commit)) commit->clear();
  if (!commit->empty()) {
    const fs::path snapshot_file = repo_dir / "snapshots" / *commit / file;
    if (fs::is_regular_file(snapshot_file, ec)) {  // follows the symlink to the blob
      Log(absl::StrCat(where, " is already in the Hugging Face cache (", snapshot_file.string(),
                       "), not downloading"));
      return snapshot_file.string();
    }
    if (optional && fs::exists(repo_dir / ".no_exist" / *commit / file, ec)) {
      return absl::NotFoundError(absl::StrCat(where, ": the cache records that it does not exist"));
    }
  }
  const fs::path legacy = LegacyPath(ref, file, options);
  if (read_legacy && fs::is_regular_file(legacy, ec)) {
    Log(absl::StrCat(where, " is already in the kvserve cache (", legacy.string(),
                     "), not downloading"));
    return legacy.string();
  }
  if (options.offline) {
    const std::string message = absl::StrCat(
        "offline mode (--offline or HF_HUB_OFFLINE=1): ", where,
        " is not in the Hugging Face cache (", repo_dir.string(), "/snapshots/",
        commit->empty() ? "<no refs/main>" : *commit, "/", file, ") nor in the kvserve cache (",
        legacy.string(), "); run once without offline mode to download it");
    return optional ? absl::NotFoundError(message) : absl::FailedPreconditionError(message);
  }

  const std::string revision = commit->empty() ? "main" : *commit;
  const std::string url = absl::StrCat(options.endpoint, "/", ref.owner, "/", ref.repo, "/resolve/",
                                       revision, "/", file);
  absl::StatusOr<Probe> probe;
  for (int attempt = 1;; ++attempt) {
    probe = ProbeFile(ref, file, url, options);
    if (probe.ok() || probe.status().code() != absl::StatusCode::kUnavailable ||
        attempt >= options.max_attempts) {
      break;
    }
    Log(absl::StrCat(probe.status().message(), "; retrying"));
  }
  if (!probe.ok()) {
    if (optional && probe.status().code() == absl::StatusCode::kNotFound && !commit->empty()) {
      // As huggingface_hub does: remember the absence, so the next run asks no more.
      if (CreateDirectories((repo_dir / ".no_exist" / *commit / file).parent_path()).ok()) {
        (void)WriteSmallFile(repo_dir / ".no_exist" / *commit / file, "");
      }
    }
    return probe.status();
  }
  if (!SafeName(probe->commit) || !SafeName(probe->etag)) {
    Log(absl::StrCat(url, " names no commit or ETag (not a Hugging Face Hub?): storing ", where,
                     " in the kvserve cache"));
    return DownloadLegacy(ref, file, url, options);
  }
  *commit = probe->commit;
  const fs::path blob = repo_dir / "blobs" / probe->etag;
  const fs::path snapshot_file = repo_dir / "snapshots" / *commit / file;
  const fs::path locks = fs::path(options.hub_cache_dir) / ".locks" / repo_dir.filename();
  for (const fs::path& dir :
       {blob.parent_path(), snapshot_file.parent_path(), locks, repo_dir / "refs"}) {
    if (absl::Status s = CreateDirectories(dir); !s.ok()) return s;
  }
  {
    // The lock huggingface_hub takes for the same blob: one download at a time, by either tool.
    FileLock lock(locks / (probe->etag + ".lock"));
    if (!lock.ok()) {
      return absl::PermissionDeniedError(absl::StrCat("cannot lock the blob ", blob.string()));
    }
    if (!fs::is_regular_file(blob, ec)) {
      const std::string data_url = absl::StrCat(options.endpoint, "/", ref.owner, "/", ref.repo,
                                                "/resolve/", *commit, "/", file);
      if (absl::Status s = DownloadVerified(ref, file, data_url,
                                            fs::path(blob.string() + ".incomplete"), blob, options);
          !s.ok()) {
        return s;
      }
    }
  }
  // snapshots/COMMIT/FILE -> ../../blobs/ETAG (relative, so the cache can move).
  fs::remove(snapshot_file, ec);
  fs::create_symlink(fs::relative(blob, snapshot_file.parent_path(), ec), snapshot_file, ec);
  if (std::error_code exists; ec && !fs::is_regular_file(snapshot_file, exists)) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot link '", snapshot_file.string(), "' to its blob: ", ec.message()));
  }
  if (revision == "main") {
    if (absl::Status s = WriteSmallFile(repo_dir / "refs" / "main", *commit); !s.ok()) return s;
  }
  return snapshot_file.string();
}

// Every file of a folder model (`fetch(file, optional)` gets one), in the folder `fetch` puts
// them in; returns the path of config.json.
absl::StatusOr<std::string> FetchFolder(
    const std::function<absl::StatusOr<std::string>(const std::string&, bool)>& fetch,
    bool include_weights) {
  absl::StatusOr<std::string> config = fetch("config.json", false);
  if (!config.ok()) return config.status();
  absl::StatusOr<std::string> tokenizer = fetch("tokenizer.json", false);
  if (!tokenizer.ok()) return tokenizer.status();
  for (const char* optional :
       {"tokenizer_config.json", "generation_config.json", "chat_template.jinja"}) {
    absl::StatusOr<std::string> path = fetch(optional, true);
    if (!path.ok() && path.status().code() != absl::StatusCode::kNotFound) return path.status();
  }
  if (!include_weights) return config;
  absl::StatusOr<std::string> index = fetch("model.safetensors.index.json", true);
  if (!index.ok()) {
    if (index.status().code() != absl::StatusCode::kNotFound) return index.status();
    absl::StatusOr<std::string> single = fetch("model.safetensors", false);
    if (!single.ok()) return single.status();
    return config;
  }
  absl::StatusOr<base::JsonValue> json = base::ParseJson(ReadSmallFile(*index));
  if (!json.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(*index, ": ", json.status().message()));
  }
  const base::JsonValue* map = json->Find("weight_map");
  if (map == nullptr || !map->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(*index, ": no 'weight_map' object"));
  }
  std::set<std::string> shards;
  for (const auto& [tensor, shard] : map->object) {
    if (!shard.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(*index, ": weight_map entry of '", tensor, "' is not a file name"));
    }
    shards.insert(shard.string);
  }
  for (const std::string& shard : shards) {
    absl::StatusOr<std::string> path = fetch(shard, false);
    if (!path.ok()) return path.status();
  }
  return config;
}

}  // namespace

std::string HfHubCacheDir() {
  if (std::string dir = Env("HF_HUB_CACHE"); !dir.empty()) return dir;
  if (std::string home = Env("HF_HOME"); !home.empty()) return (fs::path(home) / "hub").string();
  const std::string home = Env("HOME");
  return (fs::path(home.empty() ? "/tmp" : home) / ".cache" / "huggingface" / "hub").string();
}

std::string HfRepoCacheDir(const HfModelRef& ref, const HfHubOptions& options) {
  return (fs::path(options.hub_cache_dir) / absl::StrCat("models--", ref.owner, "--", ref.repo))
      .string();
}

absl::StatusOr<std::string> FetchHfFile(const HfModelRef& ref, const std::string& file,
                                        const HfHubOptions& options, bool optional) {
  std::string commit;
  return FetchFile(ref, file, options, optional, /*read_legacy=*/true, &commit);
}

absl::StatusOr<std::string> ResolveHfModel(const HfModelRef& ref, const HfHubOptions& options,
                                           bool include_weights) {
  if (!ref.file.empty()) return FetchHfFile(ref, ref.file, options);
  // A complete folder in kvserve's older cache is used as it is (no request); otherwise the
  // folder is one snapshot of the Hugging Face cache.
  std::error_code ec;
  const auto legacy = [&](const std::string& file, bool) -> absl::StatusOr<std::string> {
    const fs::path path = LegacyPath(ref, file, options);
    if (fs::is_regular_file(path, ec)) return path.string();
    return absl::NotFoundError(path.string());
  };
  absl::StatusOr<std::string> config = FetchFolder(legacy, include_weights);
  if (config.ok()) {
    Log(absl::StrCat("hf:", ref.repo_id(), " is in the kvserve cache (",
                     fs::path(*config).parent_path().string(), "), not downloading"));
  } else {
    std::string commit;
    const auto hub = [&](const std::string& file, bool optional) {
      return FetchFile(ref, file, options, optional, /*read_legacy=*/false, &commit);
    };
    config = FetchFolder(hub, include_weights);
    if (!config.ok()) return config.status();
  }
  return fs::path(*config).parent_path().string();
}

}  // namespace kvserve::server
