// --lora and --lora-unmatched (docs/checkpoints.md "LoRA"), shared by generate, forward and bench.
#include <filesystem>

#include "src/cli/options.hpp"
#include "src/core/error.hpp"

namespace fresco::cli {

void add_lora_options(po::options_description& o) {
  o.add_options()
      ("lora", po::value<std::vector<std::string>>()->composing(),
       "FILE[:SCALE]: a LoRA adapter (safetensors; kohya lora_unet_* or diffusers/PEFT\n"
       "lora_A/lora_B names) merged into the transformer's weights at load: W += SCALE *\n"
       "alpha/rank * up @ down, in f32, stored in W's dtype. SCALE defaults to 1; repeat the\n"
       "option for several adapters. Needs a weights file (not random:SEED). The files' digests\n"
       "and scales go into the provenance, the run record and the resume digest")
      ("lora-unmatched", po::value<std::string>()->default_value("error"),
       "a LoRA key that matches no tensor of the model (a text encoder's, another model's):\n"
       "error (refuse the run, naming every such key) or warn (name them, merge the others)");
}

LoraOptions lora_options(const po::variables_map& vm) {
  LoraOptions o;
  const std::string unmatched = vm["lora-unmatched"].as<std::string>();
  require_input(unmatched == "error" || unmatched == "warn",
                "option --lora-unmatched must be error or warn (got '" + unmatched + "')");
  o.allow_unmatched = unmatched == "warn";
  if (!vm.count("lora")) return o;
  for (const std::string& text : vm["lora"].as<std::vector<std::string>>()) {
    LoraRequest r = parse_lora_request(text);
    std::error_code ec;
    require_input(std::filesystem::is_regular_file(r.path, ec),
                  "option --lora " + text + ": " + r.path + " is not a file");
    o.files.push_back(std::move(r));
  }
  return o;
}

}  // namespace fresco::cli
