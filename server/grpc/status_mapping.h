// The one place where kvserve's absl::Status errors become gRPC statuses.
//
// absl's canonical codes are gRPC's codes (same names, same numbers), so the mapping keeps the
// code and the message: INVALID_ARGUMENT naming the bad field, OUT_OF_RANGE for prompts that do
// not fit the context, RESOURCE_EXHAUSTED for a full queue, UNAVAILABLE while loading or
// draining, ALREADY_EXISTS for a request id in use... Codes outside the canonical set become
// UNKNOWN. Thread-safety: pure functions.
#ifndef KVSERVE_SERVER_GRPC_STATUS_MAPPING_H_
#define KVSERVE_SERVER_GRPC_STATUS_MAPPING_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace kvserve::server {

grpc::StatusCode ToGrpcCode(absl::StatusCode code);
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_GRPC_STATUS_MAPPING_H_
