#include "io/prompt_list.hpp"

#include <fstream>
#include <nlohmann/json.hpp>

#include "src/core/error.hpp"

namespace fresco {
namespace {

bool blank(const std::string& line) { return line.find_first_not_of(" \t\r\n\f\v") == std::string::npos; }

// The prompt and settings of one JSONL line.
TextPrompt parse_json_line(const std::string& line, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(where + ": not JSON (" + e.what() + ")");
  }
  require_input(j.is_object(), where + ": expected a JSON object such as {\"prompt\": \"a red fox\"}");
  require_input(j.contains("prompt") && j["prompt"].is_string(), where + ": no \"prompt\" string");
  TextPrompt p;
  p.text = j["prompt"].get<std::string>();
  for (const auto& [key, value] : j.items()) {
    if (key == "prompt") continue;
    if (key == "guidance") {
      require_input(value.is_number(), where + ": \"guidance\" must be a number");
      p.settings.guidance = value.get<double>();
      continue;
    }
    std::optional<int64_t>* field = key == "seed"     ? &p.settings.seed
                                    : key == "width"  ? &p.settings.width
                                    : key == "height" ? &p.settings.height
                                    : key == "steps"  ? &p.settings.steps
                                                      : nullptr;
    require_input(field != nullptr, where + ": unknown key \"" + key +
                                        "\" (known: prompt, seed, width, height, steps, guidance)");
    require_input(value.is_number_integer(), where + ": \"" + key + "\" must be an integer");
    *field = value.get<int64_t>();
  }
  return p;
}

}  // namespace

std::vector<TextPrompt> read_prompt_list(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot open the prompt list " + path);
  const bool jsonl = path.size() >= 6 && path.substr(path.size() - 6) == ".jsonl";
  std::vector<TextPrompt> prompts;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (blank(line)) continue;
    TextPrompt p = jsonl ? parse_json_line(line, path + ":" + std::to_string(number)) : TextPrompt{line, {}, 0};
    p.line = number;
    p.settings.text = p.text;
    prompts.push_back(std::move(p));
  }
  require_input(!prompts.empty(), path + " holds no prompt (one a line" +
                                      std::string(jsonl ? ", as JSON objects with a \"prompt\")" : ")"));
  return prompts;
}

}  // namespace fresco
