// --cache and its knobs (docs/step-cache.md), shared by generate and bench.
#include "src/cli/options.hpp"
#include "src/core/error.hpp"

namespace fresco::cli {

void add_cache_options(po::options_description& o) {
  o.add_options()
      ("cache", po::value<std::string>()->default_value("none"),
       "step caching (docs/step-cache.md), opt-in and inexact: none, fbcache (First-Block Cache),\n"
       "dbcache (Dual-Block Cache) or teacache; a step whose early signal changed less than the\n"
       "threshold reuses the residual of the last computed step; every rank of an image decides alike")
      ("cache-threshold", po::value<double>(),
       "the method's threshold (default: fbcache 0.08, dbcache 0.08, teacache 0.4; 0: never cache)")
      ("cache-first-blocks", po::value<int>(),
       "dbcache: blocks always computed before the decision (default 8, at most the model's blocks - 1 - B)")
      ("cache-last-blocks", po::value<int>(), "dbcache: blocks always computed after it (default 0)")
      ("cache-warmup", po::value<int>(), "steps 0..W-1 always computed (default: dbcache 8, else 0)")
      ("cache-max-consecutive", po::value<int>(), "at most N cached steps in a row (default: no limit)")
      ("cache-coefficients", po::value<std::string>(),
       "teacache: the rescaling polynomial, comma-separated, highest degree first (default: FLUX.1's\n"
       "published 498.651651,-283.781631,55.8554382,-3.82021401,0.264230861)")
      ("cache-pattern", po::value<std::string>(),
       "force the decisions: 1 (computed) and 0 (cached) per step, repeated; starts with 1\n"
       "(benchmarks; reproducing a run's decisions from its cache_computed attribute)");
}

StepCacheOptions cache_options(const po::variables_map& vm) {
  const CacheMethod method = parse_cache_method(vm["cache"].as<std::string>());
  StepCacheOptions o = default_cache_options(method);
  auto given = [&](const char* name) { return vm.count(name) > 0 && !vm[name].defaulted(); };
  for (const char* name : {"cache-threshold", "cache-first-blocks", "cache-last-blocks", "cache-warmup",
                           "cache-max-consecutive", "cache-coefficients", "cache-pattern"})
    require_input(!given(name) || method != CacheMethod::none,
                  std::string("option --") + name + " needs a step cache (--cache fbcache, dbcache or teacache)");
  for (const char* name : {"cache-first-blocks", "cache-last-blocks"})
    require_input(!given(name) || method == CacheMethod::dbcache,
                  std::string("option --") + name + " applies to --cache dbcache (fbcache is dbcache with F1B0)");
  require_input(!given("cache-coefficients") || method == CacheMethod::teacache,
                "option --cache-coefficients applies to --cache teacache");
  if (given("cache-threshold")) o.threshold = vm["cache-threshold"].as<double>();
  if (given("cache-first-blocks")) {
    o.first_blocks = vm["cache-first-blocks"].as<int>();
    o.first_blocks_given = true;
  }
  // A forced pattern replaces the rules: their knobs would be silently ignored.
  for (const char* name : {"cache-threshold", "cache-warmup", "cache-max-consecutive", "cache-coefficients"})
    require_input(!given(name) || !given("cache-pattern"),
                  std::string("option --") + name + " has no effect with --cache-pattern (the pattern decides every step)");
  if (given("cache-last-blocks")) o.last_blocks = vm["cache-last-blocks"].as<int>();
  if (given("cache-warmup")) o.warmup = vm["cache-warmup"].as<int>();
  if (given("cache-max-consecutive")) {
    o.max_consecutive = vm["cache-max-consecutive"].as<int>();
    require_input(o.max_consecutive >= 1, "option --cache-max-consecutive must be at least 1 (got " +
                                              std::to_string(o.max_consecutive) + ")");
  }
  if (given("cache-coefficients")) {
    o.coefficients.clear();
    const std::string list = vm["cache-coefficients"].as<std::string>();
    for (const std::string& item : split_list(list)) {
      const std::optional<double> c = whole_number(item);
      require_input(c.has_value(), "option --cache-coefficients must be comma-separated numbers (got '" + item + "')");
      o.coefficients.push_back(*c);
    }
  }
  if (given("cache-pattern")) o.pattern = vm["cache-pattern"].as<std::string>();
  return o;
}

}  // namespace fresco::cli
