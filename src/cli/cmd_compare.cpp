// `fresco compare`: PSNR, max absolute error and relative L2 between two outputs, for quality
// studies (DistriFusion against the exact run, bf16 against f32, ...).
#include <cmath>
#include <cstdio>
#include <optional>

#include "io/h5_file.hpp"
#include "src/cli/commands.hpp"
#include "src/core/difference.hpp"
#include "src/core/digest.hpp"

namespace fresco::cli {
namespace {

// The first of the datasets Fresco writes that the file holds.
std::string default_dataset(const h5::File& file) {
  for (const char* name : {"/latent", "/image", "/velocity"})
    if (file.exists(name)) return name;
  throw InputError(file.path() + " holds none of /latent, /image, /velocity; name one with --dataset");
}

// A measurement or a limit as the user would write it: 4 significant digits.
std::string format_number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", x);
  return buf;
}

}  // namespace

Command compare_command() {
  Command c;
  c.name = "compare";
  c.summary = "PSNR, max abs error and relative L2 of an output against a reference";
  c.usage = "fresco compare [--dataset NAME] [--max-rel-l2 X] [--min-psnr DB] TEST.h5 REFERENCE.h5";
  c.details =
      "Compares one dataset (default: the first of /latent, /image, /velocity) of two files of\n"
      "the same shape. PSNR = 10 log10(range^2 / MSE) with range = max - min of the reference;\n"
      "relative L2 = |test - reference| / |reference|. With a limit (--max-rel-l2, --min-psnr)\n"
      "it is a check for scripts and CI: exit status 1 and one line naming the limit when the\n"
      "test file is further from the reference, 0 within the limits (2 and above: errors).";
  c.add_options = [](po::options_description& o, po::positional_options_description& p) {
    o.add_options()
        ("test", po::value<std::string>()->required(), "file to judge (first positional)")
        ("reference", po::value<std::string>()->required(), "reference file (second positional)")
        ("dataset", po::value<std::string>()->default_value(""), "dataset to compare (default: automatic)")
        ("max-rel-l2", po::value<double>(), "fail (status 1) when the relative L2 error is above X")
        ("min-psnr", po::value<double>(), "fail (status 1) when the PSNR is below DB decibels");
    p.add("test", 1).add("reference", 1);
  };
  c.setup = [](const po::variables_map& vm, const RunContext& ctx) -> std::function<int()> {
    const auto limit = [&](const char* option) -> std::optional<double> {
      if (!vm.count(option)) return std::nullopt;
      return vm[option].as<double>();
    };
    const std::optional<double> max_rel_l2 = limit("max-rel-l2"), min_psnr = limit("min-psnr");
    require_input(!max_rel_l2 || (*max_rel_l2 >= 0 && std::isfinite(*max_rel_l2)),
                  "option --max-rel-l2 must be a non-negative number");
    require_input(!min_psnr || std::isfinite(*min_psnr), "option --min-psnr must be a finite number of dB");
    const h5::File test = h5::File::open(vm["test"].as<std::string>());
    const h5::File ref = h5::File::open(vm["reference"].as<std::string>());
    std::string name = vm["dataset"].as<std::string>();
    if (name.empty()) name = default_dataset(ref);
    const Tensor a = test.read_f32(name), b = ref.read_f32(name);
    require_input(a.shape() == b.shape(), test.path() + ":" + name + " has shape " + shape_string(a.shape()) +
                                              " but " + ref.path() + ":" + name + " has " +
                                              shape_string(b.shape()));
    // A NaN compares as nothing at all (PSNR inf, L2 0 from NaN-skipping sums): refuse it.
    for (const auto& [file, t] : {std::pair<const h5::File*, const Tensor*>{&test, &a}, {&ref, &b}})
      if (const int64_t bad = count_nonfinite_host(*t))
        throw ComputeError(file->path() + ":" + name + " has " + std::to_string(bad) + " non-finite value(s) (NaN or Inf) of " +
                           std::to_string(t->numel()) + "; no comparison made");
    return [a, b, name, max_rel_l2, min_psnr, &mpi = ctx.mpi]() {
      if (mpi.rank() != 0) return 0;
      const Difference d = difference(a, b);
      std::printf("%s %s: PSNR %.2f dB, max abs error %.4e, relative L2 %.4e (%lld values)\n",
                  name.c_str(), shape_string(a.shape()).c_str(), d.psnr_db, d.max_abs, d.relative_l2,
                  (long long)a.numel());
      std::fflush(stdout);
      std::string failed;  // the limits not met, for the one line of the verdict
      if (max_rel_l2 && d.relative_l2 > *max_rel_l2)
        failed = "relative L2 " + format_number(d.relative_l2) + " exceeds --max-rel-l2 " + format_number(*max_rel_l2);
      if (min_psnr && d.psnr_db < *min_psnr)
        failed += (failed.empty() ? "" : "; ") + std::string("PSNR ") + format_number(d.psnr_db) +
                  " dB is below --min-psnr " + format_number(*min_psnr);
      if (failed.empty()) return 0;
      std::fprintf(stderr, "fresco compare: %s %s\n", name.c_str(), failed.c_str());
      return 1;
    };
  };
  return c;
}

}  // namespace fresco::cli
