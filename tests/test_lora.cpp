// LoRA merged at load (src/model/lora.hpp): every touched tensor equals the formula
// W + scale * alpha / rank * up @ down (computed here in double, independently of the merge's
// f32 loop) in both name layouts and for f32 and bf16 weights; untouched tensors keep their
// bytes; unmatched keys are named; bad scales and files are clear errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "src/core/error.hpp"
#include "src/model/flux_config.hpp"
#include "src/model/lora.hpp"
#include "src/model/model_registry.hpp"
#include "src/model/noise.hpp"
#include "src/model/weights_io.hpp"
#include "io/weights_file.hpp"
#include "tests/safetensors_fixture.hpp"

using namespace fresco;
using namespace fresco::test;

namespace {

Tensor random_tensor(Shape shape, uint32_t index) {
  Tensor t(std::move(shape));
  fill_normal(t, 7, RandomStream::weights, index);
  return t;
}

// One expected update of a preset tensor: rows [target_begin, +rows) get
// factor * (up @ down) rows [source_begin, +rows).
struct Expected {
  std::string target;
  Tensor up, down;  // f32
  double factor;
  int64_t source_begin, target_begin, rows;
};

// The weights a merge must give: the file's tensors (as f32) plus every update, in double,
// rounded once to the file's dtype; and for each element the magnitude its rounding errors
// scale with, |W| + sum |factor * up * down|.
struct ExpectedWeights {
  std::map<std::string, Tensor> values, magnitudes;
};
ExpectedWeights expected_weights(const std::string& path, const std::vector<Expected>& updates) {
  const WeightsFile file(path);
  ExpectedWeights out;
  for (const WeightSpec& spec : preset_weight_specs(file.model())) {
    const Tensor stored = file.read(spec.name);
    std::vector<double> w(size_t(stored.numel())), magnitude(w.size());
    const Tensor f32 = stored.to_f32();
    for (size_t i = 0; i < w.size(); ++i) magnitude[i] = std::fabs(w[i] = f32.f32()[i]);
    bool touched = false;
    for (const Expected& u : updates) {
      if (u.target != spec.name) continue;
      touched = true;
      const int64_t in = u.down.dim(1), rank = u.down.dim(0);
      for (int64_t i = 0; i < u.rows; ++i)
        for (int64_t j = 0; j < in; ++j) {
          double sum = 0, size = 0;
          for (int64_t k = 0; k < rank; ++k) {
            const double term = double(u.up.f32()[(u.source_begin + i) * rank + k]) * double(u.down.f32()[k * in + j]);
            sum += term;
            size += std::fabs(term);
          }
          const size_t at = size_t((u.target_begin + i) * in + j);
          w[at] += u.factor * sum;
          magnitude[at] += std::fabs(u.factor) * size;
        }
    }
    Tensor t(spec.shape), m(spec.shape);
    for (size_t i = 0; i < w.size(); ++i) {
      t.f32()[i] = float(w[i]);
      m.f32()[i] = float(magnitude[i]);
    }
    out.values[spec.name] = touched ? t.to_dtype(stored.dtype()) : stored;
    out.magnitudes[spec.name] = m;
  }
  return out;
}

// Loads `path` with `merge` on the CPU and compares every tensor with `expected`: untouched
// ones bit for bit, touched ones within the f32 loop's rounding (a few units of f32's last
// place of the element's magnitude) plus, for bf16, one rounding boundary of the result.
void expect_merged(const std::string& path, const LoraMerge& merge, const ExpectedWeights& expected_weights) {
  const auto& expected = expected_weights.values;
  auto cpu = make_cpu_backend();
  const WeightsFile file(path);
  const ModelWeights got = load_weights(path, file.model(), *cpu, std::nullopt, &merge);
  const auto touched = merge.touched();
  for (const auto& [name, want] : expected) {
    const Tensor g = got.get(name);
    ASSERT_EQ(g.dtype(), want.dtype()) << name;
    const bool is_touched = std::find(touched.begin(), touched.end(), name) != touched.end();
    if (!is_touched) {
      EXPECT_EQ(std::memcmp(g.raw(), want.raw(), want.bytes()), 0) << name << " changed without a LoRA on it";
      continue;
    }
    const Tensor a = g.to_f32(), b = want.to_f32();
    const double ulp = want.dtype() == DType::f32 ? 0.0 : want.dtype() == DType::bf16 ? 7.9e-3 : 9.8e-4;
    const Tensor& magnitude = expected_weights.magnitudes.at(name);
    int64_t differ = 0;
    for (int64_t i = 0; i < a.numel(); ++i) {
      const double tol = (8 * 1.2e-7 + ulp) * double(magnitude.f32()[i]);
      ASSERT_LE(std::fabs(double(a.f32()[i]) - double(b.f32()[i])), tol) << name << " element " << i;
      differ += a.f32()[i] != b.f32()[i];
    }
    // bf16: the f32 result rounds to the formula's bf16 value but where the two straddle a
    // rounding boundary (f32 itself differs from the double formula in most elements).
    if (want.dtype() != DType::f32)
      EXPECT_LE(differ, a.numel() / 100) << name << ": more than 1% of the values off by one rounding";
  }
}

class LoraMergeTest : public ::testing::TestWithParam<DType> {};

// kohya names (lora_unet_*, lora_up/lora_down, alpha) on whole BFL tensors, scale 0.7.
TEST_P(LoraMergeTest, KohyaEqualsTheFormula) {
  TempDir dir;
  const DType dtype = GetParam();
  write_random_weights(dir.file("w.h5"), "flux-tiny", 4, dtype);
  const FluxConfig c = flux_preset("flux-tiny");
  const int64_t d = c.hidden, m = c.mlp_hidden(), rank = 4;
  struct Module { const char* key; int64_t out, in; float alpha; };
  const Module modules[] = {{"double_blocks.0.img_attn.qkv", 3 * d, d, 2.0f},
                            {"single_blocks.1.linear1", 3 * d + m, d, 8.0f},
                            {"final_layer.adaLN_modulation.1", 2 * d, d, 4.0f}};
  std::map<std::string, Tensor> lora;
  std::vector<Expected> updates;
  uint32_t index = 0;
  for (const Module& mod : modules) {
    std::string flat = mod.key;
    for (char& ch : flat) ch = ch == '.' ? '_' : ch;
    const Tensor up = random_tensor({mod.out, rank}, index++), down = random_tensor({rank, mod.in}, index++);
    lora["lora_unet_" + flat + ".lora_up.weight"] = up;
    lora["lora_unet_" + flat + ".lora_down.weight"] = down;
    lora["lora_unet_" + flat + ".alpha"] = Tensor::from_floats({}, std::vector<float>{mod.alpha});
    updates.push_back({std::string(mod.key) + ".weight", up, down, 0.7 * mod.alpha / double(rank), 0, 0, mod.out});
  }
  write_safetensors(dir.file("kohya.safetensors"), lora, DType::f32, "F32");
  const LoraMerge merge({{{dir.file("kohya.safetensors"), 0.7}}, false}, "flux-tiny");
  EXPECT_EQ(merge.touched().size(), 3u);
  EXPECT_EQ(merge.summaries().at(0).pairs, 3);
  expect_merged(dir.file("w.h5"), merge, expected_weights(dir.file("w.h5"), updates));
}

// diffusers/PEFT names (lora_A/lora_B, no alpha: the factor is the scale) landing on rows of the
// fused tensors: to_k -> qkv rows [d, 2d), add_v_proj -> txt qkv rows [2d, 3d), proj_mlp ->
// linear1 rows [3d, 3d + m), norm_out.linear -> the final modulation with its halves swapped;
// and a pair of ComfyUI's naming (diffusion_model.single_blocks.1.linear2) on a whole tensor.
TEST_P(LoraMergeTest, DiffusersEqualsTheFormulaOnTheFusedRows) {
  TempDir dir;
  const DType dtype = GetParam();
  write_random_weights(dir.file("w.h5"), "flux-tiny", 5, dtype);
  const FluxConfig c = flux_preset("flux-tiny");
  const int64_t d = c.hidden, m = c.mlp_hidden(), rank = 3;
  std::map<std::string, Tensor> lora;
  std::vector<Expected> updates;
  const auto add = [&](const std::string& module, int64_t out, uint32_t index) {
    const Tensor up = random_tensor({out, rank}, index), down = random_tensor({rank, d}, index + 100);
    lora["transformer." + module + ".lora_B.weight"] = up;
    lora["transformer." + module + ".lora_A.weight"] = down;
    return std::pair{up, down};
  };
  const double scale = 1.5;
  auto [k_up, k_down] = add("transformer_blocks.1.attn.to_k", d, 1);
  updates.push_back({"double_blocks.1.img_attn.qkv.weight", k_up, k_down, scale, 0, d, d});
  auto [v_up, v_down] = add("transformer_blocks.0.attn.add_v_proj", d, 2);
  updates.push_back({"double_blocks.0.txt_attn.qkv.weight", v_up, v_down, scale, 0, 2 * d, d});
  auto [mlp_up, mlp_down] = add("single_transformer_blocks.0.proj_mlp", m, 3);
  updates.push_back({"single_blocks.0.linear1.weight", mlp_up, mlp_down, scale, 0, 3 * d, m});
  // ComfyUI's LoRAs: the original names under diffusion_model.
  const Tensor l2_up = random_tensor({d, rank}, 5), l2_down = random_tensor({rank, d + m}, 105);
  lora["diffusion_model.single_blocks.1.linear2.lora_B.weight"] = l2_up;
  lora["diffusion_model.single_blocks.1.linear2.lora_A.weight"] = l2_down;
  updates.push_back({"single_blocks.1.linear2.weight", l2_up, l2_down, scale, 0, 0, d});
  auto [n_up, n_down] = add("norm_out.linear", 2 * d, 4);
  updates.push_back({"final_layer.adaLN_modulation.1.weight", n_up, n_down, scale, d, 0, d});  // diffusers' shift half
  updates.push_back({"final_layer.adaLN_modulation.1.weight", n_up, n_down, scale, 0, d, d});  // its scale half
  write_safetensors(dir.file("peft.safetensors"), lora, DType::bf16, "BF16");
  // The formula on the adapters as stored (bf16).
  for (Expected& u : updates) {
    u.up = u.up.to_dtype(DType::bf16).to_f32();
    u.down = u.down.to_dtype(DType::bf16).to_f32();
  }
  const LoraMerge merge({{{dir.file("peft.safetensors"), scale}}, false}, "flux-tiny");
  EXPECT_EQ(merge.touched().size(), 5u);
  expect_merged(dir.file("w.h5"), merge, expected_weights(dir.file("w.h5"), updates));
}

INSTANTIATE_TEST_SUITE_P(WeightDtypes, LoraMergeTest, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// The InputError message of building a merge (empty when it does not throw one).
std::string merge_error(const LoraOptions& options) {
  try {
    LoraMerge merge(options, "flux-tiny");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Lora, UnmatchedKeysAreNamed) {
  TempDir dir;
  std::map<std::string, Tensor> lora;
  lora["lora_unet_double_blocks_0_img_attn_proj.lora_up.weight"] = random_tensor({64, 2}, 1);
  lora["lora_unet_double_blocks_0_img_attn_proj.lora_down.weight"] = random_tensor({2, 64}, 2);
  // A text encoder's pair, a pair of no tensor, half a pair, a key of no pair layout.
  lora["lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"] = random_tensor({8, 2}, 3);
  lora["lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] = random_tensor({2, 8}, 4);
  lora["transformer.transformer_blocks.9.attn.to_q.lora_A.weight"] = random_tensor({2, 64}, 5);
  lora["transformer.transformer_blocks.9.attn.to_q.lora_B.weight"] = random_tensor({64, 2}, 6);
  lora["lora_unet_single_blocks_0_linear2.lora_down.weight"] = random_tensor({2, 320}, 7);
  lora["dora_scale"] = random_tensor({4}, 8);
  write_safetensors(dir.file("l.safetensors"), lora, DType::f32, "F32");
  const std::string msg = merge_error({{{dir.file("l.safetensors"), 1.0}}, false});
  EXPECT_NE(msg.find("6 LoRA key(s) match no tensor of flux-tiny"), std::string::npos) << msg;
  for (const char* key : {"lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_up.weight",
                          "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight",
                          "transformer.transformer_blocks.9.attn.to_q.lora_A.weight",
                          "lora_unet_single_blocks_0_linear2.lora_down.weight (its up/B half is missing)",
                          "dora_scale (not a lora_up"})
    EXPECT_NE(msg.find(key), std::string::npos) << key << "\n" << msg;
  EXPECT_EQ(msg.find("img_attn_proj"), std::string::npos) << msg;
  // Allowed: the matched pair is merged, the others listed for a warning.
  const LoraMerge merge({{{dir.file("l.safetensors"), 1.0}}, true}, "flux-tiny");
  EXPECT_EQ(merge.unmatched().size(), 6u);
  EXPECT_EQ(merge.touched(), std::vector<std::string>{"double_blocks.0.img_attn.proj.weight"});
}

TEST(Lora, BadRequestsAreClearErrors) {
  EXPECT_EQ(parse_lora_request("a.safetensors").scale, 1.0);
  EXPECT_EQ(parse_lora_request("a.safetensors:0.5").scale, 0.5);
  EXPECT_EQ(parse_lora_request("a.safetensors:-1e-1").path, "a.safetensors");
  EXPECT_EQ(parse_lora_request("c:/x/a.safetensors").path, "c:/x/a.safetensors");  // a ':' in the path
  for (const char* bad : {"a.safetensors:x", "a.safetensors:", "a.safetensors:nan", "a.safetensors:1.5.2", ":0.5"}) {
    try {
      parse_lora_request(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("option --lora ") + bad), std::string::npos) << e.what();
    }
  }
  TempDir dir;
  EXPECT_NE(merge_error({{{dir.file("missing.safetensors"), 1.0}}, false}).find("missing.safetensors"),
            std::string::npos);
  // Shapes that do not fit the tensor: named with both.
  std::map<std::string, Tensor> lora;
  lora["lora_unet_double_blocks_0_img_attn_proj.lora_up.weight"] = random_tensor({63, 2}, 1);
  lora["lora_unet_double_blocks_0_img_attn_proj.lora_down.weight"] = random_tensor({2, 64}, 2);
  write_safetensors(dir.file("l.safetensors"), lora, DType::f32, "F32");
  const std::string msg = merge_error({{{dir.file("l.safetensors"), 1.0}}, false});
  EXPECT_NE(msg.find("has up [63, 2] and down [2, 64], which do not fit double_blocks.0.img_attn.proj.weight [64, 64]"),
            std::string::npos)
      << msg;
}

// The weights' identity (the resume digest's) tells the LoRA files and scales apart.
TEST(Lora, IdentityIncludesFilesAndScales) {
  TempDir dir;
  write_random_weights(dir.file("w.h5"), "flux-tiny", 4, DType::f32);
  std::map<std::string, Tensor> lora;
  lora["lora_unet_double_blocks_0_img_attn_proj.lora_up.weight"] = random_tensor({64, 2}, 1);
  lora["lora_unet_double_blocks_0_img_attn_proj.lora_down.weight"] = random_tensor({2, 64}, 2);
  write_safetensors(dir.file("l.safetensors"), lora, DType::f32, "F32");
  auto cpu = make_cpu_backend();
  const auto identity = [&](std::optional<double> scale) {
    if (!scale) return load_weights(dir.file("w.h5"), "flux-tiny", *cpu).identity();
    const LoraMerge merge({{{dir.file("l.safetensors"), *scale}}, false}, "flux-tiny");
    return load_weights(dir.file("w.h5"), "flux-tiny", *cpu, std::nullopt, &merge).identity();
  };
  const std::string none = identity(std::nullopt), one = identity(1.0), half = identity(0.5);
  EXPECT_NE(none, one);
  EXPECT_NE(one, half);
  EXPECT_EQ(one, identity(1.0));
  // Random weights take no LoRA.
  const LoraMerge merge({{{dir.file("l.safetensors"), 1.0}}, false}, "flux-tiny");
  EXPECT_THROW(load_weights("random:1", "flux-tiny", *cpu, std::nullopt, &merge), InputError);
}

}  // namespace
