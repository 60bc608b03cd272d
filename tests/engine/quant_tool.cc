// quant_tool: the quantized formats and kernels from the command line, for the NumPy checks
// in tests/reference/check_quant_kernels.py (which share no code with kvserve).
//
//   quant_tool dequantize TYPE IN.bin OUT.f32          ggml blocks -> float32
//   quant_tool quantize-activations q8_0|q8_1|q8_K IN.f32 OUT.bin --k K
//                                                      rows of K floats -> ggml block bytes
//   quant_tool matmul TYPE W.bin N K X.f32 M OUT.f32 [--isa NAME]
//                                                      y[M, N] = x[M, K] . W[N, K]^T
//   quant_tool isas                                    the paths this CPU runs, one per line
// TYPE is a ggml type name (Q4_0, Q4_K, IQ4_XS, ...). Exit status 2 on bad usage, 1 on errors.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "engine/quant/activations.h"
#include "engine/quant/formats.h"
#include "engine/quant/isa.h"
#include "engine/quant/quant_matmul.h"

namespace kvserve::engine::quant {
namespace {

bool ReadFile(const char* path, std::vector<uint8_t>* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), {});
  return true;
}

bool WriteFile(const char* path, const void* data, size_t bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  return static_cast<bool>(out);
}

const FormatInfo* ParseFormat(std::string name) {
  name = absl::AsciiStrToUpper(name);
  for (const FormatInfo& f : kFormats) {
    if (GgmlTypeName(f.type) == name) return &f;
  }
  return nullptr;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "quant_tool: %s\n", message.c_str());
  return 1;
}

std::vector<float> AsFloats(const std::vector<uint8_t>& bytes) {
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

int Dequantize(char** argv) {
  const FormatInfo* f = ParseFormat(argv[2]);
  std::vector<uint8_t> in;
  if (f == nullptr) return Fail(std::string("unknown type ") + argv[2]);
  if (!ReadFile(argv[3], &in)) return Fail(std::string("cannot read ") + argv[3]);
  if (in.size() % f->block_bytes != 0) return Fail("input is not a whole number of blocks");
  const int64_t n = static_cast<int64_t>(in.size() / f->block_bytes) * f->block_k;
  std::vector<float> out(n);
  DequantizeRow(*f, in.data(), out.data(), n);
  return WriteFile(argv[4], out.data(), out.size() * 4) ? 0 : Fail("cannot write output");
}

int QuantizeActivations(int argc, char** argv) {
  std::string kind_name = absl::AsciiStrToUpper(argv[2]);
  ActKind kind;
  if (kind_name == "Q8_0") {
    kind = ActKind::kQ8_0;
  } else if (kind_name == "Q8_1") {
    kind = ActKind::kQ8_1;
  } else if (kind_name == "Q8_K") {
    kind = ActKind::kQ8_K;
  } else {
    return Fail("activation kind must be q8_0, q8_1 or q8_K");
  }
  if (argc != 7 || std::strcmp(argv[5], "--k") != 0) return 2;
  const int64_t k = std::atoll(argv[6]);
  std::vector<uint8_t> in;
  if (!ReadFile(argv[3], &in)) return Fail(std::string("cannot read ") + argv[3]);
  const std::vector<float> x = AsFloats(in);
  if (k <= 0 || k % ActBlockK(kind) != 0 || x.size() % k != 0) {
    return Fail("--k must be a multiple of the block and divide the input");
  }
  const int64_t rows = static_cast<int64_t>(x.size()) / k;
  QuantizedRows q;
  Quantize(kind, x.data(), rows, k, DefaultQuantIsa(), &q);
  std::vector<uint8_t> out;
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<uint8_t> row = ToGgmlBlocks(q, r);
    out.insert(out.end(), row.begin(), row.end());
  }
  return WriteFile(argv[4], out.data(), out.size()) ? 0 : Fail("cannot write output");
}

int Matmul(int argc, char** argv) {
  if (argc != 9 && argc != 11) return 2;
  const FormatInfo* f = ParseFormat(argv[2]);
  if (f == nullptr) return Fail(std::string("unknown type ") + argv[2]);
  const int64_t n = std::atoll(argv[4]), k = std::atoll(argv[5]), m = std::atoll(argv[7]);
  QuantIsa isa = DefaultQuantIsa();
  if (argc == 11) {
    if (std::strcmp(argv[9], "--isa") != 0) return 2;
    absl::StatusOr<QuantIsa> parsed = ParseQuantIsa(argv[10]);
    if (!parsed.ok()) return Fail(std::string(parsed.status().message()));
    isa = *parsed;
  }
  std::vector<uint8_t> w, xb;
  if (!ReadFile(argv[3], &w) || !ReadFile(argv[6], &xb)) return Fail("cannot read inputs");
  const std::vector<float> x = AsFloats(xb);
  if (n <= 0 || k <= 0 || m <= 0 || k % f->block_k != 0 ||
      static_cast<int64_t>(w.size()) != n * (k / f->block_k) * f->block_bytes ||
      static_cast<int64_t>(x.size()) != m * k) {
    return Fail("shapes do not match the inputs");
  }
  absl::StatusOr<QuantMatrix> matrix = QuantMatrix::Create(*f, w.data(), n, k, isa);
  if (!matrix.ok()) return Fail(std::string(matrix.status().message()));
  QuantizedRows a;
  Quantize(f->act, x.data(), m, k, isa, &a);
  std::vector<float> y(m * n);
  matrix->Multiply(a, 0, matrix->units(), y.data(), n);
  return WriteFile(argv[8], y.data(), y.size() * 4) ? 0 : Fail("cannot write output");
}

int Main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "isas" && argc == 2) {
    for (QuantIsa isa : AvailableQuantIsas())
      std::printf("%s\n", std::string(QuantIsaName(isa)).c_str());
    return 0;
  }
  if (cmd == "dequantize" && argc == 5) return Dequantize(argv);
  if (cmd == "quantize-activations" && argc >= 5) return QuantizeActivations(argc, argv);
  if (cmd == "matmul") return Matmul(argc, argv);
  std::fprintf(stderr,
               "usage: quant_tool dequantize TYPE IN OUT | quantize-activations KIND IN OUT --k K |"
               " matmul TYPE W N K X M OUT [--isa NAME] | isas\n");
  return 2;
}

}  // namespace
}  // namespace kvserve::engine::quant

int main(int argc, char** argv) { return kvserve::engine::quant::Main(argc, argv); }
