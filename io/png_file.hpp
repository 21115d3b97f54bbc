// 8-bit RGB PNG files through libpng, with text chunks for provenance (seed, steps, model,
// method...). Written atomically like every output.
#pragma once

#include <map>
#include <string>

#include "src/core/tensor.hpp"

namespace fresco {

// image: f32 [3, H, W] with values in [0, 1] (rounded to 8 bits); text: tEXt chunks.
void write_png(const std::string& path, const Tensor& image,
               const std::map<std::string, std::string>& text);

struct PngImage {
  Tensor image;  // f32 [3, H, W], value / 255
  std::map<std::string, std::string> text;
};
// Reads an 8-bit RGB PNG (tests and tools); IoError naming the file otherwise.
PngImage read_png(const std::string& path);

}  // namespace fresco
