// Offline subcommands of the kvserve binary: they load a model and run it directly, with no
// server, scheduler threads or network. Each returns the process exit code (0 ok, 1 error
// reported on stderr).
#ifndef KVSERVE_SERVER_CLI_OFFLINE_COMMANDS_H_
#define KVSERVE_SERVER_CLI_OFFLINE_COMMANDS_H_

#include <string>
#include <vector>

namespace kvserve::server {

int RunGenerate(const std::vector<char*>& positional);
int RunLogits(const std::vector<char*>& positional);
// `kvserve tokenize --model FILE "text"`: prints {"ids":[...]} (BOS only with
// --add-special-tokens).
int RunTokenize(const std::vector<char*>& positional);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_CLI_OFFLINE_COMMANDS_H_
