#include "src/model/flux_config.hpp"

#include "src/core/error.hpp"

namespace fresco {
namespace {

FluxConfig make_dev() {
  FluxConfig c;
  c.name = "flux-dev";
  return c;
}

FluxConfig make_schnell() {
  FluxConfig c;
  c.name = "flux-schnell";
  c.guidance_embed = false;
  c.time_shift = false;
  c.default_steps = 4;
  c.default_guidance = 0.0;
  return c;
}

// Demo size for CPUs: ~9 M parameters, a 256x256 image in well under a second per step.
FluxConfig make_small() {
  FluxConfig c;
  c.name = "flux-small";
  c.hidden = 256;
  c.heads = 4;  // D = 64
  c.depth = 2;
  c.depth_single = 4;
  c.context_in_dim = 256;
  c.vec_in_dim = 128;
  c.axes_dim = {8, 28, 28};
  c.default_steps = 8;
  return c;
}

// Test size: ~0.5 M parameters; the golden file in tests/golden uses exactly these numbers.
FluxConfig make_tiny() {
  FluxConfig c;
  c.name = "flux-tiny";
  c.hidden = 64;
  c.heads = 2;  // D = 32
  c.depth = 2;
  c.depth_single = 2;
  c.context_in_dim = 32;
  c.vec_in_dim = 48;
  c.axes_dim = {4, 14, 14};
  c.default_steps = 4;
  return c;
}

}  // namespace

void FluxConfig::validate() const {
  require_input(hidden > 0 && heads > 0 && hidden % heads == 0,
                name + ": hidden size must be a positive multiple of the head count");
  require_input(axes_dim[0] + axes_dim[1] + axes_dim[2] == head_dim(),
                name + ": RoPE axes dims must sum to the head dim");
  for (int a : axes_dim) require_input(a > 0 && a % 2 == 0, name + ": RoPE axis dims must be even");
  require_input(in_channels % 4 == 0, name + ": in_channels must be 4 x latent channels");
}

std::vector<std::string> flux_preset_names() {
  return {"flux-dev", "flux-schnell", "flux-small", "flux-tiny"};
}

FluxConfig flux_preset(const std::string& name) {
  FluxConfig c;
  if (name == "flux-dev") c = make_dev();
  else if (name == "flux-schnell") c = make_schnell();
  else if (name == "flux-small") c = make_small();
  else if (name == "flux-tiny") c = make_tiny();
  else {
    std::string known;
    for (const auto& n : flux_preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw InputError("unknown model preset '" + name + "' (known: " + known + ")");
  }
  c.validate();
  return c;
}

}  // namespace fresco
