// The gRPC side of the one validation point (server/frontend/request_builder.h): a
// kvserve.v1.GenerateRequest read into GenerationParams, field for field, and the way gRPC names
// fields in errors ("sampling.top_p", "prompt_token_ids[3]").
//
// Thread-safety: pure functions.
#ifndef KVSERVE_SERVER_GRPC_PROTO_REQUEST_H_
#define KVSERVE_SERVER_GRPC_PROTO_REQUEST_H_

#include "absl/status/statusor.h"
#include "kvserve/v1/generation.pb.h"
#include "server/frontend/request_builder.h"
#include "server/models/text_codec.h"

namespace kvserve::server {

// Copies every set field; checks nothing.
GenerationParams ParamsFromProto(const kvserve::v1::GenerateRequest& request);

// gRPC's field names: the proto's paths.
const WireRules& GrpcWireRules();

// ParamsFromProto, then BuildGenerationRequest with GrpcWireRules.
absl::StatusOr<BuiltRequest> BuildGenerationRequest(
    const kvserve::v1::GenerateRequest& request, const TextCodec& codec,
    const RequestLimits& limits, constrain::ConstraintCompiler* constraints = nullptr);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_GRPC_PROTO_REQUEST_H_
