// What a file says about its tensors, before any data is read: the stored shape and element
// type of each, keyed by checkpoint name. The weights file and the safetensors reader produce
// it; src/model/ checks it against a preset's weight table.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "src/core/tensor.hpp"

namespace fresco {

// One stored tensor; dtype is empty when the stored type is not f32/f16/bf16.
struct StoredTensorInfo {
  Shape shape;
  std::optional<DType> dtype;
  std::string stored_type;  // human-readable stored type, for messages
};

using TensorTable = std::map<std::string, StoredTensorInfo>;

}  // namespace fresco
