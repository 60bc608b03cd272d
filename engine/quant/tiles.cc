#include "engine/quant/tiles.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace kvserve::engine::quant {
namespace {

// Writes one block of 16 decoded rows into the tile's three streams.
void PackBlock(const FormatInfo& f, const TileLayout& t, const DecodedBlock* rows, int nrows,
               uint8_t* payload, uint8_t* masks, uint8_t* header) {
  for (int r = 0; r < nrows; ++r) {
    std::memcpy(header + 2 * r, &rows[r].d, 2);
    if (t.off_d2 >= 0) std::memcpy(header + t.off_d2 + 2 * r, &rows[r].d2, 2);
    for (int g = 0; g < f.groups(); ++g) {
      if (t.off_scale >= 0) header[t.off_scale + g * kTileRows + r] = rows[r].scale[g];
      if (t.off_min >= 0) header[t.off_min + g * kTileRows + r] = rows[r].min[g];
    }
  }
  for (int c = 0; c < t.chunks; ++c) {
    uint8_t* pay = payload + c * t.chunk_payload;
    uint8_t* msk = masks + c * t.chunk_masks();
    for (int r = 0; r < nrows; ++r) {
      const uint8_t* u = rows[r].u + 32 * c;
      for (int j = 0; j < 8; ++j) {    // 4-value step
        for (int i = 0; i < 4; ++i) {  // value within the step
          const int v = u[4 * j + i];
          const int byte = 4 * r + i;
          if (f.bits == 8) {
            pay[64 * j + byte] = static_cast<uint8_t>(v);
          } else if (f.bits >= 4) {
            pay[64 * (j / 2) + byte] |= static_cast<uint8_t>((v & 0xF) << (4 * (j % 2)));
          } else {
            pay[64 * (j / 4) + byte] |= static_cast<uint8_t>((v & 3) << (2 * (j % 4)));
          }
          if (f.bits == 6) {  // crumbs: bits 4-5 of the value, laid out like a 2-bit payload
            msk[64 * (j / 4) + byte] |= static_cast<uint8_t>(((v >> 4) & 3) << (2 * (j % 4)));
            continue;
          }
          const int first_extra_bit = f.bits == 3 ? 2 : 4;
          for (int p = 0; p < t.mask_planes; ++p) {
            if ((v >> (first_extra_bit + p)) & 1) {
              uint8_t* mask = msk + 8 * (j * t.mask_planes + p);
              mask[byte / 8] |= static_cast<uint8_t>(1u << (byte % 8));
            }
          }
        }
      }
    }
  }
}

}  // namespace

absl::StatusOr<PackedTiles> PackTiles(const FormatInfo& f, const uint8_t* rows, int64_t n,
                                      int64_t k) {
  if (n <= 0 || k <= 0 || k % f.block_k != 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot pack a ", n, " x ", k, " matrix of ",
                                                   std::string(GgmlTypeName(f.type)),
                                                   " (blocks of ", f.block_k, " values)"));
  }
  PackedTiles p;
  p.format = &f;
  p.layout = LayoutOf(f);
  p.n = n;
  p.k = k;
  p.tiles = (n + kTileRows - 1) / kTileRows;
  p.blocks = k / f.block_k;
  const int64_t groups = (p.blocks + kBlocksPerGroup - 1) / kBlocksPerGroup;
  static_assert(LayoutOf(kFormats[0]).group_bytes() % 64 == 0);
  p.tile_bytes = groups * p.layout.group_bytes();
  if (p.tile_bytes % 64 != 0) {
    return absl::InternalError(absl::StrCat("tile group of ", std::string(GgmlTypeName(f.type)),
                                            " is not a whole number of cache lines"));
  }
  uint8_t* raw = static_cast<uint8_t*>(std::aligned_alloc(64, p.tiles * p.tile_bytes));
  if (raw == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", p.tiles * p.tile_bytes, " bytes of packed weights"));
  }
  std::memset(raw, 0, p.tiles * p.tile_bytes);
  p.data.reset(raw);
  const int64_t row_bytes = p.blocks * f.block_bytes;
  DecodedBlock decoded[kTileRows];
  for (int64_t t = 0; t < p.tiles; ++t) {
    const int nrows = static_cast<int>(std::min<int64_t>(kTileRows, n - t * kTileRows));
    uint8_t* tile = raw + t * p.tile_bytes;
    for (int64_t b = 0; b < p.blocks; ++b) {
      for (int r = 0; r < nrows; ++r) {
        DecodeBlock(f, rows + (t * kTileRows + r) * row_bytes + b * f.block_bytes, &decoded[r]);
      }
      PackBlock(f, p.layout, decoded, nrows, tile + p.layout.payload_at(b),
                tile + p.layout.masks_at(b), tile + p.layout.header_at(b));
    }
  }
  return p;
}

}  // namespace kvserve::engine::quant
