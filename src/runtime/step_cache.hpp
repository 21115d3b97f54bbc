// Step caching (docs/step-cache.md): FBCache, DBCache and TeaCache, the options of each and the
// host's decision of every step. The denoiser computes the metric's two sums on the device
// (Denoiser::forward_head); StepRunner adds them over the ranks of the image in rank order, so
// every rank of an image takes the same decision from the same numbers, and asks this policy.
#pragma once

#include <string>
#include <vector>

#include "src/model/denoiser.hpp"

namespace fresco {

enum class CacheMethod { none, fbcache, dbcache, teacache };

// --cache and its knobs; a default-constructed value is --cache none.
struct StepCacheOptions {
  CacheMethod method = CacheMethod::none;
  double threshold = 0;           // 0: never cache
  int first_blocks = 0;           // F (fbcache 1; teacache 0)
  bool first_blocks_given = false;  // dbcache: F set by the user, else fitted to the model
  int last_blocks = 0;            // B
  int warmup = 0;                 // steps 0..W-1 computed
  int max_consecutive = 0;        // at most this many cached steps in a row (0: no limit)
  std::vector<double> coefficients;  // teacache: highest degree first
  std::string pattern;            // forced decisions: '1' computed, '0' cached, cyclic ("": none)

  bool enabled() const { return method != CacheMethod::none; }
};

// The methods' names as --cache takes them, and their published defaults.
const char* cache_method_name(CacheMethod method);
CacheMethod parse_cache_method(const std::string& name);  // InputError naming --cache
StepCacheOptions default_cache_options(CacheMethod method);
// TeaCache's FLUX.1 rescaling polynomial (TeaCache4FLUX, ali-vilab/TeaCache), highest degree first.
const std::vector<double>& teacache_flux_coefficients();
// Fits dbcache's default F (8, FLUX.1's 57 blocks) to a model of fewer blocks (at most
// blocks - 1 - B), then refuses values that make no sense for a model of `blocks` blocks
// (InputError naming the option).
void resolve_cache_options(StepCacheOptions& options, int blocks);
// What the model computes for the method: the head's blocks, the tail's, the signal.
StepCacheLayout cache_layout(const StepCacheOptions& options);
// One line for reports, provenance and the resume digest: "dbcache F8B0 threshold 0.08 warmup 8 ...".
std::string describe_cache(const StepCacheOptions& options);

// The decisions of one image, in order. Host state only; every rank of the image holds one and
// feeds it the same sums, so all of them decide alike.
class StepCachePolicy {
 public:
  explicit StepCachePolicy(StepCacheOptions options) : options_(std::move(options)) {}
  const StepCacheOptions& options() const { return options_; }

  void begin_image(int steps);
  // Step `step`'s decision from the image's sums D = Σ|S − P| and R = Σ|P| (all ranks): true to
  // reuse the cached residual, false to compute. Steps must come in order.
  bool use_cache(int step, double change, double reference);
  // The decisions since begin_image(): '1' computed, '0' cached (the --cache-pattern syntax).
  const std::string& decisions() const { return decisions_; }
  // ratio = D / R of each step (infinite where R = 0), for reports.
  const std::vector<double>& ratios() const { return ratios_; }

 private:
  bool decide(int step, double ratio);
  StepCacheOptions options_;
  int steps_ = 0;
  int consecutive_cached_ = 0;
  double accumulated_ = 0;  // teacache's A
  std::string decisions_;
  std::vector<double> ratios_;
};

}  // namespace fresco
