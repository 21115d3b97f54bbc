// Which tokens of one image a rank holds: a range of the text tokens and a range of the image
// tokens (row-major over the packed grid), text rows first in the rank's buffers.
//  - partition_sequence: contiguous, near-equal ranges of the joint sequence cat(txt, img), the
//    sharding of the exact sequence-parallel methods (docs/parallelism.md);
//  - partition_patches: DistriFusion's patches, bands of whole grid rows, with the text tokens
//    split evenly beside them (docs/distrifusion.md).
#pragma once

#include <cstdint>
#include <vector>

namespace fresco {

struct SequenceShard {
  int64_t txt_len = 0;    // text tokens of the whole image
  int64_t img_len = 0;    // image tokens of the whole image
  int64_t txt_begin = 0;  // first text token held here
  int64_t txt_count = 0;
  int64_t img_start = 0;  // first image token held here (image-token numbering)
  int64_t img_count = 0;

  static SequenceShard whole(int64_t txt_len, int64_t img_len) {
    return {txt_len, img_len, 0, txt_len, 0, img_len};
  }
  int64_t count() const { return txt_count + img_count; }  // rows held here
  int64_t txt_rows() const { return txt_count; }
  int64_t img_rows() const { return img_count; }
  int64_t img_begin() const { return img_start; }
  bool operator==(const SequenceShard&) const = default;
};

// The shards of one image as a denoiser's set_condition takes them: `shards`, or one shard of the
// whole sequence when empty; FRESCO_ASSERT that `position` names one and that its shard lies
// within txt_len text and img_len image tokens.
std::vector<SequenceShard> condition_shards(const std::vector<SequenceShard>& shards, int position,
                                            int64_t txt_len, int64_t img_len);

// Sizes of `parts` near-equal ranges of n items, the larger ones first.
std::vector<int64_t> split_evenly(int64_t n, int parts);

// `parts` contiguous ranges of cat(txt, img); the first (L mod parts) get one more row.
std::vector<SequenceShard> partition_sequence(int64_t txt_len, int64_t img_len, int parts);

// `parts` bands of whole rows of the grid_h x grid_w token grid (the first grid_h mod parts
// bands one row taller) and the text tokens split the same way.
std::vector<SequenceShard> partition_patches(int64_t txt_len, int64_t grid_h, int64_t grid_w, int parts);

}  // namespace fresco
