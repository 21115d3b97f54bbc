// The subcommands of `fresco`, one factory per command (each in its cmd_*.cpp).
#pragma once

#include <vector>

#include "src/cli/options.hpp"

namespace fresco::cli {

Command forward_command();
Command generate_command();
Command init_weights_command();
Command convert_command();
Command make_prompts_command();
Command encode_command();
Command info_command();
Command compare_command();
Command decode_command();
Command bench_command();
Command bench_decode_command();
Command sweep_command();

inline std::vector<Command> all_commands() {
  return {generate_command(), decode_command(),       forward_command(), compare_command(),
          init_weights_command(), convert_command(), make_prompts_command(), encode_command(), info_command(),
          sweep_command(), bench_command(), bench_decode_command()};
}

}  // namespace fresco::cli
