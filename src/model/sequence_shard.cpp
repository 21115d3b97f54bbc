#include "src/model/sequence_shard.hpp"

#include <algorithm>

#include "src/core/error.hpp"

namespace fresco {

int64_t SequenceShard::txt_rows() const {
  return std::clamp<int64_t>(txt_len - begin, 0, count);
}

int64_t SequenceShard::img_begin() const { return std::max<int64_t>(begin - txt_len, 0); }

std::vector<SequenceShard> partition_sequence(int64_t txt_len, int64_t img_len, int parts) {
  const int64_t L = txt_len + img_len;
  require_input(parts >= 1 && L >= parts,
                "cannot split " + std::to_string(L) + " tokens over " + std::to_string(parts) +
                    " ranks: every rank of an image needs at least one token");
  std::vector<SequenceShard> shards;
  int64_t begin = 0;
  for (int p = 0; p < parts; ++p) {
    const int64_t count = L / parts + (p < L % parts ? 1 : 0);
    shards.push_back({txt_len, img_len, begin, count});
    begin += count;
  }
  return shards;
}

}  // namespace fresco
