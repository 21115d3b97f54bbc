// libFuzzer target: the INI config file (`--config`) through Fresco's option parser, with
// options of every value type the commands use. Any input must end in a configuration or a
// fresco::Error (InputError naming the problem), never a crash.
#include <cstdint>

#include "fuzz/fuzz_input.hpp"
#include "src/cli/options.hpp"
#include "src/core/error.hpp"

using namespace fresco::cli;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Command cmd = [] {
    Command c;
    c.name = "fuzz";
    c.add_options = [](po::options_description& o, po::positional_options_description&) {
      o.add_options()
          ("out", po::value<std::string>()->default_value(""), "")
          ("seed", po::value<int64_t>()->default_value(0), "")
          ("embed-seed", po::value<uint64_t>()->default_value(0), "")
          ("guidance", po::value<double>()->default_value(-1.0), "")
          ("no-decode", po::bool_switch(), "");
      add_model_options(o);
      add_engine_options(o);
      add_parallel_options(o);
    };
    return c;
  }();
  const std::string path = fresco::fuzz::input_file(data, size, ".ini");
  try {
    po::variables_map vm;
    std::string help;
    if (parse_options(cmd, {"--weights", "w.h5", "--config", path}, vm, help)) {
      (void)effective_configuration(vm);
      (void)engine_choice(vm);
      (void)parallel_choice(vm);
    }
  } catch (const fresco::Error&) {
  }
  return 0;
}
