#include "src/core/error.hpp"

#include <filesystem>

namespace fresco {

std::string source_location(const char* file, int line) {
  return std::filesystem::path(file).filename().string() + ":" + std::to_string(line);
}

}  // namespace fresco
