#include "io/prompts_file.hpp"

#include <algorithm>

#include "io/h5_file.hpp"
#include "src/model/noise.hpp"

namespace fresco {
namespace {

PromptSettings read_settings(const h5::File& file, const std::string& object) {
  PromptSettings s;
  auto get_int = [&](const char* name, std::optional<int64_t>& out) {
    if (file.has_attr(name, object)) out = file.read_int_attr(name, object);
  };
  get_int("seed", s.seed);
  get_int("width", s.width);
  get_int("height", s.height);
  get_int("steps", s.steps);
  if (file.has_attr("guidance", object)) s.guidance = file.read_double_attr("guidance", object);
  return s;
}

// Per-prompt settings override the batch's.
PromptSettings merge(const PromptSettings& batch, const PromptSettings& own) {
  PromptSettings s = batch;
  if (own.seed) s.seed = own.seed;
  if (own.width) s.width = own.width;
  if (own.height) s.height = own.height;
  if (own.steps) s.steps = own.steps;
  if (own.guidance) s.guidance = own.guidance;
  return s;
}

}  // namespace

PromptsFile::PromptsFile(const std::string& path) : path_(path) {
  const h5::File file = h5::File::open(path);
  if (!file.has_attr("format") || file.read_string_attr("format") != kPromptsFormat)
    throw InputError(path + " is not a Fresco prompt batch (root attribute format is not '" +
                     std::string(kPromptsFormat) + "')");
  const int64_t version = file.read_int_attr("format_version");
  if (version != kPromptsFormatVersion)
    throw InputError(path + " has prompt format version " + std::to_string(version) +
                     "; this Fresco reads version " + std::to_string(kPromptsFormatVersion));
  if (!file.exists("/prompts")) throw InputError(path + " has no /prompts group");
  const auto children = file.list_children("/prompts");
  count_ = int64_t(children.size());
  require_input(count_ > 0, path + ": /prompts is empty");
  for (int64_t i = 0; i < count_; ++i) {
    require_input(file.exists("/prompts/" + std::to_string(i)),
                  path + ": prompts must be numbered 0.." + std::to_string(count_ - 1) +
                      " but /prompts/" + std::to_string(i) + " is missing");
    txt_shapes_.push_back(file.dataset_shape("/prompts/" + std::to_string(i) + "/txt"));
  }
}

void PromptsFile::validate(const FluxConfig& config) const {
  const h5::File file = h5::File::open(path_);
  for (int64_t i = 0; i < count_; ++i) {
    const std::string group = "/prompts/" + std::to_string(i);
    const Shape& txt_shape = txt_shapes_[size_t(i)];
    require_input(txt_shape.size() == 2 && txt_shape[1] == config.context_in_dim && txt_shape[0] > 0,
                  path_ + ":" + group + "/txt has shape " + shape_string(txt_shape) + ", but " +
                      config.name + " expects text embeddings [Ltxt, " +
                      std::to_string(config.context_in_dim) + "]");
    const Shape y_shape = file.dataset_shape(group + "/y");
    require_input(y_shape == Shape{config.vec_in_dim},
                  path_ + ":" + group + "/y has shape " + shape_string(y_shape) + ", but " +
                      config.name + " expects a pooled vector [" +
                      std::to_string(config.vec_in_dim) + "]");
  }
}

int64_t PromptsFile::txt_len(int64_t index) const { return txt_shapes_.at(size_t(index)).at(0); }

PromptSettings PromptsFile::settings(int64_t index) const {
  const h5::File file = h5::File::open(path_);
  PromptSettings batch = read_settings(file, "/");
  if (batch.seed) *batch.seed += index;  // a batch seed gives image i the seed + i
  return merge(batch, read_settings(file, "/prompts/" + std::to_string(index)));
}

PromptEntry PromptsFile::read(int64_t index) const {
  const h5::File file = h5::File::open(path_);
  const std::string group = "/prompts/" + std::to_string(index);
  return {file.read_f32(group + "/txt"), file.read_f32(group + "/y"), settings(index)};
}

void write_random_prompts(const std::string& path, const FluxConfig& config,
                          const PromptBatchSpec& spec) {
  require_input(spec.count > 0 && spec.txt_len > 0, "make-prompts: --count and --txt-len must be positive");
  h5::write_atomically(path, [&](h5::File& file) {
    file.write_attr("format", std::string(kPromptsFormat));
    file.write_attr("format_version", kPromptsFormatVersion);
    file.write_attr("model", config.name);
    file.write_attr("seed", int64_t(spec.seed));
    file.write_attr("width", spec.width);
    file.write_attr("height", spec.height);
    if (spec.steps > 0) file.write_attr("steps", spec.steps);
    file.write_attr("guidance", spec.guidance);
    for (int64_t i = 0; i < spec.count; ++i) {
      const std::string group = "/prompts/" + std::to_string(i);
      Tensor txt({spec.txt_len, config.context_in_dim});
      Tensor y({config.vec_in_dim});
      // Substreams 2i and 2i+1 keep the embeddings of every prompt distinct.
      fill_normal(txt, spec.seed, RandomStream::prompts, uint32_t(2 * i));
      fill_normal(y, spec.seed, RandomStream::prompts, uint32_t(2 * i + 1));
      file.write(group + "/txt", txt);
      file.write(group + "/y", y);
      file.write_attr("seed", int64_t(spec.seed) + i, group);
    }
  });
}

}  // namespace fresco
