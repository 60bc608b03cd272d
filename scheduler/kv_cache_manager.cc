#include "scheduler/kv_cache_manager.h"

#include <algorithm>

#include "base/check.h"

namespace kvserve::scheduler {
namespace {

// splitmix64's finaliser: a cheap, well-mixed 64-bit permutation.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace

PageHash KvCacheManager::HashPage(PageHash parent, absl::Span<const int32_t> tokens) {
  uint64_t h = Mix(parent ^ 0x9e3779b97f4a7c15ull);
  for (int32_t token : tokens) h = Mix(h ^ static_cast<uint32_t>(token)) + 0x9e3779b97f4a7c15ull;
  return Mix(h ^ tokens.size());
}

KvCacheManager::KvCacheManager(int32_t page_size, int32_t num_pages, bool enable_prefix_caching)
    : page_size_(page_size),
      enable_prefix_caching_(enable_prefix_caching),
      pool_(num_pages),
      page_contents_(enable_prefix_caching ? num_pages : 0) {
  KVSERVE_CHECK(page_size > 0);
}

ComputedPrefix KvCacheManager::GetComputedPrefix(const Request& request) const {
  ComputedPrefix prefix;
  if (!enable_prefix_caching_) return prefix;
  const absl::Span<const int32_t> tokens = request.all_token_ids();
  // Leave at least the last token to compute.
  const int32_t max_pages = (request.num_tokens() - 1) / page_size_;
  PageHash parent = kRootHash;
  for (int32_t k = 0; k < max_pages; ++k) {
    const absl::Span<const int32_t> page_tokens = tokens.subspan(k * page_size_, page_size_);
    const PageHash hash = HashPage(parent, page_tokens);
    const std::optional<PageId> page = pool_.LookupCachedPage(hash);
    if (!page.has_value()) break;
    const PageContent& content = page_contents_[*page];
    if (content.parent != parent || !std::equal(content.tokens.begin(), content.tokens.end(),
                                                page_tokens.begin(), page_tokens.end())) {
      break;  // a hash collision: different keys/values
    }
    prefix.pages.push_back(*page);
    parent = hash;
  }
  prefix.num_tokens = static_cast<int32_t>(prefix.pages.size()) * page_size_;
  return prefix;
}

bool KvCacheManager::AllocateSlots(const Request& request, int32_t num_new_tokens,
                                   absl::Span<const PageId> computed_prefix_pages) {
  KVSERVE_CHECK(num_new_tokens >= 0);
  auto it = requests_.find(request.id());
  const bool admitting = it == requests_.end();
  KVSERVE_CHECK(computed_prefix_pages.empty() || (admitting && request.num_computed_tokens() == 0));
  const int32_t num_held = admitting ? 0 : static_cast<int32_t>(it->second.pages.size());
  const int32_t num_prefix = static_cast<int32_t>(computed_prefix_pages.size());
  const int32_t prefix_tokens = num_prefix * page_size_;
  const int32_t total_tokens = request.num_computed_tokens() + prefix_tokens + num_new_tokens;
  KVSERVE_CHECK(total_tokens <= request.num_tokens());
  const int32_t num_new_pages = std::max(0, PagesFor(total_tokens) - num_held - num_prefix);
  // Free prefix pages are revived out of the free list, so they count against it too.
  const int32_t num_free_prefix_pages = static_cast<int32_t>(
      std::count_if(computed_prefix_pages.begin(), computed_prefix_pages.end(),
                    [this](PageId page) { return pool_.ref_count(page) == 0; }));
  if (num_new_pages + num_free_prefix_pages > pool_.num_free_pages()) return false;

  RequestPages& held = admitting ? requests_[request.id()] : it->second;
  if (admitting && enable_prefix_caching_) {
    prefix_query_tokens_ += request.num_tokens();
    prefix_hit_tokens_ += prefix_tokens;
  }
  pool_.Touch(computed_prefix_pages);
  for (PageId page : computed_prefix_pages) {
    held.pages.push_back(page);
    const std::optional<PageHash> hash = pool_.PageHashOf(page);
    KVSERVE_CHECK(hash.has_value());
    held.page_hashes.push_back(*hash);
  }
  std::optional<std::vector<PageId>> new_pages = pool_.GetNewPages(num_new_pages);
  KVSERVE_CHECK(new_pages.has_value());
  held.pages.insert(held.pages.end(), new_pages->begin(), new_pages->end());
  return true;
}

void KvCacheManager::CacheComputedPages(const Request& request) {
  if (!enable_prefix_caching_) return;
  auto it = requests_.find(request.id());
  if (it == requests_.end()) return;
  RequestPages& held = it->second;
  const int32_t num_full = request.num_computed_tokens() / page_size_;
  KVSERVE_CHECK(num_full <= static_cast<int32_t>(held.pages.size()));
  const absl::Span<const int32_t> tokens = request.all_token_ids();
  for (int32_t k = static_cast<int32_t>(held.page_hashes.size()); k < num_full; ++k) {
    const PageHash parent = k == 0 ? kRootHash : held.page_hashes[k - 1];
    const absl::Span<const int32_t> page_tokens = tokens.subspan(k * page_size_, page_size_);
    const PageHash hash = HashPage(parent, page_tokens);
    held.page_hashes.push_back(hash);
    // False when an identical page is already cached (two requests computed the same prefix at
    // once); this copy then stays private and is simply reused once freed.
    if (pool_.CachePage(held.pages[k], hash)) {
      page_contents_[held.pages[k]] =
          PageContent{parent, std::vector<int32_t>(page_tokens.begin(), page_tokens.end())};
    }
  }
}

void KvCacheManager::Free(const Request& request) {
  auto it = requests_.find(request.id());
  if (it == requests_.end()) return;
  std::vector<PageId>& pages = it->second.pages;
  std::reverse(pages.begin(), pages.end());
  pool_.FreePages(pages);
  requests_.erase(it);
}

absl::Span<const PageId> KvCacheManager::PageTable(absl::string_view request_id) const {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return {};
  return it->second.pages;
}

}  // namespace kvserve::scheduler
