// `kvserve client`: one Generate call against a running server, streamed to the terminal.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "kvserve/v1/generation.grpc.pb.h"
#include "server/cli/serve_command.h"
#include "server/cli/tls_files.h"

// Shared with the offline commands (defined in offline_commands.cc).
ABSL_DECLARE_FLAG(std::string, prompt_ids);
ABSL_DECLARE_FLAG(int, max_tokens);
ABSL_DECLARE_FLAG(float, temperature);
ABSL_DECLARE_FLAG(int64_t, seed);
ABSL_DECLARE_FLAG(bool, ignore_eos);

ABSL_FLAG(std::string, target, "localhost:50051", "Server address (host:port)");
ABSL_DECLARE_FLAG(std::string, prompt);  // shared with generate (offline_commands.cc)
ABSL_FLAG(bool, json, false, "Print every streamed message as one JSON line");
ABSL_FLAG(std::vector<std::string>, stop, {}, "Stop strings, comma-separated");
ABSL_FLAG(int32_t, logprobs, 0, "Top alternatives per token to return (0-20)");
ABSL_FLAG(double, timeout, 0, "Deadline in seconds (0 = none)");
ABSL_FLAG(bool, info, false, "Print the model and server info as JSON instead of generating");

namespace kvserve::server {
namespace {

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

int FailRpc(const grpc::Status& status) {
  std::fprintf(stderr, "kvserve client: error %d: %s\n", static_cast<int>(status.error_code()),
               status.error_message().c_str());
  return 1;
}

}  // namespace

int RunClient(const std::vector<char*>& positional) {
  if (!positional.empty()) {
    std::fprintf(stderr, "kvserve client: unexpected argument '%s'\n", positional[0]);
    return 1;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> created = ClientChannel(absl::GetFlag(FLAGS_target));
  if (!created.ok()) {
    std::fprintf(stderr, "kvserve client: %s\n", std::string(created.status().message()).c_str());
    return 1;
  }
  std::shared_ptr<grpc::Channel> channel = *std::move(created);
  auto stub = kvserve::v1::Generation::NewStub(channel);

  if (absl::GetFlag(FLAGS_info)) {
    grpc::ClientContext model_context, server_context;
    kvserve::v1::ModelInfo model;
    kvserve::v1::ServerInfo server;
    grpc::Status s = stub->GetModelInfo(&model_context, {}, &model);
    if (!s.ok()) return FailRpc(s);
    s = stub->GetServerInfo(&server_context, {}, &server);
    if (!s.ok()) return FailRpc(s);
    std::printf("{\"model\":%s,\"server\":%s}\n", ToJson(model).c_str(), ToJson(server).c_str());
    return 0;
  }

  kvserve::v1::GenerateRequest request;
  const std::string ids = absl::GetFlag(FLAGS_prompt_ids);
  if (!ids.empty()) {
    for (absl::string_view part : absl::StrSplit(ids, ',')) {
      int32_t id;
      if (!absl::SimpleAtoi(part, &id)) {
        std::fprintf(stderr, "kvserve client: --prompt-ids: '%s' is not a token id\n",
                     std::string(part).c_str());
        return 1;
      }
      request.mutable_prompt_token_ids()->add_ids(id);
    }
  } else {
    request.set_prompt(absl::GetFlag(FLAGS_prompt));
  }
  request.set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
  request.mutable_sampling()->set_temperature(absl::GetFlag(FLAGS_temperature));
  if (absl::GetFlag(FLAGS_seed) >= 0) {
    request.mutable_sampling()->set_seed(static_cast<uint64_t>(absl::GetFlag(FLAGS_seed)));
  }
  if (absl::GetFlag(FLAGS_ignore_eos)) request.set_ignore_eos(true);
  for (const std::string& s : absl::GetFlag(FLAGS_stop)) request.add_stop(s);
  if (absl::GetFlag(FLAGS_logprobs) > 0) request.set_logprobs(absl::GetFlag(FLAGS_logprobs));

  grpc::ClientContext context;
  if (absl::GetFlag(FLAGS_timeout) > 0) {
    context.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::microseconds(static_cast<int64_t>(absl::GetFlag(FLAGS_timeout) * 1e6)));
  }
  const bool json = absl::GetFlag(FLAGS_json);
  std::unique_ptr<grpc::ClientReader<kvserve::v1::GenerateResponse>> reader =
      stub->Generate(&context, request);
  kvserve::v1::GenerateResponse response, last;
  while (reader->Read(&response)) {
    if (json) {
      std::printf("%s\n", ToJson(response).c_str());
    } else {
      std::fwrite(response.text().data(), 1, response.text().size(), stdout);
    }
    std::fflush(stdout);
    if (response.finish_reason() != kvserve::v1::FINISH_REASON_UNSPECIFIED) last = response;
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    if (!json) std::printf("\n");
    return FailRpc(status);
  }
  if (!json) {
    std::printf("\n");
    std::fprintf(stderr, "[%s: %d prompt + %d generated tokens, first token after %.3f s]\n",
                 kvserve::v1::FinishReason_Name(last.finish_reason()).c_str(),
                 last.usage().prompt_tokens(), last.usage().completion_tokens(),
                 last.timings().time_to_first_token_seconds());
  }
  return 0;
}

}  // namespace kvserve::server
