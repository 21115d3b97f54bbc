#include "io/image_file.hpp"

#include "fresco/version.hpp"
#include "io/h5_file.hpp"

namespace fresco {

std::string image_result_path(const std::string& dir, int64_t index) {
  return dir + "/img_" + std::to_string(index) + ".h5";
}

std::string image_png_path(const std::string& dir, int64_t index) {
  return dir + "/img_" + std::to_string(index) + ".png";
}

std::map<std::string, std::string> png_text(const ImageProvenance& p) {
  std::map<std::string, std::string> t = {
      {"Software", std::string("Fresco ") + kVersion}, {"seed", std::to_string(p.seed)},
      {"steps", std::to_string(p.steps)},              {"model", p.model},
      {"guidance", std::to_string(p.guidance)},        {"method", p.parallel},
      {"prompt_index", std::to_string(p.prompt_index)}};
  if (!p.vae.empty()) t["vae"] = p.vae;
  if (!p.prompt_text.empty()) t["prompt"] = p.prompt_text;
  if (!p.lora.empty()) t["lora"] = p.lora;
  if (!p.sampler.empty()) t["sampler"] = p.sampler;
  if (!p.cache.empty()) {
    t["cache"] = p.cache;
    t["cache_computed"] = p.cache_computed;
  }
  if (p.parallel == "patch") {
    t["patches"] = std::to_string(p.patches);
    t["warmup_steps"] = std::to_string(p.warmup_steps);
  } else {
    t["ulysses"] = std::to_string(p.ulysses);
    t["ring"] = std::to_string(p.ring);
  }
  return t;
}

namespace {
// The format stores f32 whatever the compute dtype was.
Tensor as_f32(const Tensor& t) { return t.dtype() == DType::f32 ? t : t.to_f32(); }
}  // namespace

void write_image_result(const std::string& path, const Tensor& latent, const ImageProvenance& p,
                        const Tensor* image) {
  h5::write_atomically(path, [&](h5::File& file) {
    file.write("/latent", as_f32(latent));
    if (image) file.write("/image", as_f32(*image));
    file.write_attr("format", std::string(kImageFormat));
    file.write_attr("format_version", kImageFormatVersion);
    file.write_attr("prompt_index", p.prompt_index);
    file.write_attr("seed", p.seed);
    file.write_attr("steps", p.steps);
    file.write_attr("width", p.width);
    file.write_attr("height", p.height);
    file.write_attr("guidance", p.guidance);
    file.write_attr("model", p.model);
    file.write_attr("fresco_version", std::string(kVersion));
    file.write_attr("command_line", p.command_line);
    if (!p.prompt_text.empty()) file.write_attr("prompt", p.prompt_text);
    file.write_attr("ranks", p.ranks);
    file.write_attr("parallel", p.parallel);
    if (p.parallel == "patch") {
      file.write_attr("patches", p.patches);
      file.write_attr("warmup_steps", p.warmup_steps);
      file.write_attr("sync_mode", p.sync_mode);
      file.write_attr("stale_dtype", p.stale_dtype);
    } else {
      file.write_attr("ulysses", p.ulysses);
      file.write_attr("ring", p.ring);
      file.write_attr("comm_dtype", p.comm_dtype);
    }
    file.write_attr("seconds_per_step", p.seconds_per_step);
    file.write_attr("compute_dtype", p.compute_dtype);
    file.write_attr("digest", p.digests.combined);
    file.write_attr("digest_weights", p.digests.weights);
    file.write_attr("digest_prompt", p.digests.prompt);
    file.write_attr("digest_settings", p.digests.settings);
    if (image && !p.vae.empty()) file.write_attr("vae", p.vae);
    if (!p.lora.empty()) file.write_attr("lora", p.lora);
    if (!p.sampler.empty()) file.write_attr("sampler", p.sampler);
    if (!p.cache.empty()) {
      file.write_attr("cache", p.cache);
      file.write_attr("cache_computed", p.cache_computed);
    }
  });
}

bool is_image_result(const h5::File& file) {
  return file.has_attr("format") && file.read_string_attr("format") == kImageFormat &&
         file.has_attr("format_version") && file.read_int_attr("format_version") == kImageFormatVersion;
}

// The inverse of write_image_result: an attribute written there is read here.
ImageProvenance read_image_provenance(const h5::File& file) {
  require_input(is_image_result(file), file.path() + " is not a Fresco image result of format version " +
                                           std::to_string(kImageFormatVersion));
  auto text = [&](const char* name) { return file.read_string_attr(name); };
  auto integer = [&](const char* name) { return file.read_int_attr(name); };
  ImageProvenance p;
  p.prompt_index = integer("prompt_index");
  p.seed = integer("seed");
  p.steps = integer("steps");
  p.width = integer("width");
  p.height = integer("height");
  p.guidance = file.read_double_attr("guidance");
  p.model = text("model");
  p.command_line = text("command_line");
  p.ranks = integer("ranks");
  p.parallel = text("parallel");
  if (p.parallel == "patch") {
    p.patches = integer("patches");
    p.warmup_steps = integer("warmup_steps");
    p.sync_mode = text("sync_mode");
    p.stale_dtype = text("stale_dtype");
  } else {
    p.ulysses = integer("ulysses");
    p.ring = integer("ring");
    p.comm_dtype = text("comm_dtype");
  }
  p.seconds_per_step = file.read_double_attr("seconds_per_step");
  p.compute_dtype = text("compute_dtype");
  p.digests = {text("digest_weights"), text("digest_prompt"), text("digest_settings"), text("digest")};
  if (file.has_attr("vae")) p.vae = text("vae");
  if (file.has_attr("prompt")) p.prompt_text = text("prompt");
  if (file.has_attr("lora")) p.lora = text("lora");
  if (file.has_attr("sampler")) p.sampler = text("sampler");
  if (file.has_attr("cache")) {
    p.cache = text("cache");
    p.cache_computed = text("cache_computed");
  }
  return p;
}

std::string image_result_mismatch(const std::string& path, const ImageDigests& expect) {
  try {
    // A 0-byte, truncated (HDF5 compares the file's end with the one it recorded) or damaged
    // file does not open. The datasets' contents are not read: a batch of large pictures
    // would be read whole at every resume.
    const h5::File file = h5::File::open(path);
    if (!file.has_attr("format") || file.read_string_attr("format") != kImageFormat)
      return "is not a Fresco image result";
    const int64_t version = file.has_attr("format_version") ? file.read_int_attr("format_version") : 0;
    if (version != kImageFormatVersion)
      return "has image format version " + std::to_string(version) + " (no record of its configuration)";
    if (!file.exists("/latent")) return "has no /latent";
    (void)file.dataset_shape("/latent");
    if (file.has_attr("digest") && file.read_string_attr("digest") == expect.combined) return "";
    std::string differ;
    const std::pair<const char*, const std::string*> parts[] = {
        {"weights", &expect.weights}, {"prompt", &expect.prompt}, {"settings", &expect.settings}};
    for (const auto& [name, value] : parts) {
      const std::string attr = std::string("digest_") + name;
      if (!file.has_attr(attr) || file.read_string_attr(attr) != *value)
        differ += std::string(differ.empty() ? "" : ", ") + name;
    }
    return "was made with other " + (differ.empty() ? std::string("inputs") : differ) +
           " than this run";
  } catch (const Error& e) {
    return std::string("does not open (") + e.what() + ")";
  }
}

}  // namespace fresco
