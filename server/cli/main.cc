// kvserve: the command line. `kvserve SUBCOMMAND [--flags]`.
//   generate  offline greedy (or sampled) continuation of prompt token ids, one JSON line
//   tokenize  token ids of a text, one JSON line
//   logits    offline forward pass over a prompt; writes raw f32 logits (for reference checks)
//   serve     the gRPC server (kvserve.v1.Generation, health, reflection)
//   client    streams one generation from a running server
//   health    gRPC health check of a running server (exit 0 when SERVING)
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "server/cli/command_flags.h"
#include "server/cli/health_command.h"
#include "server/cli/offline_commands.h"
#include "server/cli/serve_command.h"

namespace {

constexpr char kUsage[] =
    "usage: kvserve <command> [flags]\n"
    "commands:\n"
    "  serve    [--model M] [--grpc-port 50051]                   gRPC server (demo model if no "
    "--model)\n"
    "           [--http-port 8080] [--tls-cert C --tls-key K]     HTTP/OpenAI on an event loop; "
    "TLS on both ports\n"
    "  client   --prompt TEXT [--target HOST:PORT] [--json]       stream a generation from a "
    "server\n"
    "  health   [--target HOST:PORT] [--service NAME] [--timeout S] exit 0 if the server is "
    "SERVING\n"
    "           [--tls-ca CA.pem [--tls-client-cert C --tls-client-key K]] over TLS\n"
    "  generate --model FILE --prompt-ids 1,2,3 --max-tokens N   greedy continuation as JSON\n"
    "           (or --prompt \"text\": tokenized with BOS; prints ids and text)\n"
    "  tokenize --model FILE [--add-special-tokens] \"text\"        token ids as JSON\n"
    "  logits   --model FILE --prompt-ids 1,2,3 --out FILE        raw f32 logits of every "
    "position\n"
    "M is a GGUF file, a Hugging Face folder, or hf:OWNER/REPO[:FILE.gguf] (downloaded; "
    "--offline: cache only)\n"
    "run `kvserve <command> --help` for its flags";

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  if (argc < 2 || argv[1][0] == '-') {
    std::fprintf(stderr, "%s\n", kUsage);
    return argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)
               ? 0
               : 1;
  }
  const std::string command = argv[1];
  const kvserve::server::CommandSpec* spec = kvserve::server::FindCommand(command);
  if (spec == nullptr) {
    std::vector<std::string> names;
    for (const kvserve::server::CommandSpec& c : kvserve::server::AllCommands()) {
      names.push_back(c.name);
    }
    const std::optional<std::string> nearest = kvserve::server::NearestWord(command, names);
    std::fprintf(stderr, "kvserve: unknown command '%s'%s\n%s\n", command.c_str(),
                 nearest ? ("; did you mean '" + *nearest + "'?").c_str() : "", kUsage);
    return 2;
  }
  // Drop the subcommand so absl sees `kvserve --flags...`.
  // Flags may be spelled with dashes (--max-tokens) or underscores (--max_tokens); Abseil knows
  // the underscore names, so rewrite the name part of each flag.
  std::vector<std::string> storage;
  storage.reserve(argc);
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() > 2 && arg[0] == '-' && arg != "--") {
      const size_t eq = arg.find('=');
      for (size_t k = arg.find_first_not_of('-'); k < std::min(eq, arg.size()); ++k) {
        if (arg[k] == '-') arg[k] = '_';
      }
    }
    storage.push_back(std::move(arg));
  }
  // This command's flags only: Abseil would take any command's (--prompt for serve) silently,
  // and its --help lists nothing useful for a program with subcommands.
  const kvserve::server::FlagCheck check = kvserve::server::CheckCommandFlags(*spec, storage);
  if (!check.error.empty()) {
    std::fprintf(stderr, "%s\n", check.error.c_str());
    return 2;
  }
  if (check.help) {
    absl::StatusOr<std::string> help = kvserve::server::RenderCommandHelp(*spec);
    if (!help.ok()) {
      std::fprintf(stderr, "kvserve: %s\n", std::string(help.status().message()).c_str());
      return 1;
    }
    std::fwrite(help->data(), 1, help->size(), stdout);
    return 0;
  }
  std::vector<char*> args;
  args.push_back(argv[0]);
  for (std::string& a : storage) args.push_back(a.data());
  std::vector<char*> positional =
      absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  positional.erase(positional.begin());

  if (command == "generate") return kvserve::server::RunGenerate(positional);
  if (command == "tokenize") return kvserve::server::RunTokenize(positional);
  if (command == "logits") return kvserve::server::RunLogits(positional);
  if (command == "serve") return kvserve::server::RunServe(positional);
  if (command == "client") return kvserve::server::RunClient(positional);
  if (command == "health") return kvserve::server::RunHealth(positional);
  std::fprintf(stderr, "kvserve: command '%s' has no entry point\n", command.c_str());
  return 1;
}
