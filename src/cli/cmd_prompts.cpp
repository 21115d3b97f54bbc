// `fresco make-prompts`: a batch of random prompt embeddings for tests and demos.
#include <cstdio>

#include "io/atomic_output.hpp"
#include "src/model/model_inputs.hpp"
#include "src/model/model_registry.hpp"
#include "src/cli/commands.hpp"
#include "src/runtime/validation.hpp"

namespace fresco::cli {

Command make_prompts_command() {
  Command c;
  c.name = "make-prompts";
  c.summary = "write a batch of random prompt embeddings (tests and demos)";
  c.usage = "fresco make-prompts --model PRESET [--count N] [--txt-len L] ... OUT.h5";
  c.details =
      "Writes /prompts/{i}/txt [L, context_in_dim] and /prompts/{i}/y [vec_in_dim] with standard\n"
      "normal values, and the batch attributes seed, width, height, steps, guidance. Real\n"
      "prompts come from T5 and CLIP outputs in the same layout (docs/file-formats.md).";
  c.add_options = [](po::options_description& o, po::positional_options_description& p) {
    o.add_options()
        ("model", po::value<std::string>()->required(), "preset whose widths the embeddings take")
        ("count", po::value<int64_t>()->default_value(4), "number of prompts")
        ("txt-len", po::value<int64_t>()->default_value(64), "text tokens per prompt")
        ("seed", po::value<uint64_t>()->default_value(0), "seed of the embeddings; image i gets seed + i")
        ("width", po::value<int64_t>()->default_value(256), "image width attribute")
        ("height", po::value<int64_t>()->default_value(256), "image height attribute")
        ("steps", po::value<int64_t>()->default_value(0), "steps attribute (0: none, the preset decides)")
        ("guidance", po::value<double>()->default_value(3.5), "guidance attribute")
        ("output", po::value<std::string>()->required(), "output file (also the positional argument)");
    p.add("output", 1);
  };
  c.setup = [](const po::variables_map& vm, const RunContext& ctx) -> std::function<int()> {
    const FluxConfig config = denoiser_config(vm["model"].as<std::string>());  // its prompt widths
    require_positive(vm, "count");
    require_positive(vm, "txt-len");
    PromptBatchSpec spec;
    spec.count = vm["count"].as<int64_t>();
    spec.txt_len = vm["txt-len"].as<int64_t>();
    spec.seed = vm["seed"].as<uint64_t>();
    spec.width = vm["width"].as<int64_t>();
    spec.height = vm["height"].as<int64_t>();
    spec.steps = vm["steps"].as<int64_t>();
    spec.guidance = vm["guidance"].as<double>();
    // What generate would refuse is refused here, before a file is written.
    check_image_size(spec.width, spec.height, "make-prompts: ", " (options --width/--height)");
    require_input(spec.steps >= 0 && spec.steps <= kMaxSteps,
                  "option --steps must be between 0 (the preset's default) and " + std::to_string(kMaxSteps) +
                      " (got " + std::to_string(spec.steps) + ")");
    check_finite(spec.guidance, "--guidance");
    const std::string out = vm["output"].as<std::string>();
    ensure_output_path(out);
    return [=]() {
      if (ctx.mpi.rank() != 0) return 0;
      write_random_prompts(out, config, spec);
      std::printf("fresco make-prompts: wrote %s (%lld prompts for %s)\n", out.c_str(),
                  (long long)spec.count, config.name.c_str());
      return 0;
    };
  };
  return c;
}

}  // namespace fresco::cli
