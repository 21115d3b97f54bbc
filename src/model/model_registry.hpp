// Every preset Fresco knows (transformer, autoencoder, text encoders), with its weight table: what the
// weights file reader, `init-weights` and `convert` work from.
#pragma once

#include <string>
#include <vector>

#include "src/model/flux_weights.hpp"

namespace fresco {

std::vector<std::string> all_preset_names();
// The weight table of a preset; InputError listing the known names for an unknown one.
std::vector<WeightSpec> preset_weight_specs(const std::string& name);

}  // namespace fresco
