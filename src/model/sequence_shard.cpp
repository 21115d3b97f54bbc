#include "src/model/sequence_shard.hpp"

#include <algorithm>

#include "src/core/error.hpp"

namespace fresco {

std::vector<SequenceShard> condition_shards(const std::vector<SequenceShard>& shards, int position,
                                            int64_t txt_len, int64_t img_len) {
  const std::vector<SequenceShard> all =
      shards.empty() ? std::vector{SequenceShard::whole(txt_len, img_len)} : shards;
  FRESCO_ASSERT(position >= 0 && position < int(all.size()), "set_condition: position");
  const SequenceShard& sh = all[size_t(position)];
  FRESCO_ASSERT(sh.txt_len == txt_len && sh.img_len == img_len && sh.txt_begin + sh.txt_count <= sh.txt_len &&
                    sh.img_start + sh.img_count <= sh.img_len,
                "set_condition: shard does not fit the sequence");
  return all;
}
namespace {
// Start of part p when n items are split in `parts` near-equal ranges (larger ones first).
int64_t split_start(int64_t n, int parts, int p) {
  return p * (n / parts) + std::min<int64_t>(p, n % parts);
}
}  // namespace

std::vector<int64_t> split_evenly(int64_t n, int parts) {
  std::vector<int64_t> sizes;
  for (int p = 0; p < parts; ++p) sizes.push_back(split_start(n, parts, p + 1) - split_start(n, parts, p));
  return sizes;
}

std::vector<SequenceShard> partition_sequence(int64_t txt_len, int64_t img_len, int parts) {
  const int64_t L = txt_len + img_len;
  require_input(parts >= 1 && L >= parts,
                "cannot split " + std::to_string(L) + " tokens over " + std::to_string(parts) +
                    " ranks: every rank of an image needs at least one token");
  std::vector<SequenceShard> shards;
  for (int p = 0; p < parts; ++p) {
    const int64_t begin = split_start(L, parts, p), end = split_start(L, parts, p + 1);
    const int64_t txt_end = std::min(end, txt_len), txt_begin = std::min(begin, txt_len);
    const int64_t img_begin = std::max(begin, txt_len) - txt_len;
    shards.push_back({txt_len, img_len, txt_begin, txt_end - txt_begin, img_begin,
                      (std::max(end, txt_len) - txt_len) - img_begin});
  }
  return shards;
}

std::vector<SequenceShard> partition_patches(int64_t txt_len, int64_t grid_h, int64_t grid_w, int parts) {
  require_input(parts >= 1 && grid_h >= parts,
                "cannot cut " + std::to_string(grid_h) + " token rows into " + std::to_string(parts) +
                    " patches: every patch needs at least one row of 2x2 latent patches");
  std::vector<SequenceShard> shards;
  for (int p = 0; p < parts; ++p) {
    const int64_t t0 = split_start(txt_len, parts, p), t1 = split_start(txt_len, parts, p + 1);
    const int64_t r0 = split_start(grid_h, parts, p), r1 = split_start(grid_h, parts, p + 1);
    shards.push_back({txt_len, grid_h * grid_w, t0, t1 - t0, r0 * grid_w, (r1 - r0) * grid_w});
  }
  return shards;
}

}  // namespace fresco
