#include "scheduler/block_pool.h"

#include "base/check.h"

namespace kvserve::scheduler {

BlockPool::BlockPool(int32_t num_pages)
    : num_pages_(num_pages),
      num_free_(num_pages),
      ref_counts_(num_pages > 0 ? num_pages : 0, 0),
      prev_(num_pages > 0 ? num_pages + 1 : 0),
      next_(num_pages > 0 ? num_pages + 1 : 0),
      page_hashes_(num_pages > 0 ? num_pages : 0) {
  KVSERVE_CHECK(num_pages > 0);
  const PageId sentinel = num_pages_;
  prev_[sentinel] = next_[sentinel] = sentinel;
  // Ascending ids from the head: a fresh pool hands out 0, 1, 2, ...
  for (PageId page = 0; page < num_pages_; ++page) LinkAtTail(page);
}

double BlockPool::usage() const {
  return static_cast<double>(num_pages_ - num_free_) / static_cast<double>(num_pages_);
}

std::optional<std::vector<PageId>> BlockPool::GetNewPages(int32_t n) {
  KVSERVE_CHECK(n >= 0);
  if (n > num_free_) return std::nullopt;
  std::vector<PageId> pages;
  pages.reserve(n);
  const PageId sentinel = num_pages_;
  for (int32_t i = 0; i < n; ++i) {
    const PageId page = next_[sentinel];
    KVSERVE_CHECK(page != sentinel && IsFree(page));
    Unlink(page);
    EvictHash(page);
    ref_counts_[page] = 1;
    --num_free_;
    pages.push_back(page);
  }
  return pages;
}

void BlockPool::Touch(absl::Span<const PageId> pages) {
  for (PageId page : pages) {
    KVSERVE_CHECK(page >= 0 && page < num_pages_);
    if (IsFree(page)) {
      Unlink(page);
      --num_free_;
    }
    ++ref_counts_[page];
  }
}

void BlockPool::FreePages(absl::Span<const PageId> pages) {
  for (PageId page : pages) {
    KVSERVE_CHECK(page >= 0 && page < num_pages_);
    KVSERVE_CHECK(ref_counts_[page] > 0);
    if (--ref_counts_[page] > 0) continue;
    if (page_hashes_[page].has_value()) {
      LinkAtTail(page);
    } else {
      LinkAtHead(page);
    }
    ++num_free_;
  }
}

bool BlockPool::CachePage(PageId page, PageHash hash) {
  KVSERVE_CHECK(page >= 0 && page < num_pages_);
  KVSERVE_CHECK(!IsFree(page));
  if (page_hashes_[page].has_value()) return false;
  if (!cached_pages_.try_emplace(hash, page).second) return false;
  page_hashes_[page] = hash;
  return true;
}

std::optional<PageId> BlockPool::LookupCachedPage(PageHash hash) const {
  auto it = cached_pages_.find(hash);
  if (it == cached_pages_.end()) return std::nullopt;
  return it->second;
}

std::optional<PageHash> BlockPool::PageHashOf(PageId page) const {
  KVSERVE_CHECK(page >= 0 && page < num_pages_);
  return page_hashes_[page];
}

int32_t BlockPool::ref_count(PageId page) const {
  KVSERVE_CHECK(page >= 0 && page < num_pages_);
  return ref_counts_[page];
}

std::vector<PageId> BlockPool::FreeListOrder() const {
  std::vector<PageId> order;
  order.reserve(num_free_);
  const PageId sentinel = num_pages_;
  for (PageId page = next_[sentinel]; page != sentinel; page = next_[page]) order.push_back(page);
  return order;
}

void BlockPool::Unlink(PageId page) {
  next_[prev_[page]] = next_[page];
  prev_[next_[page]] = prev_[page];
}

void BlockPool::LinkAtHead(PageId page) {
  const PageId sentinel = num_pages_;
  const PageId first = next_[sentinel];
  prev_[page] = sentinel;
  next_[page] = first;
  prev_[first] = page;
  next_[sentinel] = page;
}

void BlockPool::LinkAtTail(PageId page) {
  const PageId sentinel = num_pages_;
  const PageId last = prev_[sentinel];
  prev_[page] = last;
  next_[page] = sentinel;
  next_[last] = page;
  prev_[sentinel] = page;
}

void BlockPool::EvictHash(PageId page) {
  if (!page_hashes_[page].has_value()) return;
  cached_pages_.erase(*page_hashes_[page]);
  page_hashes_[page].reset();
}

}  // namespace kvserve::scheduler
