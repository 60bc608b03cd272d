// Which flags each kvserve subcommand takes, its `--help` page, and the check that rejects a flag
// the command does not take (naming the nearest one it does).
//
// All flags are Abseil flags in one process-wide registry (a flag such as --model is shared by
// several commands), so Abseil alone cannot say which belong to `serve`; this table does. Every
// name in it must be a registered flag (RenderCommandHelp fails otherwise, and the help tests
// run every page), and tests/cli/cli_help_test.py checks that every flag defined in server/cli/
// is listed for some command.
//
// Thread-safety: the table is immutable; the functions only read the flag registry (call them
// from main before flags are parsed or changed).
#ifndef KVSERVE_SERVER_CLI_COMMAND_FLAGS_H_
#define KVSERVE_SERVER_CLI_COMMAND_FLAGS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvserve::server {

// Flags of one topic on a help page (underscore names, as Abseil registers them).
struct FlagGroup {
  const char* title;
  std::vector<const char*> flags;
};

struct CommandSpec {
  const char* name;      // "serve"
  const char* synopsis;  // after "usage: kvserve NAME "
  const char* summary;   // one paragraph on what the command does
  std::vector<FlagGroup> groups;
};

// Every subcommand, in the order `kvserve --help` lists them.
const std::vector<CommandSpec>& AllCommands();

// nullptr when `name` is not a subcommand.
const CommandSpec* FindCommand(absl::string_view name);

// The command's help page: synopsis, summary, then each group's flags (dash spelling) with type,
// default and help text. Internal error when the table names an unregistered flag.
absl::StatusOr<std::string> RenderCommandHelp(const CommandSpec& command);

// Levenshtein distance (insertions, deletions, substitutions; bytes).
int EditDistance(absl::string_view a, absl::string_view b);

// The candidate nearest to `word` by EditDistance (the first of equals), or nullopt when even the
// nearest differs in more than about half of `word`'s characters (then it is no useful hint).
std::optional<std::string> NearestWord(absl::string_view word,
                                       const std::vector<std::string>& candidates);

// What main does with a subcommand's arguments before Abseil parses them.
struct FlagCheck {
  bool help = false;  // --help or -h was given: print the page, exit 0
  std::string error;  // non-empty: an unknown flag, with a suggestion; print it, exit 2
};

// Scans `args` (the arguments after the subcommand, underscore spelling, as main rewrote them)
// for --help/-h and for flags `command` does not take. Values of non-boolean flags given as a
// separate argument (`--model FILE`) are skipped; scanning stops at `--`. Abseil's own
// --helpfull, --flagfile, --fromenv and --tryfromenv are let through.
FlagCheck CheckCommandFlags(const CommandSpec& command, const std::vector<std::string>& args);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_CLI_COMMAND_FLAGS_H_
