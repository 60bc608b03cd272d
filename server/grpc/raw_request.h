// The request of a gRPC call read from its bytes by kvserve, not by grpc++.
//
// For a typed method grpc++ parses the request before the service sees the call, and answers
// every failure alike, with UNIMPLEMENTED and an empty message: a proto3 string field holding
// invalid UTF-8 (protobuf refuses it, and logs an error per request), any other malformed
// message, and a call cancelled before its request message arrived (there is none), which the
// metrics then counted as UNIMPLEMENTED. GenerationService registers its methods as raw
// (grpc::ByteBuffer in and out) and reads each request here, so each case has its own answer:
//
//   no request message (the call ended first)    CANCELLED
//   a string field that is not UTF-8             INVALID_ARGUMENT naming the field by its path
//                                                ("messages[1].content", "generation.stop[0]")
//   anything else malformed                      INVALID_ARGUMENT naming the message type
//
// The UTF-8 check walks the wire format with the message's descriptor before protobuf parses
// (protobuf's parser only says that something failed), using base/utf8's rule, which is proto3's.
// The wire contract (kvserve/v1/generation.proto) keeps its `string` fields, so clients and their
// generated code are unchanged.
//
// Thread-safety: pure functions.
#ifndef KVSERVE_SERVER_GRPC_RAW_REQUEST_H_
#define KVSERVE_SERVER_GRPC_RAW_REQUEST_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/byte_buffer.h"

namespace kvserve::server {

// Parses the request of a raw call into `request` (cleared first), by the table above.
absl::Status ReadRequest(const grpc::ByteBuffer& wire, google::protobuf::Message* request);

// The path of the first string field (of `type` or of a message nested in it) whose bytes in
// `wire` are not valid UTF-8, with the byte offset within the field; nullopt when there is none.
// Bytes that do not parse as `type` end the walk (parsing reports them).
struct InvalidUtf8Field {
  std::string path;
  size_t offset = 0;
};
std::optional<InvalidUtf8Field> FindInvalidUtf8Field(const google::protobuf::Descriptor& type,
                                                     absl::string_view wire);

// The bytes of a raw call's response, replacing what `wire` held.
absl::Status WriteResponse(const google::protobuf::Message& response, grpc::ByteBuffer* wire);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_GRPC_RAW_REQUEST_H_
