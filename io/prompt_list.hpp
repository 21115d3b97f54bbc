// A list of text prompts, as `fresco encode` reads it (docs/text-encoders.md, "fresco encode"):
//  - a text file: one prompt a line; lines of white space only are skipped; a trailing CR is
//    dropped (files from Windows);
//  - a JSONL file (the name ends in .jsonl): one JSON object a line, {"prompt": TEXT} with the
//    optional integer seed, width, height, steps and the number guidance, the image's settings
//    (as the attributes of a prompt batch); blank lines are skipped, any other key is refused.
#pragma once

#include <string>
#include <vector>

#include "io/prompts_file.hpp"

namespace fresco {

struct TextPrompt {
  std::string text;         // UTF-8 (checked by the tokenizers)
  PromptSettings settings;  // JSONL's settings; settings.text is the text
  int64_t line = 0;         // 1-based line of the file, for messages
};

// InputError naming the file and line for what is malformed, and for a file with no prompt.
std::vector<TextPrompt> read_prompt_list(const std::string& path);

}  // namespace fresco
