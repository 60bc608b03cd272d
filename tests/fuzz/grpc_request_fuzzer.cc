// Fuzzes the gRPC request path from the bytes a client sends: ReadRequest (the UTF-8 walk of the
// wire format, then protobuf's parser) into a GenerateRequest or a ChatRequest, the chat rendered
// into a GenerateRequest (ChatToGenerateRequest, with a Llama 3.1 template), then
// BuildGenerationRequest against the demo model's vocabulary and the status mapping. Byte 0 picks
// the method (bit 0: Chat), the rest is the serialized request message.
//
// Checked: an accepted request keeps the validation point's rules (request_checks.h); every
// string of a request ReadRequest accepted is valid UTF-8 (what its UTF-8 walk promises).
#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/utf8.h"
#include "kvserve/v1/generation.pb.h"
#include "server/grpc/generation_service.h"
#include "server/grpc/proto_request.h"
#include "server/grpc/raw_request.h"
#include "server/grpc/status_mapping.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/request_checks.h"

namespace kvserve::fuzz {
namespace {

bool IsUtf8(const std::string& s) { return base::FindInvalidUtf8(s) == std::string::npos; }

void CheckStrings(const kvserve::v1::GenerateRequest& request) {
  FuzzCheck(IsUtf8(request.request_id()) && IsUtf8(request.prompt()),
            "ReadRequest accepted a string that is not UTF-8");
  for (const std::string& stop : request.stop()) {
    FuzzCheck(IsUtf8(stop), "ReadRequest accepted a stop string that is not UTF-8");
  }
}

absl::Status Build(const kvserve::v1::GenerateRequest& request) {
  const server::ServingBackend& backend = FuzzBackend();
  absl::StatusOr<server::BuiltRequest> built =
      server::BuildGenerationRequest(request, *backend.codec, backend.limits);
  if (!built.ok()) return built.status();
  CheckBuiltRequest(*built, *backend.codec, backend.limits);
  return absl::OkStatus();
}

absl::Status Handle(bool chat, const grpc::ByteBuffer& wire) {
  if (!chat) {
    kvserve::v1::GenerateRequest request;
    if (absl::Status read = server::ReadRequest(wire, &request); !read.ok()) return read;
    CheckStrings(request);
    return Build(request);
  }
  kvserve::v1::ChatRequest request;
  if (absl::Status read = server::ReadRequest(wire, &request); !read.ok()) return read;
  for (const kvserve::v1::ChatMessage& m : request.messages()) {
    FuzzCheck(IsUtf8(m.role()) && IsUtf8(m.content()),
              "ReadRequest accepted a message that is not UTF-8");
  }
  CheckStrings(request.generation());
  absl::StatusOr<kvserve::v1::GenerateRequest> generate =
      server::ChatToGenerateRequest(request, FuzzBackend());
  if (!generate.ok()) return generate.status();
  return Build(*generate);
}

}  // namespace
}  // namespace kvserve::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  grpc_init();  // ByteBuffer and Slice use grpc core
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvserve;
  if (size == 0) return 0;
  const grpc::Slice slice(data + 1, size - 1);
  const grpc::ByteBuffer wire(&slice, 1);
  const absl::Status status = fuzz::Handle((data[0] & 1) != 0, wire);
  if (status.ok()) return 0;
  const grpc::Status mapped = server::ToGrpcStatus(status);
  fuzz::FuzzCheck(mapped.error_code() != grpc::StatusCode::OK, "an error maps to OK");
  fuzz::FuzzCheck(fuzz::IsUtf8(mapped.error_message()), "a gRPC error message is not valid UTF-8");
  return 0;
}
