// The INI file of --config: `name = value` lines with the command-line option names (no
// dashes), `#` comments, and a section per command:
//
//   threads = 8            # before any section: every command that has the option
//   [generate]
//   steps = 28             # generate only (a section's value beats the shared one)
//   [bench]
//   steps = 10
//
// A shared option that the running command does not have is skipped when another command has
// it; a name that no command has, a section that is no command's name, a name the section's
// command does not have, a line that is neither `name = value` nor `[command]`, and an option
// given twice in one scope are errors (InputError) naming the file and the line. The values
// go through the command's own option parsers; the command line wins over the file.
#pragma once

#include <string>
#include <vector>

#include "src/cli/options.hpp"

namespace fresco::cli {

// The --config option's help line.
inline constexpr const char* kConfigOptionHelp =
    "INI file with the option names (name = value); options before any section apply to every\n"
    "command that has them, those under [COMMAND] (e.g. [generate], [bench]) to that command\n"
    "only; the command line wins";

// The commands whose names a config file's sections may be, and one of which a shared option
// must belong to: main sets every command. Where none is set (a program of one command, as
// fuzz/fuzz_config), the running command is the only one.
void set_config_commands(std::vector<Command> commands);

// Stores into `vm` the options of `path` that apply to `cmd` (whose own options are
// `options`). Options already in `vm` (the command line's) keep their values.
void store_config_file(const std::string& path, const Command& cmd,
                       const po::options_description& options, po::variables_map& vm);

}  // namespace fresco::cli
