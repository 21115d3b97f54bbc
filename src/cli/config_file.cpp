#include "src/cli/config_file.hpp"

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <vector>

#include "src/core/error.hpp"

namespace fresco::cli {
namespace {

struct IniLine {
  std::string section;  // "" before the first section header
  std::string name, value;
  int line = 0;
  int section_line = 0;  // the line of the section's header
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::string where(const std::string& path, int line) {
  return "config file " + path + " line " + std::to_string(line);
}

// Every `name = value` line of the file with its section; `#` starts a comment anywhere on a
// line (as in Boost's INI reader).
std::vector<IniLine> read_ini(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw InputError("config file " + path + " is a directory, not an INI file");
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
    throw InputError("config file " + path + " is not a regular file (a FIFO or device?)");
  std::ifstream file(path);
  if (!file) throw InputError("cannot read config file " + path);
  std::vector<IniLine> lines;
  std::string section, text;
  int section_line = 0;
  for (int n = 1; std::getline(file, text); ++n) {
    if (n == 1 && text.starts_with("\xEF\xBB\xBF")) text.erase(0, 3);  // a UTF-8 byte order mark
    const std::string s = trim(text.substr(0, text.find('#')));
    if (s.empty()) continue;
    if (s.front() == '[' && s.back() == ']') {
      section = trim(s.substr(1, s.size() - 2));
      section_line = n;
      continue;
    }
    const auto eq = s.find('=');
    if (eq == std::string::npos || trim(s.substr(0, eq)).empty())
      throw InputError(where(path, n) + ": expected 'name = value' or '[command]' (got '" + s + "')");
    lines.push_back({section, trim(s.substr(0, eq)), trim(s.substr(eq + 1)), n, section_line});
  }
  if (file.bad()) throw IoError("cannot read config file " + path);
  return lines;
}

std::vector<Command>& config_commands() {
  static std::vector<Command> commands;
  return commands;
}

}  // namespace

void set_config_commands(std::vector<Command> commands) { config_commands() = std::move(commands); }

void store_config_file(const std::string& path, const Command& cmd,
                       const po::options_description& options, po::variables_map& vm) {
  const std::vector<IniLine> lines = read_ini(path);

  // Every command's options: a section names a command, and a shared option must belong to one.
  std::vector<std::unique_ptr<po::options_description>> tables;
  std::map<std::string, const po::options_description*> known{{cmd.name, &options}};
  for (const Command& c : config_commands()) {
    if (c.name == cmd.name) continue;
    tables.push_back(std::make_unique<po::options_description>());
    po::positional_options_description unused;
    c.add_options(*tables.back(), unused);
    known[c.name] = tables.back().get();
  }
  std::string command_names;
  for (const auto& [name, o] : known) command_names += (command_names.empty() ? "" : ", ") + name;
  const auto has = [](const po::options_description& o, const std::string& name) {
    return o.find_nothrow(name, /*approx=*/false) != nullptr;
  };

  // What applies to this command, by option: the lines of its section, else the shared ones.
  std::map<std::string, std::vector<const IniLine*>> section_lines, shared_lines;
  for (const IniLine& l : lines) {
    if (l.section.empty()) {
      if (has(options, l.name)) {
        shared_lines[l.name].push_back(&l);
        continue;
      }
      bool elsewhere = false;
      for (const auto& [name, o] : known) elsewhere |= has(*o, l.name);
      if (!elsewhere)
        throw InputError(where(path, l.line) + ": unrecognised option '" + l.name +
                         "' (no command has it; see fresco " + cmd.name + " --help)");
      continue;
    }
    const auto it = known.find(l.section);
    if (it == known.end())
      throw InputError(where(path, l.section_line) + ": unknown section [" + l.section +
                       "] (sections are command names: " + command_names + ")");
    if (!has(*it->second, l.name))
      throw InputError(where(path, l.line) + ": unrecognised option '" + l.name + "' in [" + l.section +
                       "] (see fresco " + l.section + " --help)");
    if (l.section == cmd.name) section_lines[l.name].push_back(&l);
  }
  for (const auto& [name, own] : section_lines) shared_lines.erase(name);

  for (const auto* scope : {&shared_lines, &section_lines})
    for (const auto& [name, given] : *scope) {
      const po::option_description& d = options.find(name, false);
      if (given.size() > 1 && !d.semantic()->is_composing())
        throw InputError(where(path, given[1]->line) + ": option '" + name + "' given twice (also on line " +
                         std::to_string(given[0]->line) + ")");
      po::parsed_options parsed(&options);
      bool percent = false;  // see below
      for (const IniLine* l : given) {
        po::option o;
        o.string_key = name;
        o.value = {l->value};
        o.original_tokens = {name, l->value};
        parsed.options.push_back(o);
        percent |= l->value.find('%') != std::string::npos;
      }
      try {
        po::store(parsed, vm);
      } catch (const po::error& e) {
        // Boost builds its message by substituting "%value%" and friends until none is left,
        // which never ends when the value holds one (fuzz/fuzz_config): such a value gets a
        // message of our own.
        const std::string why = percent ? "invalid value '" + given.back()->value + "' for option '" + name + "'"
                                        : std::string(e.what());
        throw InputError(where(path, given.back()->line) + ": " + why + " (see fresco " + cmd.name + " --help)");
      }
    }
}

}  // namespace fresco::cli
