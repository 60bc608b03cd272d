// KvCacheManager: which KV pages each request holds, and reuse of computed prefixes.
//
// Every request that holds pages has a page table: page ids in position order, so position p
// lives in page_table[p / page_size] at slot p % page_size (the layout engine::KvPagePool
// expects). Pages come from a BlockPool owned here.
//
// Prefix reuse: once a page is full and its tokens are computed (CacheComputedPages, called after
// the step that computed them), it is registered under a chained hash of (the previous page's
// hash, the page's token ids). A later request whose tokens start with the same pages finds them
// with GetComputedPrefix and shares them (reference counted) instead of recomputing. Pages are
// registered only after their keys/values were written, so a hit never reads unwritten memory,
// even if a step fails. Each cached page also keeps its tokens and parent hash, which a lookup
// compares, so a 64-bit hash collision cannot hand out the wrong keys/values.
//
// Ownership: owned by the Scheduler; holds no pointers to requests (keyed by request id).
// Thread-safety: none (engine thread only).
#ifndef KVSERVE_SCHEDULER_KV_CACHE_MANAGER_H_
#define KVSERVE_SCHEDULER_KV_CACHE_MANAGER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "scheduler/block_pool.h"
#include "scheduler/request.h"

namespace kvserve::scheduler {

struct ComputedPrefix {
  std::vector<PageId> pages;  // cached full pages, in position order
  int32_t num_tokens = 0;     // pages.size() * page_size
};

class KvCacheManager {
 public:
  // page_size and num_pages must be positive (checked; the Scheduler validates its config).
  KvCacheManager(int32_t page_size, int32_t num_pages, bool enable_prefix_caching);

  KvCacheManager(const KvCacheManager&) = delete;
  KvCacheManager& operator=(const KvCacheManager&) = delete;

  int32_t page_size() const { return page_size_; }
  bool prefix_caching_enabled() const { return enable_prefix_caching_; }
  int32_t num_pages() const { return pool_.num_pages(); }
  int32_t num_free_pages() const { return pool_.num_free_pages(); }
  double usage() const { return pool_.usage(); }
  const BlockPool& block_pool() const { return pool_; }
  // Pages needed to hold `num_tokens` positions.
  int32_t PagesFor(int32_t num_tokens) const { return (num_tokens + page_size_ - 1) / page_size_; }

  // The longest run of cached full pages at the start of the request's known tokens (prompt,
  // and output too for a preempted request). Never covers all tokens: the last one is always
  // left to compute, so the step produces logits to sample from. Empty when prefix caching is
  // disabled. Takes no references; pass the pages to AllocateSlots in the same step.
  ComputedPrefix GetComputedPrefix(const Request& request) const;

  // Makes the request's page table cover num_computed_tokens + prefix + num_new_tokens
  // positions, sharing `computed_prefix_pages` (only on the allocation that admits the request,
  // i.e. while it holds no pages). Returns false and allocates nothing when there are not
  // enough free pages. Admission also counts a prefix query (the request's tokens) and its
  // hits (the prefix's tokens) when prefix caching is enabled.
  bool AllocateSlots(const Request& request, int32_t num_new_tokens,
                     absl::Span<const PageId> computed_prefix_pages);

  // Registers, for prefix reuse, the request's pages that are full and whose tokens are all
  // computed (within request.num_computed_tokens()). Call after the step that computed them.
  void CacheComputedPages(const Request& request);

  // Releases all the request's pages, last page first, so its tail is evicted before its
  // head (the head is what other requests are likeliest to share). No-op if it holds none.
  void Free(const Request& request);

  // The request's page table; empty if it holds no pages.
  absl::Span<const PageId> PageTable(absl::string_view request_id) const;
  int32_t num_requests_with_pages() const { return static_cast<int32_t>(requests_.size()); }

  // Prefix-cache counters, in tokens, over admissions with prefix caching enabled.
  int64_t prefix_query_tokens() const { return prefix_query_tokens_; }
  int64_t prefix_hit_tokens() const { return prefix_hit_tokens_; }

  static PageHash HashPage(PageHash parent, absl::Span<const int32_t> tokens);
  static constexpr PageHash kRootHash = 0x6b76736572766521ull;  // parent of the first page

 private:
  struct RequestPages {
    std::vector<PageId> pages;
    // Chained hashes of the first page_hashes.size() pages (full and computed).
    std::vector<PageHash> page_hashes;
  };
  // What a cached page holds, compared on lookup against hash collisions.
  struct PageContent {
    PageHash parent = 0;
    std::vector<int32_t> tokens;
  };

  int32_t page_size_;
  bool enable_prefix_caching_;
  BlockPool pool_;
  absl::flat_hash_map<std::string, RequestPages> requests_;
  std::vector<PageContent> page_contents_;  // indexed by page id; valid while the page is cached
  int64_t prefix_query_tokens_ = 0;
  int64_t prefix_hit_tokens_ = 0;
};

}  // namespace kvserve::scheduler

#endif  // KVSERVE_SCHEDULER_KV_CACHE_MANAGER_H_
