#include "scheduler/block_pool.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvserve::scheduler {
namespace {

using ::testing::ElementsAre;

class BlockPoolTest : public ::testing::Test {
 protected:
  static constexpr int32_t kNumPages = 6;

  // Every test must give back what it took: the pool is full again, nothing referenced.
  void TearDown() override {
    EXPECT_EQ(pool_.num_free_pages(), kNumPages);
    for (PageId page = 0; page < kNumPages; ++page) EXPECT_EQ(pool_.ref_count(page), 0) << page;
    EXPECT_EQ(pool_.FreeListOrder().size(), size_t{kNumPages});
  }

  BlockPool pool_{kNumPages};
};

TEST_F(BlockPoolTest, FreshPoolHandsOutAscendingIds) {
  EXPECT_EQ(pool_.num_pages(), kNumPages);
  EXPECT_DOUBLE_EQ(pool_.usage(), 0.0);
  auto pages = pool_.GetNewPages(3);
  ASSERT_TRUE(pages.has_value());
  EXPECT_THAT(*pages, ElementsAre(0, 1, 2));
  EXPECT_EQ(pool_.num_free_pages(), 3);
  EXPECT_DOUBLE_EQ(pool_.usage(), 0.5);
  for (PageId page : *pages) EXPECT_EQ(pool_.ref_count(page), 1);
  pool_.FreePages(*pages);
}

TEST_F(BlockPoolTest, GetNewPagesIsAllOrNothing) {
  auto first = pool_.GetNewPages(4);
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE(pool_.GetNewPages(3).has_value());
  EXPECT_EQ(pool_.num_free_pages(), 2);  // the failed call took nothing
  auto rest = pool_.GetNewPages(2);
  ASSERT_TRUE(rest.has_value());
  EXPECT_EQ(pool_.num_free_pages(), 0);
  EXPECT_DOUBLE_EQ(pool_.usage(), 1.0);
  auto none = pool_.GetNewPages(0);
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
  pool_.FreePages(*first);
  pool_.FreePages(*rest);
}

TEST_F(BlockPoolTest, PageReturnsToFreeListOnlyAtRefCountZero) {
  auto pages = pool_.GetNewPages(1);
  ASSERT_TRUE(pages.has_value());
  const PageId page = (*pages)[0];
  pool_.Touch({page});
  EXPECT_EQ(pool_.ref_count(page), 2);
  pool_.FreePages({page});
  EXPECT_EQ(pool_.ref_count(page), 1);
  EXPECT_EQ(pool_.num_free_pages(), kNumPages - 1);
  pool_.FreePages({page});
  EXPECT_EQ(pool_.ref_count(page), 0);
  EXPECT_EQ(pool_.num_free_pages(), kNumPages);
}

TEST_F(BlockPoolTest, CachedFreePageCanBeRevived) {
  auto pages = pool_.GetNewPages(1);
  ASSERT_TRUE(pages.has_value());
  const PageId page = (*pages)[0];
  ASSERT_TRUE(pool_.CachePage(page, 42));
  pool_.FreePages({page});
  EXPECT_EQ(pool_.num_free_pages(), kNumPages);
  // Still findable while free.
  ASSERT_EQ(pool_.LookupCachedPage(42), page);
  pool_.Touch({page});  // revive
  EXPECT_EQ(pool_.ref_count(page), 1);
  EXPECT_EQ(pool_.num_free_pages(), kNumPages - 1);
  // A revived page is not on the free list, so new pages are other ids.
  auto others = pool_.GetNewPages(kNumPages - 1);
  ASSERT_TRUE(others.has_value());
  for (PageId other : *others) EXPECT_NE(other, page);
  EXPECT_EQ(pool_.LookupCachedPage(42), page);
  pool_.FreePages(*others);
  pool_.FreePages({page});
}

TEST_F(BlockPoolTest, ReusedPagesAreEvictedLeastRecentlyFreedFirst) {
  auto pages = pool_.GetNewPages(kNumPages);  // 0..5
  ASSERT_TRUE(pages.has_value());
  ASSERT_TRUE(pool_.CachePage(1, 101));
  ASSERT_TRUE(pool_.CachePage(3, 103));
  ASSERT_TRUE(pool_.CachePage(4, 104));
  // Free cached pages 3, 1, 4 in that order, and uncached 0 and 5.
  pool_.FreePages({3, 0, 1, 4, 5});
  // Uncached pages go to the head (5 was freed last), cached ones to the tail in freeing order.
  EXPECT_THAT(pool_.FreeListOrder(), ElementsAre(5, 0, 3, 1, 4));
  auto taken = pool_.GetNewPages(3);
  ASSERT_TRUE(taken.has_value());
  EXPECT_THAT(*taken, ElementsAre(5, 0, 3));
  // Page 3 was reused, so its hash is gone; 1 and 4 are still cached.
  EXPECT_FALSE(pool_.LookupCachedPage(103).has_value());
  EXPECT_FALSE(pool_.PageHashOf(3).has_value());
  EXPECT_EQ(pool_.LookupCachedPage(101), 1);
  EXPECT_EQ(pool_.LookupCachedPage(104), 4);
  EXPECT_EQ(pool_.num_cached_pages(), 2);
  // Reviving 1 takes it out of the middle of the list.
  pool_.Touch({1});
  EXPECT_THAT(pool_.FreeListOrder(), ElementsAre(4));
  pool_.FreePages(*taken);
  pool_.FreePages({2, 1});
  // Uncached 5, 0, 3 and then 2 each went to the head; 1 (cached) was freed after 4, so it is
  // evicted after 4.
  EXPECT_THAT(pool_.FreeListOrder(), ElementsAre(2, 3, 0, 5, 4, 1));
}

TEST_F(BlockPoolTest, CachePageRefusesDuplicates) {
  auto pages = pool_.GetNewPages(2);
  ASSERT_TRUE(pages.has_value());
  ASSERT_TRUE(pool_.CachePage(0, 7));
  EXPECT_FALSE(pool_.CachePage(1, 7));  // hash taken by page 0
  EXPECT_FALSE(pool_.CachePage(0, 8));  // page 0 already has a hash
  EXPECT_EQ(pool_.PageHashOf(0), PageHash{7});
  EXPECT_FALSE(pool_.PageHashOf(1).has_value());
  EXPECT_FALSE(pool_.LookupCachedPage(8).has_value());
  pool_.FreePages(*pages);
}

}  // namespace
}  // namespace kvserve::scheduler
