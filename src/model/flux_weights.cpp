#include "src/model/flux_weights.hpp"

#include "src/core/error.hpp"

namespace fresco {
namespace {

void add_linear(std::vector<WeightSpec>& specs, const std::string& prefix, int64_t out,
                int64_t in) {
  specs.push_back({prefix + ".weight", {out, in}});
  specs.push_back({prefix + ".bias", {out}});
}

void add_mlp_embedder(std::vector<WeightSpec>& specs, const std::string& prefix, int64_t in,
                      int64_t d) {
  add_linear(specs, prefix + ".in_layer", d, in);
  add_linear(specs, prefix + ".out_layer", d, d);
}

void add_qk_norm(std::vector<WeightSpec>& specs, const std::string& prefix, int64_t D) {
  specs.push_back({prefix + ".norm.query_norm.scale", {D}});
  specs.push_back({prefix + ".norm.key_norm.scale", {D}});
}

}  // namespace

std::vector<WeightSpec> flux_weight_specs(const FluxConfig& c) {
  const int64_t d = c.hidden, D = c.head_dim(), m = c.mlp_hidden();
  std::vector<WeightSpec> s;
  add_linear(s, "img_in", d, c.in_channels);
  add_mlp_embedder(s, "time_in", 256, d);
  add_mlp_embedder(s, "vector_in", c.vec_in_dim, d);
  if (c.guidance_embed) add_mlp_embedder(s, "guidance_in", 256, d);
  add_linear(s, "txt_in", d, c.context_in_dim);
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = "double_blocks." + std::to_string(i) + ".";
    for (const char* stream : {"img", "txt"}) {
      const std::string p = b + stream;
      add_linear(s, p + "_mod.lin", 6 * d, d);
      add_linear(s, p + "_attn.qkv", 3 * d, d);
      add_qk_norm(s, p + "_attn", D);
      add_linear(s, p + "_attn.proj", d, d);
      add_linear(s, p + "_mlp.0", m, d);
      add_linear(s, p + "_mlp.2", d, m);
    }
  }
  for (int i = 0; i < c.depth_single; ++i) {
    const std::string p = "single_blocks." + std::to_string(i);
    add_linear(s, p + ".linear1", 3 * d + m, d);
    add_linear(s, p + ".linear2", d, d + m);
    add_qk_norm(s, p, D);
    add_linear(s, p + ".modulation.lin", 3 * d, d);
  }
  add_linear(s, "final_layer.linear", c.in_channels, d);
  add_linear(s, "final_layer.adaLN_modulation.1", 2 * d, d);
  return s;
}

int64_t flux_token_linear_weight_count(const FluxConfig& config) {
  const int64_t d = config.hidden, m = config.mlp_hidden();
  return int64_t(2 * config.depth + config.depth_single) * (4 * d * d + 2 * m * d);
}

std::vector<std::string> flux_token_linear_names(const FluxConfig& config) {
  std::vector<std::string> names;
  for (int i = 0; i < config.depth; ++i)
    for (const char* stream : {"img", "txt"})
      for (const char* part : {"_attn.qkv", "_attn.proj", "_mlp.0", "_mlp.2"})
        names.push_back("double_blocks." + std::to_string(i) + "." + stream + part);
  for (int i = 0; i < config.depth_single; ++i)
    for (const char* part : {".linear1", ".linear2"}) names.push_back("single_blocks." + std::to_string(i) + part);
  return names;
}

int64_t flux_parameter_count(const FluxConfig& config) {
  int64_t n = 0;
  for (const auto& spec : flux_weight_specs(config)) n += shape_numel(spec.shape);
  return n;
}

std::vector<WeightProblem> validate_weight_table(const std::string& preset,
                                                 const std::vector<WeightSpec>& specs,
                                                 const std::map<std::string, StoredTensorInfo>& found) {
  using Kind = WeightProblem::Kind;
  std::vector<WeightProblem> problems;
  std::map<std::string, bool> expected;
  for (const auto& spec : specs) {
    expected[spec.name] = true;
    const auto it = found.find(spec.name);
    if (it == found.end()) {
      problems.push_back({Kind::missing, "missing tensor " + spec.name + " " + shape_string(spec.shape)});
      continue;
    }
    if (it->second.shape != spec.shape)
      problems.push_back({Kind::shape, "tensor " + spec.name + " has shape " + shape_string(it->second.shape) +
                                           ", " + preset + " expects " + shape_string(spec.shape)});
    const std::optional<DType>& stored = it->second.dtype;
    if (spec.dtype && stored != spec.dtype)
      problems.push_back({Kind::dtype, "tensor " + spec.name + " is stored as " + it->second.stored_type +
                                           " (expected " + dtype_name(*spec.dtype) + ")"});
    if (!spec.dtype && (!stored || *stored == DType::e4m3 || *stored == DType::f64 || *stored == DType::i64))
      problems.push_back({Kind::dtype, "tensor " + spec.name + " is stored as " + it->second.stored_type +
                                           " (expected float32, float16 or bfloat16)"});
  }
  for (const auto& [name, info] : found)
    if (!expected.count(name))
      problems.push_back({Kind::unexpected, "unexpected tensor " + name + " (not part of " + preset + ")"});
  return problems;
}

std::string describe_weight_problems(const std::string& source, const std::string& preset,
                                     const std::vector<WeightProblem>& problems, const std::string& note) {
  using Kind = WeightProblem::Kind;
  constexpr size_t kListAll = 12, kExamples = 3;
  const std::pair<Kind, const char*> kinds[] = {{Kind::missing, "missing"},
                                                {Kind::unexpected, "unexpected"},
                                                {Kind::shape, "with another shape"},
                                                {Kind::dtype, "of an unsupported type"}};
  std::string counts, details;
  for (const auto& [kind, what] : kinds) {
    std::vector<const std::string*> of_kind;
    for (const auto& p : problems)
      if (p.kind == kind) of_kind.push_back(&p.text);
    if (of_kind.empty()) continue;
    counts += (counts.empty() ? ": " : ", ") + std::to_string(of_kind.size()) + " " + what;
    if (problems.size() <= kListAll) continue;
    details += "\n  " + std::to_string(of_kind.size()) + " tensor(s) " + what +
               (of_kind.size() > kExamples ? ", the first " + std::to_string(kExamples) : "") + ":";
    for (size_t i = 0; i < of_kind.size() && i < kExamples; ++i) details += "\n    - " + *of_kind[i];
  }
  if (problems.size() <= kListAll)
    for (const auto& p : problems) details += "\n  - " + p.text;
  return source + " does not match preset " + preset + " (" + std::to_string(problems.size()) + " problem" +
         (problems.size() > 1 ? "s" : "") + counts + ")" + (note.empty() ? "" : "; " + note) + ":" + details;
}

const Tensor& ModelWeights::get(const std::string& name) const {
  const auto it = tensors_.find(name);
  FRESCO_ASSERT(it != tensors_.end(), "weight " + name + " was not loaded");
  return it->second;
}

}  // namespace fresco
