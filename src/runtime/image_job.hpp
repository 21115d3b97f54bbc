// One image of a batch on the engine's group: its settings (ImageJob), the sampler loop that
// denoises it (ImageDenoiser: initial noise, the steps through the StepRunner, the gather of
// every rank's tokens, the non-finite check) and what its result records (provenance).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "io/image_file.hpp"
#include "mpi/plans/parallel_plan.hpp"
#include "src/runtime/engine.hpp"
#include "src/runtime/step_runner.hpp"

namespace fresco {

// Everything about one image, resolved from the batch file and the command line.
struct ImageJob {
  int64_t index = 0;
  uint64_t seed = 0;
  int64_t width = 0, height = 0, steps = 0;
  double guidance = 0.0;
  std::string prompt_text;  // the prompt file's text of the prompt (provenance only; may be empty)
  ImageDigests digests;  // what determines the result (resume compares it)
};

struct DenoisedImage {
  Tensor latent;                 // [latent channels, H/8, W/8] f32 host, on every rank of the group
  int64_t non_finite = 0;        // non-finite values of the final tokens, summed over the group
  bool stopped = false;          // a stop signal ended it at a step boundary (latent undefined)
  double seconds = 0;            // wall time of the whole image (set-up, steps, gather)
  std::vector<StepRunner::StepTime> step_times;  // device time of each step
  double bytes_sent = 0;         // bytes this rank's exchanges sent over the image's steps
  StepAccounting accounting;     // groups of several ranks: every rank's communication
  std::string cache_decisions;   // with a step cache: '1' computed, '0' cached, per step
  std::vector<double> cache_ratios;  // and the metric D / R of each step (infinite where R = 0)
  // Median ms of the steady-state steps (all but the first of each kind, which plans, sizes
  // and captures; on every backend, graphs or not): comparable with `fresco bench`. With a
  // step cache, of the computed steps, and separately of the cached ones (0 where none).
  double median_step_ms() const;
  double median_cached_step_ms() const;
};

class ImageDenoiser {
 public:
  // `verbose`: the group leader prints every rank's communication of each image.
  ImageDenoiser(Engine& engine, bool verbose = false);
  // Denoises `job` for `prompt` on the engine's group (every rank of the group calls it);
  // `between_steps` runs on the host after each step (progress reports). A stop signal
  // (SIGTERM, SIGUSR1) on any rank of the group ends the image at the next step boundary.
  DenoisedImage denoise(const ImageJob& job, const Conditioning& prompt, const std::function<void()>& between_steps);
  const StepRunner& runner() const { return runner_; }

 private:
  Engine& engine_;
  bool verbose_;
  StepRunner runner_;
  int64_t image_tokens_ = -1;
  Tensor latent_;  // [c * 4 * Limg] f32 device: the latent image of the current shape (flat)
  Tensor packed_;  // [Limg, C] f32 device: every image token
  Tensor bad_;     // [1] i64 device: non-finite count of this rank's final tokens
};

// The job's own fields of its result's provenance (index, seed, size, steps, guidance, text) with
// the model, the command line and the job's rank count.
ImageProvenance job_provenance(const ImageJob& job, const std::string& model, const std::string& command_line,
                               int64_t ranks);
// What the result of `job` records about how it was made.
ImageProvenance image_provenance(const ImageJob& job, const Engine& engine, const std::string& command_line,
                                 double seconds_per_step);

}  // namespace fresco
