#include "src/model/model_inputs.hpp"

#include <cmath>

#include "src/core/digest.hpp"
#include "src/core/error.hpp"
#include "src/model/noise.hpp"

namespace fresco {

void validate_prompts(const PromptsFile& prompts, const FluxConfig& config) {
  const std::string& path = prompts.path();
  for (int64_t i = 0; i < prompts.size(); ++i) {
    const std::string group = "/prompts/" + std::to_string(i);
    const Shape& txt_shape = prompts.txt_shape(i);
    require_input(txt_shape.size() == 2 && txt_shape[1] == config.context_in_dim && txt_shape[0] > 0,
                  path + ":" + group + "/txt has shape " + shape_string(txt_shape) + ", but " +
                      config.name + " expects text embeddings [Ltxt, " +
                      std::to_string(config.context_in_dim) + "]");
    const Shape y_shape = prompts.y_shape(i);  // [0] when the file has none
    require_input(config.vec_in_dim == 0 || y_shape != Shape{0},
                  path + ":" + group + "/y is missing: " + config.name + " expects a pooled vector [" +
                      std::to_string(config.vec_in_dim) + "]");
    require_input(y_shape == Shape{config.vec_in_dim},
                  path + ":" + group + "/y has shape " + shape_string(y_shape) + ", but " +
                      config.name + (config.vec_in_dim == 0 ? " takes no pooled vector (leave /y out)"
                                                            : " expects a pooled vector [" +
                                                                  std::to_string(config.vec_in_dim) + "]"));
  }
}

ForwardInputs read_forward_inputs(const std::string& path, const FluxConfig& config) {
  ForwardInputs in = read_forward_file(path);
  // The messages of h5::File::read_f32 with an expected shape, and of the model's widths.
  auto expect = [&](const char* name, const Tensor& t, const Shape& shape) {
    require_input(t.shape() == shape, path + ":" + name + " has shape " + shape_string(t.shape()) +
                                          ", expected " + shape_string(shape));
  };
  expect("/img", in.img, Shape{in.grid_h * in.grid_w, config.in_channels});
  const Shape& txt_shape = in.txt.shape();
  require_input(txt_shape.size() == 2 && txt_shape[1] == config.context_in_dim,
                path + ":/txt has shape " + shape_string(txt_shape) + ", " + config.name +
                    " expects [Ltxt, " + std::to_string(config.context_in_dim) + "]");
  // read_forward_file reads an absent /y as [0]: what a model without a pooled vector expects.
  require_input(config.vec_in_dim == 0 || in.y.shape() != Shape{0}, path + " has no dataset /y");
  expect("/y", in.y, Shape{config.vec_in_dim});
  require_input(std::isfinite(in.t) && in.t >= 0.0 && in.t <= 1.0,
                path + ": attribute t must be a timestep in [0, 1] (got " + std::to_string(in.t) + ")");
  require_input(std::isfinite(in.guidance), path + ": attribute guidance is not a finite number");
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"/img", &in.img}, {"/txt", &in.txt}, {"/y", &in.y}})
    if (const int64_t bad = count_nonfinite_host(*t))
      throw InputError(path + ":" + name + " has " + std::to_string(bad) + " non-finite value(s) (NaN or Inf)");
  return in;
}

void write_random_prompts(const std::string& path, const FluxConfig& config,
                          const PromptBatchSpec& spec) {
  require_input(spec.count > 0 && spec.txt_len > 0, "make-prompts: --count and --txt-len must be positive");
  PromptSettings batch;
  batch.seed = int64_t(spec.seed);
  batch.width = spec.width;
  batch.height = spec.height;
  if (spec.steps > 0) batch.steps = spec.steps;
  batch.guidance = spec.guidance;
  write_prompts_file(path, config.name, batch, spec.count, [&](int64_t i) {
    PromptEntry e;
    e.txt = Tensor({spec.txt_len, config.context_in_dim});
    e.y = Tensor({config.vec_in_dim});
    // Substreams 2i and 2i+1 keep the embeddings of every prompt distinct.
    fill_normal(e.txt, spec.seed, RandomStream::prompts, uint32_t(2 * i));
    fill_normal(e.y, spec.seed, RandomStream::prompts, uint32_t(2 * i + 1));
    e.settings.seed = int64_t(spec.seed) + i;
    return e;
  });
}

}  // namespace fresco
