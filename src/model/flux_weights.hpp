// The weight table of a FLUX preset (every checkpoint key with its shape) and validation of
// what a file holds against it, reporting every problem at once.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/tensor_table.hpp"  // StoredTensorInfo: what a file says about one tensor
#include "src/core/tensor.hpp"
#include "src/model/flux_config.hpp"

namespace fresco {

struct WeightSpec {
  std::string name;  // checkpoint key, e.g. "double_blocks.0.img_attn.qkv.weight"
  Shape shape;       // PyTorch layout: Linear weight [out, in], bias [out]
  // The stored dtype required (an FP8 file's e4m3 weights and f32 scales); nothing: any of f32,
  // bf16 or f16.
  std::optional<DType> dtype = std::nullopt;
};

// Every tensor of the preset, in checkpoint order.
std::vector<WeightSpec> flux_weight_specs(const FluxConfig& config);
int64_t flux_parameter_count(const FluxConfig& config);
// The weights of the token linears (every block's qkv, proj, MLP, linear1, linear2; no biases):
// what --dtype fp8 keeps a second time in e4m3, (2 depth + depth_single) (4 d^2 + 2 m d).
int64_t flux_token_linear_weight_count(const FluxConfig& config);
// Those linears' checkpoint names, without ".weight" ("double_blocks.0.img_attn.qkv", ...), in
// block order.
std::vector<std::string> flux_token_linear_names(const FluxConfig& config);

// One difference of a file's tensors from a preset's table.
struct WeightProblem {
  enum class Kind { missing, unexpected, shape, dtype };
  Kind kind;
  std::string text;  // "missing tensor img_in.weight [64, 64]", ...
};

// Problems of a file's tensors against a preset's table (missing, unexpected, wrong shape or
// dtype), in table order; empty when the file is valid.
std::vector<WeightProblem> validate_weight_table(const std::string& preset,
                                                 const std::vector<WeightSpec>& specs,
                                                 const std::map<std::string, StoredTensorInfo>& found);

// One message for the problems of `source` against `preset`: "<source> does not match preset
// <preset> (N problems...)", then `note` (when given) on the same line, then every problem on
// a line of its own; beyond a dozen, the count of each kind with its first few (a checkpoint
// of another size differs in hundreds of tensors).
std::string describe_weight_problems(const std::string& source, const std::string& preset,
                                     const std::vector<WeightProblem>& problems,
                                     const std::string& note = "");

// The weights of one model, keyed by checkpoint name, on one backend's device, each in its
// stored dtype (or the one load_weights was asked for).
class ModelWeights {
 public:
  void set(const std::string& name, Tensor t) { tensors_[name] = std::move(t); }
  const Tensor& get(const std::string& name) const;
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // A digest of the stored tensors (names, dtypes, shapes, bytes), set by load_weights: what
  // resume records to recognise results of other weights. Empty for weights made otherwise.
  const std::string& identity() const { return identity_; }
  void set_identity(std::string id) { identity_ = std::move(id); }

 private:
  std::map<std::string, Tensor> tensors_;
  std::string identity_;
};

}  // namespace fresco
