// Prompt batches and forward inputs seen from the model: their widths checked against a
// preset, and random prompt batches drawn from the counter-based RNG. The file formats
// themselves are io/prompts_file.hpp and io/forward_io.hpp (included here for their types).
#pragma once

#include <cstdint>
#include <string>

#include "io/forward_io.hpp"
#include "io/prompts_file.hpp"
#include "src/model/flux_config.hpp"

namespace fresco {

// Checks every prompt's dataset shapes against the model (reads no data); InputError naming
// the first bad dataset.
void validate_prompts(const PromptsFile& prompts, const FluxConfig& config);

// Reads the forward inputs and checks every dataset against the model; InputError naming the
// file and the object otherwise.
ForwardInputs read_forward_inputs(const std::string& path, const FluxConfig& config);

struct PromptBatchSpec {
  int64_t count = 4;
  int64_t txt_len = 64;
  uint64_t seed = 0;  // of the random embeddings and the images' noise (image i: seed + i)
  int64_t width = 256, height = 256, steps = 0;  // steps 0: the preset's default
  double guidance = 0.0;
};

// Random embeddings (standard normal) for tests and demos, published atomically.
void write_random_prompts(const std::string& path, const FluxConfig& config,
                          const PromptBatchSpec& spec);

}  // namespace fresco
