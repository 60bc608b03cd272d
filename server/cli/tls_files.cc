#include "server/cli/tls_files.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "grpcpp/support/channel_arguments.h"

ABSL_FLAG(std::string, tls_cert, "",
          "serve: PEM certificate chain; with --tls-key, both ports (gRPC and HTTP) speak TLS. "
          "Re-read on SIGHUP");
ABSL_FLAG(std::string, tls_key, "", "serve: PEM private key of --tls-cert. Re-read on SIGHUP");
ABSL_FLAG(std::string, tls_client_ca, "",
          "serve: PEM CA bundle; if set, clients of both ports must present a certificate it "
          "signed (mutual TLS). Re-read on SIGHUP");
ABSL_FLAG(std::string, tls_ca, "",
          "client, health: PEM CA bundle to check the server's certificate; turns TLS on");
ABSL_FLAG(std::string, tls_client_cert, "",
          "client, health: PEM certificate to present (mutual TLS), with --tls-client-key");
ABSL_FLAG(std::string, tls_client_key, "", "client, health: PEM key of --tls-client-cert");
ABSL_FLAG(std::string, tls_server_name, "",
          "client, health: the name the server's certificate must carry, if not the target's "
          "host (e.g. when probing 127.0.0.1)");

namespace kvserve::server {
namespace {

// The PEM file `path` (named by --`flag`) into `*out`.
absl::Status ReadPem(const std::string& flag, const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " ", path, ": cannot read: ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", path, ": not PEM"));
  }
  *out = text.str();
  return absl::OkStatus();
}

// An anonymous in-memory file holding `text`, or -1.
int MemoryFile(const char* name, const std::string& text) {
  const int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return -1;
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = write(fd, text.data() + written, text.size() - written);
    if (n <= 0) {
      close(fd);
      return -1;
    }
    written += static_cast<size_t>(n);
  }
  return fd;
}

std::string FdPath(int fd) { return absl::StrCat("/proc/self/fd/", fd); }

// Makes `*fd` (a path gRPC watches) hold `text`, atomically for a reader that opens the path.
absl::Status Replace(int* fd, const char* name, const std::string& text) {
  const int fresh = MemoryFile(name, text);
  if (fresh < 0) return absl::InternalError(absl::StrCat("memfd: ", std::strerror(errno)));
  if (*fd < 0) {
    *fd = fresh;
    return absl::OkStatus();
  }
  const int result = dup3(fresh, *fd, O_CLOEXEC);
  close(fresh);
  if (result < 0) return absl::InternalError(absl::StrCat("dup3: ", std::strerror(errno)));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::optional<TlsPem>> ReadServerTls() {
  const std::string cert = absl::GetFlag(FLAGS_tls_cert);
  const std::string key = absl::GetFlag(FLAGS_tls_key);
  const std::string ca = absl::GetFlag(FLAGS_tls_client_ca);
  if (cert.empty() && key.empty()) {
    if (!ca.empty()) {
      return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
    }
    return std::nullopt;
  }
  if (cert.empty() || key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  TlsPem pem;
  absl::Status read = ReadPem("tls-cert", cert, &pem.cert_chain);
  if (read.ok()) read = ReadPem("tls-key", key, &pem.private_key);
  if (read.ok() && !ca.empty()) read = ReadPem("tls-client-ca", ca, &pem.client_ca);
  if (!read.ok()) return read;
  return pem;
}

absl::StatusOr<std::unique_ptr<GrpcTlsIdentity>> GrpcTlsIdentity::Create(const TlsPem& pem) {
  std::unique_ptr<GrpcTlsIdentity> identity(new GrpcTlsIdentity());
  if (absl::Status s = identity->Update(pem); !s.ok()) return s;
  const bool mutual = !pem.client_ca.empty();
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      FdPath(identity->key_fd_), FdPath(identity->cert_fd_),
      mutual ? FdPath(identity->ca_fd_) : std::string(), /*refresh_interval_sec=*/1);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (mutual) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  identity->credentials_ = grpc::experimental::TlsServerCredentials(options);
  if (identity->credentials_ == nullptr) {
    return absl::InvalidArgumentError("gRPC refused the TLS options");
  }
  return identity;
}

GrpcTlsIdentity::~GrpcTlsIdentity() {
  for (int fd : {key_fd_, cert_fd_, ca_fd_}) {
    if (fd >= 0) close(fd);
  }
}

absl::Status GrpcTlsIdentity::Update(const TlsPem& pem) {
  // The key first: gRPC skips a key that does not match its certificate, so a reader between
  // the two replacements keeps the old pair.
  if (absl::Status s = Replace(&key_fd_, "kvserve-tls-key", pem.private_key); !s.ok()) return s;
  if (absl::Status s = Replace(&cert_fd_, "kvserve-tls-cert", pem.cert_chain); !s.ok()) return s;
  if (!pem.client_ca.empty() || ca_fd_ >= 0) {
    if (absl::Status s = Replace(&ca_fd_, "kvserve-tls-ca", pem.client_ca); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> ClientChannel(const std::string& target) {
  const std::string ca = absl::GetFlag(FLAGS_tls_ca);
  const std::string cert = absl::GetFlag(FLAGS_tls_client_cert);
  const std::string key = absl::GetFlag(FLAGS_tls_client_key);
  if (ca.empty()) {
    if (!cert.empty() || !key.empty()) {
      return absl::InvalidArgumentError("--tls-client-cert / --tls-client-key need --tls-ca");
    }
    return grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  }
  if (cert.empty() != key.empty()) {
    return absl::InvalidArgumentError("--tls-client-cert and --tls-client-key go together");
  }
  grpc::SslCredentialsOptions options;
  absl::Status read = ReadPem("tls-ca", ca, &options.pem_root_certs);
  if (read.ok() && !cert.empty()) {
    read = ReadPem("tls-client-cert", cert, &options.pem_cert_chain);
    if (read.ok()) read = ReadPem("tls-client-key", key, &options.pem_private_key);
  }
  if (!read.ok()) return read;
  grpc::ChannelArguments args;
  if (const std::string name = absl::GetFlag(FLAGS_tls_server_name); !name.empty()) {
    args.SetSslTargetNameOverride(name);
  }
  return grpc::CreateCustomChannel(target, grpc::SslCredentials(options), args);
}

}  // namespace kvserve::server
