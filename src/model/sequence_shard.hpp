// How one image's joint token sequence cat(txt, img) is split over the ranks of a
// sequence-parallel group: contiguous, near-equal row ranges of the whole joint sequence
// (docs/parallelism.md explains why text tokens are sharded with the image tokens).
#pragma once

#include <cstdint>
#include <vector>

namespace fresco {

struct SequenceShard {
  int64_t txt_len = 0;  // text tokens of the whole image
  int64_t img_len = 0;  // image tokens of the whole image
  int64_t begin = 0;    // first row of the joint sequence held here
  int64_t count = 0;    // rows held here

  static SequenceShard whole(int64_t txt_len, int64_t img_len) {
    return {txt_len, img_len, 0, txt_len + img_len};
  }
  int64_t end() const { return begin + count; }
  // Rows of this shard that are text tokens (they come first).
  int64_t txt_rows() const;
  int64_t img_rows() const { return count - txt_rows(); }
  // Index of the first image token held here, in image-token numbering.
  int64_t img_begin() const;
};

// The `parts` shards of a sequence, in order; the first (L mod parts) get one more row.
std::vector<SequenceShard> partition_sequence(int64_t txt_len, int64_t img_len, int parts);

}  // namespace fresco
