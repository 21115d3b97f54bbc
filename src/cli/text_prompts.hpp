// Text prompts through the text encoders, shared by `fresco encode` and `fresco generate
// --prompts prompts.txt` (docs/text-encoders.md): the encoders' options and the one loop that
// turns a prompt list into a prompt batch file.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "io/prompt_list.hpp"
#include "src/cli/options.hpp"
#include "src/model/prompt_encoder.hpp"

namespace fresco::cli {

// --t5, --clip, --tokenizers and --t5-tokens. `required`: encode needs the first three; generate
// takes them only with a text prompt list.
void add_text_encoder_options(po::options_description& options, bool required);

struct TextEncoderOptions {
  PromptEncoderFiles files;
  int64_t t5_tokens = 512;  // T5's padded length
};
// The options' values; nothing when none of --t5, --clip, --tokenizers is given. InputError
// when only some are, or --t5-tokens is not positive.
std::optional<TextEncoderOptions> text_encoder_options(const po::variables_map& vm);

// Encodes every prompt of `prompts` on `backend` in `compute` (f32 or bf16) and writes the
// batch to `out` (published atomically; the text and each prompt's settings as attributes).
// The encoders' weights and buffers are freed when it returns. Prints, after `label`, the
// weights' size and load time, each encoder's time per prompt, and what was written.
void encode_prompt_list(const std::vector<TextPrompt>& prompts, const TextEncoderOptions& encoders,
                        const std::string& backend_name, int device, DType compute, const std::string& out,
                        const std::string& label);

// generate's --prompts: a prompt batch (HDF5) is used as it is; a text or JSONL prompt list is
// encoded once for the whole job, by rank 0 on its device in the engine's compute dtype, into
// OUT_DIR/prompts.h5, which every rank then reads (a nested collective set-up: an encoding
// error is reported once). The encoders are freed before this returns, so before the
// transformer is built. Returns the batch's path. InputError for a text list without the
// encoder options (naming what to add) and for the encoder options with a batch.
std::string prompt_batch_for_generate(const po::variables_map& vm, const MpiSession& mpi, const EngineChoice& engine,
                                      const std::string& out_dir);

}  // namespace fresco::cli
