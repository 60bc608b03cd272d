// The built-in demo model: what `kvserve serve` runs when no --model is given, so the server
// works offline on a fresh machine. A small Llama (hidden 256, 4 layers, 8 heads / 4 KV heads,
// FFN 512, context 2048) with random weights drawn deterministically from a fixed seed, and a
// byte-level vocabulary (ByteLevelCodec: 256 byte tokens, BOS, EOS) so any text round-trips.
// Its output is gibberish, mostly printable ASCII: the LM-head rows of printable bytes are
// larger than the others, so they usually win.
//
// Thread-safety: WriteDemoModel may run in several processes at once (the file is written under
// a temporary name and renamed).
#ifndef KVSERVE_SERVER_MODELS_DEMO_MODEL_H_
#define KVSERVE_SERVER_MODELS_DEMO_MODEL_H_

#include <string>

#include "absl/status/statusor.h"

namespace kvserve::server {

inline constexpr char kDemoModelName[] = "kvserve-demo";

// Directory for the file: $KVSERVE_CACHE if set, else $TMPDIR, else /tmp.
std::string DemoModelDirectory();

// Writes the demo model into `directory` unless a complete copy is already there (it is the
// same every time), and returns its path.
absl::StatusOr<std::string> WriteDemoModel(const std::string& directory);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_MODELS_DEMO_MODEL_H_
