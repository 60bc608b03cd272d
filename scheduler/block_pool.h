// BlockPool: bookkeeping for the engine's KV pages — reference counts, the free list, and the
// index of pages whose (full) contents can be reused by another request with the same prefix.
//
// It never touches page memory; a page is just an id in [0, num_pages).
//
// The free list is ordered for eviction: pages are taken from its head. A freed page that holds
// a cached (hashed) prefix goes to the tail and keeps its hash, so it can be revived by a later
// prefix hit until it drifts to the head and is reused (least recently freed is evicted first).
// A freed page without a hash holds nothing reusable and goes to the head, to be reused before
// any cached page.
//
// Ownership: owned by the KvCacheManager. Thread-safety: none (engine thread only).
#ifndef KVSERVE_SCHEDULER_BLOCK_POOL_H_
#define KVSERVE_SCHEDULER_BLOCK_POOL_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"

namespace kvserve::scheduler {

using PageId = int32_t;
using PageHash = uint64_t;

class BlockPool {
 public:
  // num_pages must be positive (checked).
  explicit BlockPool(int32_t num_pages);

  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  int32_t num_pages() const { return num_pages_; }
  // Pages with reference count 0, including cached ones that could still be revived.
  int32_t num_free_pages() const { return num_free_; }
  // Fraction of pages in use (reference count > 0), in [0, 1].
  double usage() const;

  // All or nothing: `n` pages taken from the head of the free list with reference count 1, or
  // nullopt (taking nothing) when fewer than `n` are free. A taken page loses its cached hash.
  std::optional<std::vector<PageId>> GetNewPages(int32_t n);

  // Adds a reference to each page (a prefix hit); a free page is revived out of the free list.
  void Touch(absl::Span<const PageId> pages);

  // Drops a reference to each page, in the order given; a page reaching 0 goes back to the
  // free list (tail if cached, head otherwise). Checks every page is in use.
  void FreePages(absl::Span<const PageId> pages);

  // Makes an in-use page findable by `hash`. Returns false (changing nothing) if the page
  // already has a hash or another page is already cached under `hash`.
  bool CachePage(PageId page, PageHash hash);

  std::optional<PageId> LookupCachedPage(PageHash hash) const;
  std::optional<PageHash> PageHashOf(PageId page) const;
  int32_t ref_count(PageId page) const;
  int32_t num_cached_pages() const { return static_cast<int32_t>(cached_pages_.size()); }
  // Page ids on the free list from head (next to be reused) to tail; for tests and debugging.
  std::vector<PageId> FreeListOrder() const;

 private:
  bool IsFree(PageId page) const { return ref_counts_[page] == 0; }
  void Unlink(PageId page);
  void LinkAtHead(PageId page);
  void LinkAtTail(PageId page);
  void EvictHash(PageId page);

  int32_t num_pages_;
  int32_t num_free_;
  std::vector<int32_t> ref_counts_;
  // Intrusive doubly linked free list over page ids; index num_pages_ is the sentinel.
  std::vector<PageId> prev_;
  std::vector<PageId> next_;
  std::vector<std::optional<PageHash>> page_hashes_;
  absl::flat_hash_map<PageHash, PageId> cached_pages_;
};

}  // namespace kvserve::scheduler

#endif  // KVSERVE_SCHEDULER_BLOCK_POOL_H_
