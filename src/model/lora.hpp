// LoRA adapters merged into a preset's weights when they are loaded (--lora FILE[:SCALE],
// docs/checkpoints.md "LoRA"): W += scale * alpha / rank * up @ down, in f32 on the host, the
// result stored in W's dtype. Two layouts of the adapters' names:
//   kohya:          lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight / .lora_down.weight / .alpha
//   diffusers/PEFT: transformer.transformer_blocks.0.attn.to_q.lora_B.weight / .lora_A.weight
//                   (landing on rows of the fused tensors through checkpoint_layout's recipes)
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors_set.hpp"
#include "src/core/tensor.hpp"
#include "src/model/checkpoint_layout.hpp"

namespace fresco {

struct LoraRequest {
  std::string path;
  double scale = 1.0;
};
// "FILE[:SCALE]" (the last ':' followed by a number splits them); InputError naming the option
// for an empty file name or a scale that is not a finite number.
LoraRequest parse_lora_request(const std::string& text);

// --lora (repeatable) and --lora-unmatched.
struct LoraOptions {
  std::vector<LoraRequest> files;
  bool allow_unmatched = false;  // warn about keys that match nothing instead of refusing the file
  bool empty() const { return files.empty(); }
};

// What a run records of a LoRA file (provenance, run record, the resume digest).
struct LoraSummary {
  std::string path;
  std::string digest;  // of its tensors' names, dtypes, shapes and bytes
  double scale = 1.0;
  int64_t pairs = 0;   // up/down pairs merged
};

// The LoRA files of a run read and matched against a preset's tensors.
class LoraMerge {
 public:
  // Reads every file (safetensors, F32/F16/BF16) and matches its pairs to the preset's tensors.
  // Every key that matches nothing (no pair layout, no preset tensor of that name, a pair with
  // its other half missing) is collected: an InputError naming them all, unless
  // options.allow_unmatched, when unmatched() lists them for a warning. A pair whose shapes do
  // not fit its tensor is an InputError naming both.
  LoraMerge(const LoraOptions& options, const std::string& preset);

  bool empty() const { return targets_.empty(); }
  // `host` (preset tensor `key`, f32, bf16 or f16, contiguous) with every pair that lands on it
  // added; `host` itself when none does.
  Tensor apply(const std::string& key, const Tensor& host) const;
  // The preset tensors some pair lands on.
  std::vector<std::string> touched() const;
  const std::vector<std::string>& unmatched() const { return unmatched_; }
  const std::vector<LoraSummary>& summaries() const { return summaries_; }
  // One digest of every file's digest and scale, for the weights' identity.
  std::string identity() const;

 private:
  struct Pair {
    Tensor up, down;  // f32 [out, rank], [rank, in]
    float factor = 1; // scale * alpha / rank
    RowSegment rows;  // rows of up @ down -> rows of the target
    std::string name; // the adapter's module name in its file, for messages
  };
  std::map<std::string, std::vector<Pair>> targets_;  // preset key -> its pairs
  std::vector<std::string> unmatched_;
  std::vector<LoraSummary> summaries_;
};

// "a.safetensors (digest 0123abcd...) x 0.8; b.safetensors (...) x 1": provenance text.
std::string describe_loras(const std::vector<LoraSummary>& loras);

}  // namespace fresco
