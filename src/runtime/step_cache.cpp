#include "src/runtime/step_cache.hpp"

#include <cmath>
#include <algorithm>
#include <cstdio>
#include <limits>

#include "src/core/error.hpp"

namespace fresco {

const char* cache_method_name(CacheMethod method) {
  switch (method) {
    case CacheMethod::none: return "none";
    case CacheMethod::fbcache: return "fbcache";
    case CacheMethod::dbcache: return "dbcache";
    case CacheMethod::teacache: return "teacache";
  }
  return "?";
}

CacheMethod parse_cache_method(const std::string& name) {
  for (CacheMethod m : {CacheMethod::none, CacheMethod::fbcache, CacheMethod::dbcache, CacheMethod::teacache})
    if (name == cache_method_name(m)) return m;
  throw InputError("option --cache must be none, fbcache, dbcache or teacache (got '" + name + "')");
}

const std::vector<double>& teacache_flux_coefficients() {
  static const std::vector<double> c{4.98651651e+02, -2.83781631e+02, 5.58554382e+01, -3.82021401e+00,
                                     2.64230861e-01};
  return c;
}

StepCacheOptions default_cache_options(CacheMethod method) {
  StepCacheOptions o;
  o.method = method;
  switch (method) {
    case CacheMethod::none: break;
    case CacheMethod::fbcache:  // ParaAttention's First Block Cache
      o.threshold = 0.08;
      o.first_blocks = 1;
      break;
    case CacheMethod::dbcache:  // cache-dit's defaults: F8B0, 8 warm-up steps
      o.threshold = 0.08;
      o.first_blocks = 8;
      o.warmup = 8;
      break;
    case CacheMethod::teacache:  // TeaCache4FLUX's 1.8x setting
      o.threshold = 0.4;
      o.coefficients = teacache_flux_coefficients();
      break;
  }
  return o;
}

void resolve_cache_options(StepCacheOptions& o, int blocks) {
  if (!o.enabled()) return;
  if (o.method == CacheMethod::dbcache && !o.first_blocks_given)
    o.first_blocks = std::max(1, std::min(o.first_blocks, blocks - 1 - o.last_blocks));
  require_input(std::isfinite(o.threshold) && o.threshold >= 0,
                "option --cache-threshold must be a non-negative number (got " + std::to_string(o.threshold) + ")");
  require_input(o.first_blocks >= 0 && o.last_blocks >= 0,
                "options --cache-first-blocks and --cache-last-blocks must not be negative");
  if (o.method == CacheMethod::dbcache) {
    require_input(o.first_blocks >= 1 && o.first_blocks <= blocks,
                  "option --cache-first-blocks must be between 1 and the model's " + std::to_string(blocks) +
                      " blocks (got " + std::to_string(o.first_blocks) + ")");
    require_input(o.first_blocks + o.last_blocks < blocks,
                  "options --cache-first-blocks + --cache-last-blocks (" + std::to_string(o.first_blocks) + " + " +
                      std::to_string(o.last_blocks) + ") must leave at least one of the model's " +
                      std::to_string(blocks) + " blocks to cache");
  }
  require_input(o.warmup >= 0, "option --cache-warmup must not be negative (got " + std::to_string(o.warmup) + ")");
  require_input(o.max_consecutive >= 0, "option --cache-max-consecutive must be at least 1");
  if (o.method == CacheMethod::teacache)
    require_input(!o.coefficients.empty(), "option --cache-coefficients needs at least one coefficient");
  for (double c : o.coefficients)
    require_input(std::isfinite(c), "option --cache-coefficients must hold finite numbers");
  if (!o.pattern.empty()) {
    require_input(o.pattern.find_first_not_of("01") == std::string::npos,
                  "option --cache-pattern must be a string of 1 (computed) and 0 (cached) (got '" + o.pattern + "')");
    require_input(o.pattern[0] == '1', "option --cache-pattern must start with 1: the first step has no residual to reuse");
  }
}

StepCacheLayout cache_layout(const StepCacheOptions& o) {
  StepCacheLayout layout;
  if (!o.enabled()) return layout;
  layout.signal = o.method == CacheMethod::teacache ? CacheSignal::modulated_input : CacheSignal::head_residual;
  layout.head_blocks = o.method == CacheMethod::teacache ? 0 : o.first_blocks;
  layout.tail_blocks = o.method == CacheMethod::teacache ? 0 : o.last_blocks;
  return layout;
}

std::string describe_cache(const StepCacheOptions& o) {
  if (!o.enabled()) return "none";
  char text[160];
  std::string d = cache_method_name(o.method);
  if (o.method != CacheMethod::teacache) {
    std::snprintf(text, sizeof text, " F%dB%d", o.first_blocks, o.last_blocks);
    d += text;
  }
  if (!o.pattern.empty()) return d + " pattern " + o.pattern;  // the rules are not applied
  std::snprintf(text, sizeof text, " threshold %.6g warmup %d", o.threshold, o.warmup);
  d += text;
  if (o.max_consecutive > 0) d += " max-consecutive " + std::to_string(o.max_consecutive);
  if (o.method == CacheMethod::teacache && o.coefficients != teacache_flux_coefficients()) {
    d += " coefficients";
    for (double c : o.coefficients) {
      std::snprintf(text, sizeof text, " %.9g", c);
      d += text;
    }
  }
  return d;
}

void StepCachePolicy::begin_image(int steps) {
  steps_ = steps;
  consecutive_cached_ = 0;
  accumulated_ = 0;
  decisions_.clear();
  ratios_.clear();
}

bool StepCachePolicy::use_cache(int step, double change, double reference) {
  FRESCO_ASSERT(step == int(decisions_.size()), "step cache: steps out of order");
  // No reference at an image's first step (P is the previous image's, or nothing).
  const double ratio = reference > 0 && step > 0 ? change / reference : std::numeric_limits<double>::infinity();
  const bool cached = decide(step, ratio);
  consecutive_cached_ = cached ? consecutive_cached_ + 1 : 0;
  decisions_ += cached ? '0' : '1';
  ratios_.push_back(ratio);
  return cached;
}

bool StepCachePolicy::decide(int step, double ratio) {
  const StepCacheOptions& o = options_;
  if (!o.pattern.empty()) return o.pattern[size_t(step) % o.pattern.size()] == '0';
  const bool capped = o.max_consecutive > 0 && consecutive_cached_ >= o.max_consecutive;
  if (o.method == CacheMethod::teacache) {
    if (step == 0 || step == steps_ - 1 || step < o.warmup || capped || !std::isfinite(ratio)) {
      accumulated_ = 0;
      return false;
    }
    double poly = 0;  // Horner, highest degree first
    for (double c : o.coefficients) poly = poly * ratio + c;
    accumulated_ += poly;
    if (o.threshold > 0 && accumulated_ < o.threshold) return true;
    accumulated_ = 0;
    return false;
  }
  const bool computed_before = decisions_.find('1') != std::string::npos;
  if (step < o.warmup || !computed_before || capped || !std::isfinite(ratio)) return false;
  return o.threshold > 0 && ratio < o.threshold;
}

}  // namespace fresco
