// Linear over oneDNN 2.x matmul. oneDNN's preferred weight layout may depend on the row count
// m, but a Linear keeps one packed copy: the layout is chosen at kLayoutProbeRows, and every
// other m gets a primitive built for that fixed layout. Only if oneDNN then offers nothing but
// its reference kernel for some m does the Linear add a plain-layout copy for such m.
#include "engine/primitives.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/cpu_features.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace kvserve::engine {
namespace {

using DnnlDType = dnnl::memory::data_type;
using DnnlTag = dnnl::memory::format_tag;

// The packed weight layout is the one oneDNN prefers at this row count. One full brgemm M block
// (oneDNN 2.x blocks M by up to 64), between decode batches and prefill chunks. Other row counts
// reuse this layout (see Linear::Impl::EntryFor).
constexpr int64_t kLayoutProbeRows = 64;

// One CPU engine and one stream for the whole process. Leaked on purpose: Linears may live in
// other statics and must not outlive the engine at exit.
struct OneDnnContext {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
};

OneDnnContext& Context() {
  static OneDnnContext* const context = new OneDnnContext;
  return *context;
}

// f32 -> bf16 with round-to-nearest-even; NaNs stay (quiet) NaNs.
inline uint16_t F32ToBf16Rne(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// Bulk version of F32ToBf16Rne. Written with GCC vector types so the same source compiles to
// AVX-512 on hosts that have it (the only hosts where oneDNN 2.6 runs bf16 matmul) and to SSE2
// elsewhere; both clones compute exactly what the scalar function does (checked for all 2^32
// inputs while writing this).
typedef uint32_t U32x16 __attribute__((vector_size(64)));
typedef uint16_t U16x16 __attribute__((vector_size(32)));

__attribute__((target_clones("avx512f", "default"))) void F32ToBf16RneBulk(const float* src,
                                                                           uint16_t* dst,
                                                                           int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    U32x16 u;
    std::memcpy(&u, src + i, sizeof(u));
    const U32x16 is_nan = (U32x16)((u & 0x7fffffffu) > 0x7f800000u);  // all-ones lanes
    const U32x16 rounded = u + 0x7fffu + ((u >> 16) & 1u);
    const U32x16 bits = (rounded & ~is_nan) | ((u | 0x400000u) & is_nan);
    const U16x16 out = __builtin_convertvector(bits >> 16, U16x16);
    std::memcpy(dst + i, &out, sizeof(out));
  }
  for (; i < n; ++i) dst[i] = F32ToBf16Rne(src[i]);
}

DnnlDType ToDnnl(WeightDType dtype) {
  return dtype == WeightDType::kBF16 ? DnnlDType::bf16 : DnnlDType::f32;
}

// Implementations oneDNN falls back to when nothing optimized fits ("ref:any").
bool IsReferenceImpl(std::string_view impl) { return impl.find("ref") != std::string_view::npos; }

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "kvserve primitives: %s\n", message.c_str());
  std::abort();
}

}  // namespace

std::string_view WeightDTypeName(WeightDType dtype) {
  switch (dtype) {
    case WeightDType::kF32:
      return "f32";
    case WeightDType::kBF16:
      return "bf16";
  }
  return "unknown";
}

WeightDType DefaultWeightDType() {
  return CpuFeatures().avx512_bf16 ? WeightDType::kBF16 : WeightDType::kF32;
}

struct Linear::Impl {
  // A matmul for one row count, with memory objects whose data handles are set per call.
  struct Entry {
    dnnl::matmul matmul;
    dnnl::memory src;
    dnnl::memory dst;
    std::unordered_map<int, dnnl::memory> args;  // Built once; src/dst handles change.
    std::string impl_name;  // oneDNN's name, marked when the plain weights copy is used.
  };

  int64_t in_features = 0;
  int64_t out_features = 0;
  WeightDType dtype = WeightDType::kF32;
  DnnlDType dnnl_dtype = DnnlDType::f32;

  // The one packed copy of the weights, [in, out] in oneDNN's terms, in the layout preferred at
  // kLayoutProbeRows.
  dnnl::memory packed_weights;
  // A plain row-major [in, out] copy, made lazily only if some row count cannot use the packed
  // layout with an optimized kernel (doubles this Linear's weight memory then).
  dnnl::memory plain_weights;
  dnnl::memory bias;  // Empty handle when there is no bias.

  std::vector<uint16_t> x_bf16;  // bf16 copy of x for bf16 weights; grows to the largest m.
  absl::flat_hash_map<int64_t, Entry> entries;  // Keyed by row count m.
  std::string impl_name;                        // Of the most recent Forward.

  dnnl::memory::desc SrcDesc(int64_t m) const {
    return dnnl::memory::desc({m, in_features}, dnnl_dtype, DnnlTag::ab);
  }
  dnnl::memory::desc DstDesc(int64_t m) const {
    return dnnl::memory::desc({m, out_features}, DnnlDType::f32, DnnlTag::ab);
  }
  dnnl::memory::desc BiasDesc() const {
    return dnnl::memory::desc({1, out_features}, DnnlDType::f32, DnnlTag::ab);
  }
  dnnl::memory::desc PlainWeightsDesc() const {
    return dnnl::memory::desc({in_features, out_features}, dnnl_dtype, DnnlTag::ab);
  }

  // A matmul primitive descriptor for m rows with the given weights layout (or format_tag::any),
  // or nullopt when oneDNN has no implementation for it.
  std::optional<dnnl::matmul::primitive_desc> MakePd(int64_t m,
                                                     const dnnl::memory::desc& weights) const {
    try {
      const dnnl::matmul::desc desc =
          bias ? dnnl::matmul::desc(SrcDesc(m), weights, BiasDesc(), DstDesc(m))
               : dnnl::matmul::desc(SrcDesc(m), weights, DstDesc(m));
      return dnnl::matmul::primitive_desc(desc, dnnl::primitive_attr(), Context().engine);
    } catch (const dnnl::error&) {
      return std::nullopt;
    }
  }

  Entry MakeEntry(int64_t m, const dnnl::matmul::primitive_desc& pd, bool uses_plain) const {
    Entry entry;
    entry.matmul = dnnl::matmul(pd);
    entry.src = dnnl::memory(SrcDesc(m), Context().engine, DNNL_MEMORY_NONE);
    entry.dst = dnnl::memory(DstDesc(m), Context().engine, DNNL_MEMORY_NONE);
    entry.args = {{DNNL_ARG_SRC, entry.src},
                  {DNNL_ARG_WEIGHTS, uses_plain ? plain_weights : packed_weights},
                  {DNNL_ARG_DST, entry.dst}};
    if (bias) entry.args.emplace(DNNL_ARG_BIAS, bias);
    entry.impl_name = pd.impl_info_str();
    if (uses_plain) entry.impl_name += " [plain weights]";
    return entry;
  }

  void EnsurePlainWeights() {
    if (plain_weights) return;
    OneDnnContext& context = Context();
    plain_weights = dnnl::memory(PlainWeightsDesc(), context.engine);
    dnnl::reorder(packed_weights, plain_weights)
        .execute(context.stream, packed_weights, plain_weights);
    context.stream.wait();
  }

  // The cached matmul for m rows, created on first use. Preference: the packed weights with an
  // optimized kernel; else the plain copy; else whatever works (correct, maybe slow).
  Entry& EntryFor(int64_t m) {
    auto it = entries.find(m);
    if (it != entries.end()) return it->second;

    std::optional<dnnl::matmul::primitive_desc> packed_pd = MakePd(m, packed_weights.get_desc());
    if (packed_pd && !IsReferenceImpl(packed_pd->impl_info_str())) {
      return entries.emplace(m, MakeEntry(m, *packed_pd, false)).first->second;
    }
    std::optional<dnnl::matmul::primitive_desc> plain_pd = MakePd(m, PlainWeightsDesc());
    if (plain_pd && (!packed_pd || !IsReferenceImpl(plain_pd->impl_info_str()))) {
      EnsurePlainWeights();
      return entries.emplace(m, MakeEntry(m, *plain_pd, true)).first->second;
    }
    if (packed_pd) return entries.emplace(m, MakeEntry(m, *packed_pd, false)).first->second;
    // Create() built a primitive at kLayoutProbeRows, and oneDNN's reference matmul takes any
    // row count with plain weights, so this is a broken invariant, not an input error.
    Die(absl::StrCat("no oneDNN matmul for m=", m, " in=", in_features, " out=", out_features,
                     " dtype=", std::string(WeightDTypeName(dtype))));
  }
};

absl::StatusOr<std::unique_ptr<Linear>> Linear::Create(const float* weight, int64_t out_features,
                                                       int64_t in_features, WeightDType dtype,
                                                       const float* bias) {
  if (weight == nullptr) return absl::InvalidArgumentError("Linear::Create: weight is null");
  if (out_features < 1 || in_features < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("Linear::Create: bad weight shape [", out_features, ", ", in_features, "]"));
  }
  auto impl = std::make_unique<Impl>();
  impl->in_features = in_features;
  impl->out_features = out_features;
  impl->dtype = dtype;
  impl->dnnl_dtype = ToDnnl(dtype);
  OneDnnContext& context = Context();

  try {
    if (bias != nullptr) {
      impl->bias = dnnl::memory(impl->BiasDesc(), context.engine);
      std::memcpy(impl->bias.get_data_handle(), bias, out_features * sizeof(float));
    }

    std::optional<dnnl::matmul::primitive_desc> pd = impl->MakePd(
        kLayoutProbeRows,
        dnnl::memory::desc({in_features, out_features}, impl->dnnl_dtype, DnnlTag::any));
    if (!pd) {
      if (dtype == WeightDType::kBF16) {
        return absl::FailedPreconditionError(
            "oneDNN has no bf16 matmul on this CPU (oneDNN 2.x needs AVX-512 for bf16); use f32 "
            "weights");
      }
      return absl::InternalError(absl::StrCat("oneDNN could not create an f32 matmul for [",
                                              out_features, ", ", in_features, "] weights"));
    }

    // The caller's [out, in] row-major matrix is oneDNN's [in, out] weights in format "ba". For
    // bf16, round it ourselves (nearest-even) so the numbers do not depend on oneDNN's reorder.
    std::vector<uint16_t> weight_bf16;
    dnnl::memory source;
    const dnnl::memory::dims dims = {in_features, out_features};
    if (dtype == WeightDType::kBF16) {
      weight_bf16.resize(out_features * in_features);
      F32ToBf16RneBulk(weight, weight_bf16.data(), out_features * in_features);
      source =
          dnnl::memory({dims, DnnlDType::bf16, DnnlTag::ba}, context.engine, weight_bf16.data());
    } else {
      // oneDNN only reads a reorder's source.
      source = dnnl::memory({dims, DnnlDType::f32, DnnlTag::ba}, context.engine,
                            const_cast<float*>(weight));
    }
    impl->packed_weights = dnnl::memory(pd->weights_desc(), context.engine);
    dnnl::reorder(source, impl->packed_weights)
        .execute(context.stream, source, impl->packed_weights);
    context.stream.wait();

    impl->entries.emplace(kLayoutProbeRows, impl->MakeEntry(kLayoutProbeRows, *pd, false));
    impl->impl_name = pd->impl_info_str();
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN error while packing [", out_features, ", ",
                                            in_features, "] ", std::string(WeightDTypeName(dtype)),
                                            " weights: ", e.what()));
  }
  return std::unique_ptr<Linear>(new Linear(std::move(impl)));
}

Linear::Linear(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Linear::~Linear() = default;

void Linear::Forward(const float* x, int64_t m, float* y) {
  if (m < 1) Die(absl::StrCat("Linear::Forward with m=", m));
  Impl& impl = *impl_;
  try {
    Impl::Entry& entry = impl.EntryFor(m);
    if (impl.dtype == WeightDType::kBF16) {
      const size_t n = static_cast<size_t>(m * impl.in_features);
      if (impl.x_bf16.size() < n) impl.x_bf16.resize(n);
      F32ToBf16RneBulk(x, impl.x_bf16.data(), static_cast<int64_t>(n));
      entry.src.set_data_handle(impl.x_bf16.data());
    } else {
      entry.src.set_data_handle(const_cast<float*>(x));  // oneDNN only reads the source.
    }
    entry.dst.set_data_handle(y);
    OneDnnContext& context = Context();
    entry.matmul.execute(context.stream, entry.args);
    context.stream.wait();
    impl.impl_name = entry.impl_name;
  } catch (const dnnl::error& e) {
    // Shapes were validated by Create(); what is left is out of memory or a oneDNN bug.
    Die(absl::StrCat("oneDNN error in Forward (m=", m, ", [", impl.out_features, ", ",
                     impl.in_features, "] ", std::string(WeightDTypeName(impl.dtype)),
                     "): ", e.what()));
  }
}

int64_t Linear::in_features() const { return impl_->in_features; }
int64_t Linear::out_features() const { return impl_->out_features; }
WeightDType Linear::dtype() const { return impl_->dtype; }
std::string_view Linear::impl_name() const { return impl_->impl_name; }

}  // namespace kvserve::engine
