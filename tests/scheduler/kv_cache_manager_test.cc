#include "scheduler/kv_cache_manager.h"

#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvserve::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr int32_t kPageSize = 4;
constexpr int32_t kNumPages = 8;

std::vector<int32_t> Iota(int32_t n, int32_t first) {
  std::vector<int32_t> tokens(n);
  std::iota(tokens.begin(), tokens.end(), first);
  return tokens;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<PageId> ToVector(absl::Span<const PageId> pages) {
  return std::vector<PageId>(pages.begin(), pages.end());
}

class KvCacheManagerTest : public ::testing::Test {
 protected:
  // Every test frees what it allocated: the pool must be full again.
  void TearDown() override {
    EXPECT_EQ(manager_->num_free_pages(), kNumPages);
    EXPECT_EQ(manager_->num_requests_with_pages(), 0);
    for (PageId page = 0; page < kNumPages; ++page) {
      EXPECT_EQ(manager_->block_pool().ref_count(page), 0) << page;
    }
  }

  std::unique_ptr<Request> MakeRequest(const std::string& id, std::vector<int32_t> prompt) {
    return std::make_unique<Request>(id, std::move(prompt), StopConditions{});
  }

  // Admits `request` with its prefix hit and computes all its tokens, as one scheduler step would.
  void AdmitAndComputeAll(Request& request) {
    const ComputedPrefix prefix = manager_->GetComputedPrefix(request);
    ASSERT_TRUE(
        manager_->AllocateSlots(request, request.num_tokens() - prefix.num_tokens, prefix.pages));
    request.set_num_computed_tokens(request.num_tokens());
    manager_->CacheComputedPages(request);
  }

  std::unique_ptr<KvCacheManager> manager_ =
      std::make_unique<KvCacheManager>(kPageSize, kNumPages, /*enable_prefix_caching=*/true);
};

TEST_F(KvCacheManagerTest, AllocateSlotsGrowsThePageTable) {
  auto request = MakeRequest("a", Iota(10, 1));
  ASSERT_TRUE(manager_->AllocateSlots(*request, 6, {}));  // positions 0..5: 2 pages
  EXPECT_THAT(ToVector(manager_->PageTable("a")), ElementsAre(0, 1));
  request->set_num_computed_tokens(6);
  ASSERT_TRUE(manager_->AllocateSlots(*request, 4, {}));  // positions 6..9: 3 pages
  EXPECT_THAT(ToVector(manager_->PageTable("a")), ElementsAre(0, 1, 2));
  request->set_num_computed_tokens(10);
  request->AppendOutputToken(77);
  ASSERT_TRUE(manager_->AllocateSlots(*request, 1, {}));  // position 10 still fits in page 2
  EXPECT_EQ(manager_->PageTable("a").size(), 3u);
  EXPECT_EQ(manager_->num_free_pages(), kNumPages - 3);
  EXPECT_DOUBLE_EQ(manager_->usage(), 3.0 / kNumPages);
  manager_->Free(*request);
  EXPECT_THAT(manager_->PageTable("a"), IsEmpty());
}

TEST_F(KvCacheManagerTest, AllocateSlotsFailsWithoutTakingAnything) {
  auto big = MakeRequest("big", Iota(28, 1));
  ASSERT_TRUE(manager_->AllocateSlots(*big, 28, {}));  // 7 of 8 pages
  auto other = MakeRequest("other", Iota(8, 100));
  EXPECT_FALSE(manager_->AllocateSlots(*other, 8, {}));  // needs 2
  EXPECT_THAT(manager_->PageTable("other"), IsEmpty());
  EXPECT_EQ(manager_->num_free_pages(), 1);
  EXPECT_TRUE(manager_->AllocateSlots(*other, 4, {}));  // a smaller chunk fits
  manager_->Free(*big);
  manager_->Free(*other);
}

TEST_F(KvCacheManagerTest, PrefixHitSharesReferenceCountedPages) {
  auto a = MakeRequest("a", Iota(10, 1));  // full pages [1..4] [5..8], partial [9 10]
  AdmitAndComputeAll(*a);
  const std::vector<PageId> a_pages = ToVector(manager_->PageTable("a"));
  ASSERT_EQ(a_pages.size(), 3u);

  auto b = MakeRequest("b", Concat(Iota(8, 1), {99, 98, 97}));
  const ComputedPrefix prefix = manager_->GetComputedPrefix(*b);
  EXPECT_THAT(prefix.pages, ElementsAre(a_pages[0], a_pages[1]));
  EXPECT_EQ(prefix.num_tokens, 8);
  ASSERT_TRUE(manager_->AllocateSlots(*b, 3, prefix.pages));
  const std::vector<PageId> b_pages = ToVector(manager_->PageTable("b"));
  ASSERT_EQ(b_pages.size(), 3u);
  EXPECT_EQ(b_pages[0], a_pages[0]);
  EXPECT_EQ(b_pages[1], a_pages[1]);
  EXPECT_NE(b_pages[2], a_pages[2]);
  EXPECT_EQ(manager_->block_pool().ref_count(a_pages[0]), 2);
  EXPECT_EQ(manager_->block_pool().ref_count(a_pages[2]), 1);
  EXPECT_EQ(manager_->num_free_pages(), kNumPages - 4);
  // Queries count every admitted request's tokens; hits the prefix tokens.
  EXPECT_EQ(manager_->prefix_query_tokens(), 10 + 11);
  EXPECT_EQ(manager_->prefix_hit_tokens(), 8);

  manager_->Free(*a);  // b keeps the shared pages
  EXPECT_EQ(manager_->block_pool().ref_count(b_pages[0]), 1);
  EXPECT_EQ(manager_->block_pool().ref_count(b_pages[1]), 1);
  EXPECT_THAT(ToVector(manager_->PageTable("b")), ElementsAre(b_pages[0], b_pages[1], b_pages[2]));
  EXPECT_EQ(manager_->num_free_pages(), kNumPages - 3);
  manager_->Free(*b);
}

TEST_F(KvCacheManagerTest, PrefixNeverCoversTheLastToken) {
  auto a = MakeRequest("a", Iota(8, 1));
  AdmitAndComputeAll(*a);
  // Same 8 tokens: both pages are cached, but the last token must be recomputed to get logits,
  // so only the first page (positions 0..3) is reused.
  auto same = MakeRequest("same", Iota(8, 1));
  EXPECT_EQ(manager_->GetComputedPrefix(*same).num_tokens, 4);
  auto longer = MakeRequest("longer", Iota(9, 1));
  EXPECT_EQ(manager_->GetComputedPrefix(*longer).num_tokens, 8);
  manager_->Free(*a);
}

TEST_F(KvCacheManagerTest, HashIsChainedThroughEarlierPages) {
  auto a = MakeRequest("a", Iota(9, 1));
  AdmitAndComputeAll(*a);
  // Same second page [5..8] after a different first page: the keys/values differ, no hit.
  auto b = MakeRequest("b", Concat({50, 51, 52, 53}, Concat(Iota(4, 5), {0})));
  EXPECT_EQ(manager_->GetComputedPrefix(*b).num_tokens, 0);
  manager_->Free(*a);
}

TEST_F(KvCacheManagerTest, OnlyComputedFullPagesAreCached) {
  auto a = MakeRequest("a", Iota(12, 1));
  ASSERT_TRUE(manager_->AllocateSlots(*a, 12, {}));
  a->set_num_computed_tokens(6);  // only page 0 is full and computed
  manager_->CacheComputedPages(*a);
  auto b = MakeRequest("b", Iota(12, 1));
  EXPECT_EQ(manager_->GetComputedPrefix(*b).num_tokens, 4);
  EXPECT_EQ(manager_->block_pool().num_cached_pages(), 1);
  manager_->Free(*a);
}

TEST_F(KvCacheManagerTest, FreedPagesAreRevivedAndTailEvictedFirst) {
  auto a = MakeRequest("a", Iota(10, 1));
  AdmitAndComputeAll(*a);
  EXPECT_THAT(ToVector(manager_->PageTable("a")), ElementsAre(0, 1, 2));
  manager_->Free(*a);
  EXPECT_EQ(manager_->num_free_pages(), kNumPages);
  // Released last page first: partial page 2 (uncached) to the head, then 1 and 0 to the tail.
  EXPECT_THAT(manager_->block_pool().FreeListOrder(), ElementsAre(2, 3, 4, 5, 6, 7, 1, 0));

  // While free, both cached pages can still be revived.
  auto b = MakeRequest("b", Concat(Iota(8, 1), {42}));
  EXPECT_THAT(manager_->GetComputedPrefix(*b).pages, ElementsAre(0, 1));

  // Taking 7 pages reuses everything but page 0: page 1 (a's tail) is evicted first.
  auto filler = MakeRequest("filler", Iota(28, 500));
  ASSERT_TRUE(manager_->AllocateSlots(*filler, 28, {}));
  EXPECT_THAT(ToVector(manager_->PageTable("filler")), ElementsAre(2, 3, 4, 5, 6, 7, 1));
  const ComputedPrefix prefix = manager_->GetComputedPrefix(*b);
  EXPECT_THAT(prefix.pages, ElementsAre(0));
  manager_->Free(*filler);  // uncached pages: each to the head, so 2, 3, ... come out first
  ASSERT_TRUE(manager_->AllocateSlots(*b, 9 - prefix.num_tokens, prefix.pages));
  EXPECT_THAT(ToVector(manager_->PageTable("b")), ElementsAre(0, 2, 3));
  manager_->Free(*b);
}

TEST_F(KvCacheManagerTest, FreeCachedPrefixPagesCountAgainstFreePages) {
  auto a = MakeRequest("a", Iota(12, 1));
  AdmitAndComputeAll(*a);  // pages 0, 1, 2, all full and cached
  manager_->Free(*a);
  auto filler = MakeRequest("filler", Iota(20, 500));
  ASSERT_TRUE(manager_->AllocateSlots(*filler, 20, {}));  // 5 pages: 3..7
  ASSERT_EQ(manager_->num_free_pages(), 3);               // the cached pages 0, 1, 2

  auto b = MakeRequest("b", Concat(Iota(12, 1), {13}));
  const ComputedPrefix prefix = manager_->GetComputedPrefix(*b);
  ASSERT_EQ(prefix.num_tokens, 12);
  // Reviving 3 free pages plus 1 new page for position 12 needs 4 free pages; there are 3.
  EXPECT_FALSE(manager_->AllocateSlots(*b, 1, prefix.pages));
  EXPECT_EQ(manager_->num_free_pages(), 3);
  EXPECT_EQ(manager_->block_pool().num_cached_pages(), 3);
  // a and filler were admitted; a failed admission is not counted.
  EXPECT_EQ(manager_->prefix_query_tokens(), 12 + 20);
  manager_->Free(*filler);
  ASSERT_TRUE(manager_->AllocateSlots(*b, 1, prefix.pages));
  EXPECT_EQ(manager_->prefix_hit_tokens(), 12);
  EXPECT_EQ(manager_->prefix_query_tokens(), 12 + 20 + 13);
  manager_->Free(*b);
}

TEST_F(KvCacheManagerTest, DisabledPrefixCachingFindsNothing) {
  manager_ =
      std::make_unique<KvCacheManager>(kPageSize, kNumPages, /*enable_prefix_caching=*/false);
  auto a = MakeRequest("a", Iota(10, 1));
  AdmitAndComputeAll(*a);
  auto b = MakeRequest("b", Iota(10, 1));
  EXPECT_EQ(manager_->GetComputedPrefix(*b).num_tokens, 0);
  EXPECT_EQ(manager_->block_pool().num_cached_pages(), 0);
  EXPECT_EQ(manager_->prefix_query_tokens(), 0);
  EXPECT_EQ(manager_->prefix_hit_tokens(), 0);
  manager_->Free(*a);
}

}  // namespace
}  // namespace kvserve::scheduler
