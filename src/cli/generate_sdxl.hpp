// `fresco generate` with the SDXL U-Net (docs/sdxl.md): one rank, a prompt batch of precomputed
// SDXL conditioning (docs/file-formats.md, "Prompt batch"), DDIM or Euler discrete with
// classifier-free guidance where a prompt has a negative one; latents only (the SDXL VAE is not
// a preset yet). generate's setup hands over here when the weights are a U-Net's.
#pragma once

#include <functional>
#include <string>

#include "src/cli/commands.hpp"
#include "src/model/denoiser.hpp"
#include "src/runtime/image_job.hpp"

namespace fresco {
class PromptsFile;
}

namespace fresco::cli {

// The U-Net preset the run's --model / --weights name, or "" when it is another model's (or the
// weights file cannot be read: generate's own path then reports that).
std::string sdxl_generate_preset(const po::variables_map& vm);
// generate's options resolved for image `index` of the batch (the seed, size, steps and guidance
// rules of `fresco generate --help`), the defaults being the preset's.
ImageJob resolve_job(const po::variables_map& vm, const PromptsFile& prompts, int64_t index, const DenoiserSpec& spec);
// The run of generate for U-Net preset `preset`.
std::function<int()> sdxl_generate_setup(const po::variables_map& vm, const RunContext& ctx, const std::string& preset);

}  // namespace fresco::cli
