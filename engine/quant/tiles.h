// Weights repacked for the SIMD kernels: 16 rows (output features) at a time, interleaved so
// that one 64-byte load holds 4 consecutive quants of each of the 16 rows — the operand of one
// vpdpbusd, with one accumulator lane per row — and the 16 rows' scales sit side by side.
//
// A matrix of n rows and k columns becomes ceil(n / 16) tiles (rows past n are zero), stored
// one after the other. A tile is a sequence of groups of kBlocksPerGroup blocks; a group holds
// its blocks' payloads, then their masks, then their headers, and is a whole number of 64-byte
// lines (every part of every format is a multiple of 32 bytes, and pairs make 64), so a tile —
// and a run of tiles — is one stream read front to back, and every vector load is aligned:
//   payload  per block, per 32-value chunk: the low bits of u (see formats.h) —
//            8-bit: 8 vectors; 4/5/6-bit: 4 vectors of nibbles (low nibble of byte 4r+i of
//            vector j8 is row r's value 8*j8+i, the high nibble value 8*j8+4+i);
//            2/3-bit: 2 vectors of crumbs (bits 2s of byte 4r+i of vector q hold value
//            16q+4s+i).
//   masks    the bits above the payload's. 5-bit and 3-bit formats: per block, per chunk, per
//            4-value step j (8 of them), a 64-bit mask whose bit 4r+i is that bit of row r's
//            value 4j+i (bit 4, or bit 2). 6-bit: per chunk 2 vectors of crumbs like a 2-bit
//            payload (bits 2s of byte 4r+i of vector q hold bits 4-5 of value 16q+4s+i):
//            unpacking a crumb costs a shift and an and, a mask bit three instructions.
//   headers  per block: f16 d[16], f16 d2[16] (dmin or m, if the format has one), int8
//            scale[groups][16] and int8 min[groups][16] (if it has them).
// A row of an odd number of blocks ends in a half-filled group.
// An AVX2 kernel reads the first 32 bytes of each vector for rows 0-7, the second 32 for
// rows 8-15 (and the matching 32 bits of each mask).
//
// Ownership: PackedTiles owns its 64-byte aligned buffer. Thread-safety: immutable after
// PackTiles; read concurrently by the kernels.
#ifndef KVSERVE_ENGINE_QUANT_TILES_H_
#define KVSERVE_ENGINE_QUANT_TILES_H_

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "absl/status/statusor.h"
#include "engine/quant/formats.h"

namespace kvserve::engine::quant {

inline constexpr int kTileRows = 16;
inline constexpr int kBlocksPerGroup = 2;

// Byte sizes of one block of a tile, per stream.
struct TileLayout {
  int chunks;         // 32-value chunks per block
  int chunk_payload;  // payload bytes per chunk
  int mask_planes;    // extra bit planes
  int header_bytes;   // per block
  int off_d2;         // within the header; -1 if none
  int off_scale;      // -1 if none
  int off_min;        // -1 if none

  constexpr int payload_bytes() const { return chunks * chunk_payload; }
  constexpr int chunk_masks() const { return mask_planes == 2 ? 128 : 8 * 8 * mask_planes; }
  constexpr int mask_bytes() const { return chunks * chunk_masks(); }
  constexpr int group_bytes() const {
    return kBlocksPerGroup * (payload_bytes() + mask_bytes() + header_bytes);
  }
  // Offsets of block b's parts from the start of its tile.
  constexpr int64_t payload_at(int64_t b) const {
    return (b / kBlocksPerGroup) * group_bytes() + (b % kBlocksPerGroup) * payload_bytes();
  }
  constexpr int64_t masks_at(int64_t b) const {
    return (b / kBlocksPerGroup) * group_bytes() + kBlocksPerGroup * payload_bytes() +
           (b % kBlocksPerGroup) * mask_bytes();
  }
  constexpr int64_t header_at(int64_t b) const {
    return (b / kBlocksPerGroup) * group_bytes() +
           kBlocksPerGroup * (payload_bytes() + mask_bytes()) +
           (b % kBlocksPerGroup) * header_bytes;
  }
};

constexpr TileLayout LayoutOf(const FormatInfo& f) {
  TileLayout t{};
  t.chunks = f.block_k / 32;
  t.chunk_payload = f.bits == 8 ? 512 : f.bits >= 4 ? 256 : 128;
  t.mask_planes = f.bits == 3 || f.bits == 5 ? 1 : f.bits == 6 ? 2 : 0;
  int off = 2 * kTileRows;
  t.off_d2 = f.mins || f.add_min ? off : -1;
  if (t.off_d2 >= 0) off += 2 * kTileRows;
  t.off_scale = f.scaled ? off : -1;
  if (f.scaled) off += f.groups() * kTileRows;
  t.off_min = f.mins ? off : -1;
  if (f.mins) off += f.groups() * kTileRows;
  t.header_bytes = off;
  return t;
}

struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};

struct PackedTiles {
  const FormatInfo* format = nullptr;
  TileLayout layout{};
  int64_t n = 0, k = 0;
  int64_t tiles = 0;                                               // ceil(n / 16)
  int64_t blocks = 0;                                              // per row: k / block_k
  int64_t payload_offset = 0, mask_offset = 0, header_offset = 0;  // within a tile
  int64_t tile_bytes = 0;                                          // 64-byte multiple
  std::unique_ptr<uint8_t[], AlignedFree> data;

  const uint8_t* tile(int64_t t) const { return data.get() + t * tile_bytes; }
  int64_t bytes() const { return tiles * tile_bytes; }
};

// Repacks n rows of k values stored as ggml blocks of `format` (row r at rows + r * row_bytes,
// row_bytes = k / block_k * block_bytes). InvalidArgument if k is not a multiple of the block.
absl::StatusOr<PackedTiles> PackTiles(const FormatInfo& format, const uint8_t* rows, int64_t n,
                                      int64_t k);

}  // namespace kvserve::engine::quant

#endif  // KVSERVE_ENGINE_QUANT_TILES_H_
