#include "server/cli/command_flags.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace kvserve::server {
namespace {

// The groups several commands share, so that a flag reads the same on every page.
FlagGroup ModelGroup() { return {"Model", {"model", "offline", "weight_dtype"}}; }
FlagGroup ClientTlsGroup() {
  return {"Security (TLS to the server)",
          {"tls_ca", "tls_client_cert", "tls_client_key", "tls_server_name"}};
}

std::vector<CommandSpec> MakeCommands() {
  std::vector<CommandSpec> commands;
  commands.push_back(
      {"serve",
       "[flags]",
       "Serves kvserve.v1.Generation over gRPC and the OpenAI-compatible API, the chat page, "
       "/health and /metrics over HTTP. Without --model it serves the default model (trained on "
       "War and Peace; --model demo:random: the random-weight test model). "
       "SIGTERM/SIGINT drain in-flight requests, SIGHUP re-reads the TLS files.",
       {ModelGroup(),
        {"Scheduling",
         {"max_num_seqs", "max_num_batched_tokens", "max_queued_requests",
          "enable_prefix_caching"}},
        {"KV cache", {"kv_cache_dtype", "kv_cache_memory", "kv_page_size"}},
        {"Network",
         {"host", "grpc_port", "http_port", "http_io_threads", "http_max_connections",
          "http_max_header_bytes", "http_max_body_bytes", "http_header_timeout",
          "http_body_timeout", "http_idle_timeout"}},
        {"Security", {"api_key", "tls_cert", "tls_key", "tls_client_ca"}},
        {"Shutdown", {"drain_timeout"}},
        {"Testing", {"debug_step_delay_ms"}}}});
  commands.push_back(
      {"generate",
       "--model M (--prompt TEXT | --prompt-ids 1,2,3 | --prompt-ids-file F) [flags]",
       "Runs the model offline (no server) and prints the generated token ids and text as one "
       "JSON line per prompt.",
       {ModelGroup(),
        {"Prompt", {"prompt", "prompt_ids", "prompt_ids_file"}},
        {"Sampling", {"max_tokens", "temperature", "seed", "ignore_eos"}},
        {"Scheduling", {"max_num_seqs", "max_num_batched_tokens", "enable_prefix_caching"}},
        {"KV cache", {"kv_cache_dtype", "kv_pages"}}}});
  commands.push_back({"tokenize",
                      "--model M [flags] TEXT",
                      "Prints the token ids of TEXT as JSON ({\"ids\": [...]}).",
                      {ModelGroup(), {"Tokenizer", {"add_special_tokens"}}}});
  commands.push_back(
      {"logits",
       "--model M --prompt-ids 1,2,3 --out FILE [flags]",
       "Runs one forward pass over the prompt and writes the raw little-endian f32 logits of every "
       "position (rows x vocabulary) to FILE, for reference checks.",
       {ModelGroup(),
        {"Prompt", {"prompt_ids"}},
        {"KV cache", {"kv_cache_dtype"}},
        {"Output", {"out"}}}});
  commands.push_back(
      {"client",
       "(--prompt TEXT | --prompt-ids 1,2,3 | --info) [flags]",
       "Streams one generation from a running server (gRPC) to the terminal, or prints its model "
       "and server info.",
       {{"Connection", {"target", "timeout"}},
        ClientTlsGroup(),
        {"Prompt", {"prompt", "prompt_ids"}},
        {"Sampling", {"max_tokens", "temperature", "seed", "ignore_eos", "stop", "logprobs"}},
        {"Output", {"json", "info"}}}});
  commands.push_back(
      {"health",
       "[flags]",
       "Asks a running server for its gRPC health status; exits 0 only when it is SERVING.",
       {{"Connection", {"target", "service", "timeout"}}, ClientTlsGroup()}});
  return commands;
}

std::string Dashes(absl::string_view underscore_name) {
  return absl::StrReplaceAll(underscore_name, {{"_", "-"}});
}

const char* TypeName(const absl::CommandLineFlag& flag) {
  if (flag.IsOfType<bool>()) return "";
  if (flag.IsOfType<int32_t>() || flag.IsOfType<int64_t>()) return "=INT";
  if (flag.IsOfType<double>() || flag.IsOfType<float>()) return "=NUMBER";
  if (flag.IsOfType<std::vector<std::string>>()) return "=A,B,...";
  return "=TEXT";
}

std::string DefaultText(const absl::CommandLineFlag& flag) {
  const std::string value = flag.DefaultValue();
  if (flag.IsOfType<std::string>() || flag.IsOfType<std::vector<std::string>>()) {
    return absl::StrCat("\"", value, "\"");
  }
  return value;
}

// `text` wrapped at `width` columns, each line indented by `indent` spaces.
std::string Wrap(absl::string_view text, int indent, int width) {
  std::string out;
  std::string line;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!line.empty() && static_cast<int>(line.size() + 1 + word.size()) > width - indent) {
      absl::StrAppend(&out, std::string(indent, ' '), line, "\n");
      line.clear();
    }
    absl::StrAppend(&line, line.empty() ? "" : " ", word);
  }
  if (!line.empty()) absl::StrAppend(&out, std::string(indent, ' '), line, "\n");
  return out;
}

bool Takes(const CommandSpec& command, absl::string_view name) {
  for (const FlagGroup& group : command.groups) {
    for (const char* flag : group.flags) {
      if (name == flag) return true;
    }
  }
  return false;
}

bool IsAbseilBuiltin(absl::string_view name) {
  return name == "helpfull" || name == "flagfile" || name == "fromenv" || name == "tryfromenv";
}

bool IsBoolFlag(absl::string_view name) {
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  return flag != nullptr && flag->IsOfType<bool>();
}

// The message for a flag `command` does not take.
std::string UnknownFlagError(const CommandSpec& command, absl::string_view name) {
  std::string message =
      absl::StrCat("kvserve ", command.name, ": unknown flag --", Dashes(name), ".");
  std::vector<std::string> owners;
  for (const CommandSpec& other : AllCommands()) {
    if (Takes(other, name)) owners.push_back(other.name);
  }
  if (!owners.empty()) {
    absl::StrAppend(&message, " It is a flag of `kvserve ", absl::StrJoin(owners, "`, `kvserve "),
                    "`, not of `kvserve ", command.name, "`.");
  } else {
    std::vector<std::string> candidates;
    for (const FlagGroup& group : command.groups) {
      for (const char* flag : group.flags) candidates.push_back(Dashes(flag));
    }
    if (std::optional<std::string> nearest = NearestWord(Dashes(name), candidates)) {
      absl::StrAppend(&message, " Did you mean --", *nearest, "?");
    }
  }
  absl::StrAppend(&message, "\nRun `kvserve ", command.name, " --help` for its flags.");
  return message;
}

}  // namespace

const std::vector<CommandSpec>& AllCommands() {
  static const std::vector<CommandSpec>* const commands =
      new std::vector<CommandSpec>(MakeCommands());
  return *commands;
}

const CommandSpec* FindCommand(absl::string_view name) {
  for (const CommandSpec& command : AllCommands()) {
    if (name == command.name) return &command;
  }
  return nullptr;
}

absl::StatusOr<std::string> RenderCommandHelp(const CommandSpec& command) {
  constexpr int kWidth = 100;
  std::string out = absl::StrCat("usage: kvserve ", command.name, " ", command.synopsis, "\n\n",
                                 Wrap(command.summary, 0, kWidth));
  for (const FlagGroup& group : command.groups) {
    absl::StrAppend(&out, "\n", group.title, ":\n");
    for (const char* name : group.flags) {
      const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
      if (flag == nullptr) {
        return absl::InternalError(
            absl::StrCat("the help of `", command.name, "` names an unknown flag '", name, "'"));
      }
      absl::StrAppend(&out, "  --", Dashes(name), TypeName(*flag), "  (default ",
                      DefaultText(*flag), ")\n", Wrap(flag->Help(), 6, kWidth));
    }
  }
  absl::StrAppend(&out,
                  "\nFlags may be spelled --name=value or --name value; booleans also --name / "
                  "--noname.\n");
  return out;
}

int EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<int> previous(b.size() + 1), current(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) previous[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int substitute = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitute});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::optional<std::string> NearestWord(absl::string_view word,
                                       const std::vector<std::string>& candidates) {
  const std::string* best = nullptr;
  int best_distance = 0;
  for (const std::string& candidate : candidates) {
    const int d = EditDistance(word, candidate);
    if (best == nullptr || d < best_distance) {
      best = &candidate;
      best_distance = d;
    }
  }
  if (best == nullptr || best_distance > static_cast<int>(word.size()) / 2 + 1) {
    return std::nullopt;
  }
  return *best;
}

FlagCheck CheckCommandFlags(const CommandSpec& command, const std::vector<std::string>& args) {
  FlagCheck check;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--") break;
    if (arg == "-h" || arg == "--help" || arg == "-help") {
      check.help = true;
      continue;
    }
    if (arg.size() < 2 || arg[0] != '-') continue;  // a positional argument
    absl::string_view name = arg;
    while (absl::ConsumePrefix(&name, "-")) {
    }
    const size_t eq = name.find('=');
    const bool has_value = eq != absl::string_view::npos;
    name = name.substr(0, eq);
    if (IsAbseilBuiltin(name)) continue;
    if (Takes(command, name)) {
      // `--model FILE`: FILE is the value, not a positional argument or another flag.
      if (!has_value && !IsBoolFlag(name)) ++i;
      continue;
    }
    absl::string_view negated = name;
    if (!has_value && absl::ConsumePrefix(&negated, "no") && Takes(command, negated) &&
        IsBoolFlag(negated)) {
      continue;
    }
    check.error = UnknownFlagError(command, name);
    return check;
  }
  return check;
}

}  // namespace kvserve::server
