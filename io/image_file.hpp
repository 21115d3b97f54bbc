// The per-image result of `fresco generate` (docs/file-formats.md, "Image result"):
// DIR/img_{i}.h5 with /latent f32 [16, h, w] and provenance attributes on the root.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "src/core/tensor.hpp"

namespace fresco {
namespace h5 {
class File;
}

inline constexpr const char* kImageFormat = "fresco-image";
// Version 2 added the record of what determines the result (digest_* attributes).
inline constexpr int64_t kImageFormatVersion = 2;

// What determines an image, as digests (hex strings): resume redoes an image whose file
// records other values. `weights`: the transformer's tensors (and the decoder's with --vae);
// `prompt`: the prompt entry's embeddings; `settings`: size, steps, seed, guidance, preset,
// compute dtype, method and the method's options that change the numbers; `combined`: all
// three.
struct ImageDigests {
  std::string weights, prompt, settings, combined;
};

struct ImageProvenance {
  int64_t prompt_index = 0;
  int64_t seed = 0;
  int64_t steps = 0;
  int64_t width = 0, height = 0;
  double guidance = 0.0;
  std::string model;
  std::string command_line;
  int64_t ranks = 1;              // ranks of the job
  std::string parallel = "sequence";  // method that split the image: sequence or patch
  int64_t ulysses = 1, ring = 1;  // sequence: the image's U x R ranks
  std::string comm_dtype;         // sequence: what the Ulysses all-to-all of q/k/v moves
  int64_t patches = 1;            // patch: the image's ranks
  int64_t warmup_steps = 0;       // patch: synchronous steps (all of them with full_sync)
  std::string sync_mode;          // patch: async or full_sync
  std::string stale_dtype;        // patch: type of the stale K/V buffers
  double seconds_per_step = 0.0;
  std::string compute_dtype = "f32";  // activations: f32 or bf16
  ImageDigests digests;
  std::string vae;                // the autoencoder preset that decoded /image (empty: none)
  std::string prompt_text;        // the prompt's text where the prompt file gives it (empty: none)
  std::string cache;              // the step cache and its settings (empty: none; docs/step-cache.md)
  std::string cache_computed;     // with a cache: '1' computed, '0' cached, per step
  std::string lora;               // the LoRA files merged, their digests and scales (empty: none)
  std::string sampler;            // a U-Net's sampler: "ddim leading", "euler trailing" (empty: FLUX's)
};

std::string image_result_path(const std::string& dir, int64_t index);  // DIR/img_{i}.h5
std::string image_png_path(const std::string& dir, int64_t index);     // DIR/img_{i}.png
// Published atomically (temporary file, fsync, rename). latent: [16, h, w]; image (optional):
// [3, H, W] in [0, 1], the decoded picture, stored as /image. Host tensors of any float dtype,
// stored as f32.
void write_image_result(const std::string& path, const Tensor& latent, const ImageProvenance& p,
                        const Tensor* image = nullptr);
// Whether `file` is a Fresco image result of this format version (root attributes only).
bool is_image_result(const h5::File& file);
// The provenance `write_image_result` recorded in `file` (InputError naming the file when it is
// not an image result of this version), so that a result can be published again unchanged but
// for its picture.
ImageProvenance read_image_provenance(const h5::File& file);
// Why the result at `path` cannot be trusted for an image of `expect`: it does not open or
// read back, has another format or version, or records other digests (naming which). Empty
// when it matches.
std::string image_result_mismatch(const std::string& path, const ImageDigests& expect);
// The provenance as PNG text chunks (seed, steps, model, method, ...).
std::map<std::string, std::string> png_text(const ImageProvenance& p);

}  // namespace fresco
