#include "io/prompts_file.hpp"

#include <algorithm>

#include "io/h5_file.hpp"

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
  if (file.has_attr("text", object)) s.text = file.read_string_attr("text", object);
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
  if (own.text) s.text = own.text;
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
  // Only numbered groups belong under /prompts: anything else is named, not taken for a gap.
  for (const std::string& child : children) {
    const bool numbered = !child.empty() && child.size() < 19 &&
                          std::all_of(child.begin(), child.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
                          (child == "0" || child[0] != '0');
    require_input(numbered, path + ": /prompts/" + child +
                                " is not a prompt (only the groups 0, 1, ..., N-1 may sit under /prompts)");
    H5O_info_t info;
    const std::string object = "/prompts/" + child;
#if H5_VERSION_GE(1, 12, 0)
    const herr_t got = H5Oget_info_by_name3(file.id(), object.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT);
#else
    const herr_t got = H5Oget_info_by_name(file.id(), object.c_str(), &info, H5P_DEFAULT);
#endif
    require_input(got >= 0 && info.type == H5O_TYPE_GROUP,
                  path + ": " + object + " is not a group (each prompt is a group with txt and y)");
  }
  count_ = int64_t(children.size());
  require_input(count_ > 0, path + ": /prompts is empty");
  for (int64_t i = 0; i < count_; ++i) {
    const std::string group = "/prompts/" + std::to_string(i);
    require_input(file.exists(group), path + ": prompts must be numbered 0.." + std::to_string(count_ - 1) +
                                          " but " + group + " is missing");
    // Element types are checked here, on every rank at set-up, not when the image is computed.
    for (const char* name : {"/txt", "/y"}) {
      if (std::string(name) == "/y" && !file.exists(group + name)) continue;  // no pooled vector (Qwen-Image)
      const h5::TypeId type = file.dataset_type(group + name);
      require_input(H5Tget_class(type.get()) == H5T_FLOAT,
                    path + ":" + group + name + " is stored as " + h5::type_description(type.get()) +
                        ", expected floating point");
    }
    txt_shapes_.push_back(file.dataset_shape(group + "/txt"));
  }
}

Shape PromptsFile::y_shape(int64_t index) const {
  const h5::File file = h5::File::open(path_);
  const std::string y = "/prompts/" + std::to_string(index) + "/y";
  return file.exists(y) ? file.dataset_shape(y) : Shape{0};
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
  const std::string y = group + "/y";
  PromptEntry e{file.read_f32(group + "/txt"), file.exists(y) ? file.read_f32(y) : Tensor(Shape{0}), settings(index)};
  if (file.exists(group + "/negative_txt")) e.negative_txt = file.read_f32(group + "/negative_txt");
  if (file.exists(group + "/negative_y")) e.negative_y = file.read_f32(group + "/negative_y");
  if (file.exists(group + "/size_cond")) e.size_cond = file.read_f32(group + "/size_cond");
  return e;
}

namespace {
// The attributes of `s` that are set, on `object`.
void write_settings(h5::File& file, const PromptSettings& s, const std::string& object) {
  if (s.seed) file.write_attr("seed", *s.seed, object);
  if (s.width) file.write_attr("width", *s.width, object);
  if (s.height) file.write_attr("height", *s.height, object);
  if (s.steps) file.write_attr("steps", *s.steps, object);
  if (s.guidance) file.write_attr("guidance", *s.guidance, object);
  if (s.text) file.write_attr("text", *s.text, object);
}
}  // namespace

void write_prompts_file(const std::string& path, const std::string& model,
                        const PromptSettings& batch, int64_t count,
                        const std::function<PromptEntry(int64_t)>& make) {
  h5::write_atomically(path, [&](h5::File& file) {
    file.write_attr("format", std::string(kPromptsFormat));
    file.write_attr("format_version", kPromptsFormatVersion);
    file.write_attr("model", model);
    write_settings(file, batch, "/");
    for (int64_t i = 0; i < count; ++i) {
      const std::string group = "/prompts/" + std::to_string(i);
      const PromptEntry entry = make(i);
      file.write(group + "/txt", entry.txt);
      if (entry.y.numel() > 0) file.write(group + "/y", entry.y);  // none without a pooled vector
      write_settings(file, entry.settings, group);
    }
  });
}

}  // namespace fresco
