#include "src/model/vae_config.hpp"

#include "src/core/error.hpp"

namespace fresco {
namespace {

void add_conv(std::vector<WeightSpec>& s, const std::string& prefix, int64_t out, int64_t in, int64_t k) {
  s.push_back({prefix + ".weight", {out, in, k, k}});
  s.push_back({prefix + ".bias", {out}});
}

void add_norm(std::vector<WeightSpec>& s, const std::string& prefix, int64_t c) {
  s.push_back({prefix + ".weight", {c}});
  s.push_back({prefix + ".bias", {c}});
}

void add_resnet(std::vector<WeightSpec>& s, const std::string& p, int64_t cin, int64_t cout) {
  add_norm(s, p + ".norm1", cin);
  add_conv(s, p + ".conv1", cout, cin, 3);
  add_norm(s, p + ".norm2", cout);
  add_conv(s, p + ".conv2", cout, cout, 3);
  if (cin != cout) add_conv(s, p + ".nin_shortcut", cout, cin, 1);
}

}  // namespace

std::vector<std::string> vae_preset_names() { return {"flux-ae", "ae-small", "ae-tiny"}; }

bool is_vae_preset(const std::string& name) {
  for (const auto& n : vae_preset_names())
    if (n == name) return true;
  return false;
}

VaeConfig vae_preset(const std::string& name) {
  VaeConfig c;
  c.name = name;
  if (name == "ae-small") {
    c.ch = 32;
  } else if (name == "ae-tiny") {
    c.ch = 32;
    c.ch_mult = {1, 2};
  } else if (name != "flux-ae") {
    throw InputError("unknown autoencoder preset '" + name + "' (known: flux-ae, ae-small, ae-tiny)");
  }
  return c;
}

std::vector<WeightSpec> vae_weight_specs(const VaeConfig& c) {
  std::vector<WeightSpec> s;
  const int top = c.width(c.levels() - 1);
  add_conv(s, "decoder.conv_in", top, c.z_channels, 3);
  add_resnet(s, "decoder.mid.block_1", top, top);
  for (const char* part : {"norm", "q", "k", "v", "proj_out"}) {
    const std::string p = std::string("decoder.mid.attn_1.") + part;
    if (std::string(part) == "norm") add_norm(s, p, top);
    else add_conv(s, p, top, top, 1);
  }
  add_resnet(s, "decoder.mid.block_2", top, top);
  int width = top;
  for (int level = c.levels() - 1; level >= 0; --level) {
    const std::string p = "decoder.up." + std::to_string(level);
    for (int b = 0; b <= c.num_res_blocks; ++b) {
      add_resnet(s, p + ".block." + std::to_string(b), width, c.width(level));
      width = c.width(level);
    }
    if (level != 0) add_conv(s, p + ".upsample.conv", width, width, 3);
  }
  add_norm(s, "decoder.norm_out", width);
  add_conv(s, "decoder.conv_out", c.out_ch, width, 3);
  return s;
}

}  // namespace fresco
