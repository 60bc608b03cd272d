// TLS for `kvserve serve` (--tls-cert, --tls-key, --tls-client-ca: one identity for the gRPC and
// the HTTP port) and for the client commands (--tls-ca, --tls-client-cert, --tls-client-key,
// --tls-server-name).
//
// Rotation: `serve` re-reads the files on SIGHUP (ReadServerTls), hands the PEM to the HTTP
// server (HttpServer::ReloadTls, which checks that the key belongs to the certificate) and then
// to GrpcTlsIdentity::Update. gRPC has no call that swaps a server's certificate, only a
// provider that watches files; so GrpcTlsIdentity keeps the identity in anonymous in-memory files
// (memfd) that gRPC's file watcher re-reads every second, and Update replaces them atomically
// (dup2). Open connections and streams keep the identity they were established with.
//
// Thread-safety: GrpcTlsIdentity's methods from one thread (the signal thread).
#ifndef KVSERVE_SERVER_CLI_TLS_FILES_H_
#define KVSERVE_SERVER_CLI_TLS_FILES_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "server/http/http_server.h"

namespace kvserve::server {

// The --tls-* files of `serve`, read; nullopt when TLS is off (no --tls-cert / --tls-key).
// Errors: one of --tls-cert / --tls-key without the other, an unreadable or empty file.
absl::StatusOr<std::optional<TlsPem>> ReadServerTls();

class GrpcTlsIdentity {
 public:
  static absl::StatusOr<std::unique_ptr<GrpcTlsIdentity>> Create(const TlsPem& pem);
  ~GrpcTlsIdentity();
  GrpcTlsIdentity(const GrpcTlsIdentity&) = delete;
  GrpcTlsIdentity& operator=(const GrpcTlsIdentity&) = delete;

  // Credentials for ServerBuilder::AddListeningPort (client certificates required and checked
  // against the client CA when there is one).
  std::shared_ptr<grpc::ServerCredentials> credentials() const { return credentials_; }
  // The new identity; gRPC picks it up within about a second.
  absl::Status Update(const TlsPem& pem);

 private:
  GrpcTlsIdentity() = default;

  int key_fd_ = -1;
  int cert_fd_ = -1;
  int ca_fd_ = -1;
  std::shared_ptr<grpc::ServerCredentials> credentials_;
};

// The channel credentials of the client commands: TLS when --tls-ca is set (with a client
// certificate when --tls-client-cert / --tls-client-key are), else insecure; and the channel to
// `target` with --tls-server-name as the name to check the server's certificate against.
absl::StatusOr<std::shared_ptr<grpc::Channel>> ClientChannel(const std::string& target);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_CLI_TLS_FILES_H_
