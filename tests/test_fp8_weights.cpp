// FP8 weights files (src/model/fp8_weights.hpp, docs/file-formats.md): e4m3 datasets round-trip
// through HDF5; a file written from a bf16 one (or a safetensors checkpoint) holds the quantization
// --dtype fp8 makes at set-up, reads back as written, runs the same fp8 forward bit for bit, is
// dequantized for other dtypes, has its own identity; a damaged scale is refused naming the
// tensor and the file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>

#include "io/forward_io.hpp"
#include "src/core/digest.hpp"
#include "io/h5_file.hpp"
#include "src/core/difference.hpp"
#include "src/core/float8.hpp"
#include "src/model/checkpoint_convert.hpp"
#include "src/model/flux_model.hpp"
#include "src/model/fp8_weights.hpp"
#include "src/model/model_inputs.hpp"
#include "src/model/model_registry.hpp"
#include "src/model/weights_io.hpp"
#include "src/runtime/auto_layout.hpp"
#include "tests/safetensors_fixture.hpp"

using namespace fresco;
using namespace fresco::test;

namespace {

const std::string kGolden = FRESCO_GOLDEN_DIR;

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.bytes()) == 0;
}

// The message of the InputError `f` throws ("" when it throws none).
std::string input_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

// The velocity of one fp8 forward of flux-tiny on the golden inputs from `weights`.
Tensor fp8_forward(ModelWeights weights, Backend& cpu) {
  const FluxConfig c = flux_preset("flux-tiny");
  FluxTransformer model(c, std::move(weights), cpu, std::make_unique<LocalAttention>(), DType::bf16);
  model.use_fp8_linears();
  const ForwardInputs in = read_forward_inputs(kGolden + "/flux_tiny_inputs.h5", c);
  model.set_condition(in.txt, in.y, in.grid_h, in.grid_w);
  Tensor v({in.grid_h * in.grid_w, c.in_channels});  // [L, 64]
  model.forward(in.img, float(in.t), float(in.guidance), v);
  return v;
}

}  // namespace

TEST(Fp8Weights, E4m3DatasetRoundTrip) {
  TempDir dir;
  Tensor q({2, 3}, DType::e4m3);
  const uint8_t bits[] = {0x00, 0x38, 0xB8, 0x7E, 0xFE, 0x01};  // 0, 1, -1, 448, -448, smallest subnormal
  std::memcpy(q.raw(), bits, sizeof bits);
  {
    h5::File f = h5::File::create(dir.file("q.h5"));
    f.write("/q", q);
    f.write("/plain", Tensor::zeros({3}, DType::f32));
    f.close();
  }
  const h5::File f = h5::File::open(dir.file("q.h5"));
  EXPECT_EQ(f.dataset_dtype("/q"), DType::e4m3);
  EXPECT_EQ(f.dataset_type_description("/q"), "float8_e4m3fn (uint8)");
  EXPECT_EQ(f.read_string_attr(h5::kDtypeAttr, "/q"), h5::kE4m3DtypeName);
  EXPECT_TRUE(same_bytes(f.read_raw("/q"), q));
  EXPECT_EQ(f.dataset_dtype("/plain"), DType::f32);
}

// Written from a bf16 file: every token linear as e4m3 with f32 scales [N], the scale of a row
// amax / 448 of the bf16 row and each value within half an e4m3 step of it; every other tensor
// the source's bytes; read back as written.
TEST(Fp8Weights, FileHoldsTheRuntimeQuantization) {
  TempDir dir;
  write_random_weights(dir.file("w.h5"), "flux-tiny", 3, DType::bf16);
  const Fp8Conversion done = write_fp8_weights_file(dir.file("w.h5"), dir.file("fp8.h5"));
  const FluxConfig c = flux_preset("flux-tiny");
  const std::vector<std::string> linears = flux_token_linear_names(c);
  EXPECT_EQ(done.preset, "flux-tiny");
  EXPECT_EQ(done.quantized, int64_t(linears.size()));
  const WeightsFile source(dir.file("w.h5")), fp8(dir.file("fp8.h5"));
  EXPECT_FALSE(source.fp8());
  ASSERT_TRUE(fp8.fp8());
  EXPECT_TRUE(validate_weight_table("flux-tiny", fp8_file_weight_specs("flux-tiny", "fp8.h5"), fp8.table()).empty());
  const auto cpu = make_cpu_backend();
  for (const std::string& name : linears) {
    const Tensor w = source.read(name + ".weight").to_f32();  // [N, K] (bf16 values)
    const Tensor q = fp8.read(name + ".weight"), s = fp8.read(name + kWeightScaleSuffix);
    ASSERT_EQ(q.dtype(), DType::e4m3);
    ASSERT_EQ(s.dtype(), DType::f32);
    ASSERT_EQ(s.shape(), Shape{w.dim(0)});
    // The runtime's quantization of the bf16 weight, byte for byte.
    const QuantizedWeight runtime = quantize_weight(source.read(name + ".weight"), *cpu);
    EXPECT_TRUE(same_bytes(q, runtime.q)) << name;
    EXPECT_TRUE(same_bytes(s, runtime.scale)) << name;
    // The documented rule, checked independently of the quantizer.
    const int64_t K = w.dim(1);
    for (int64_t n = 0; n < w.dim(0); ++n) {
      float amax = 0;
      for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(w.f32()[n * K + k]));
      ASSERT_EQ(s.f32()[n], amax / kE4m3Max) << name << " row " << n;
      for (int64_t k = 0; k < K; ++k) {
        const float x = w.f32()[n * K + k] / s.f32()[n], got = e4m3_to_float(q.data<uint8_t>()[n * K + k]);
        // e4m3 keeps 3 mantissa bits: half a step is 2^-4 of the value (2^-10 absolute below 2^-6).
        ASSERT_LE(std::fabs(got - x), std::max(std::fabs(x) / 16, 1.0f / 1024)) << name << " " << n << "," << k;
      }
    }
  }
  for (const WeightSpec& spec : flux_weight_specs(c))
    if (!spec.name.ends_with(".weight") ||
        std::find(linears.begin(), linears.end(), spec.name.substr(0, spec.name.size() - 7)) == linears.end())
      EXPECT_TRUE(same_bytes(fp8.read(spec.name), source.read(spec.name))) << spec.name;
}

// `convert --dtype fp8` of a safetensors checkpoint writes what rewriting its plain conversion does.
TEST(Fp8Weights, ConvertFromSafetensorsEqualsRewrite) {
  TempDir dir;
  write_random_weights(dir.file("w.h5"), "flux-tiny", 4, DType::bf16);
  const WeightsFile source(dir.file("w.h5"));
  std::map<std::string, Tensor> stored;
  for (const WeightSpec& spec : preset_weight_specs("flux-tiny")) stored[spec.name] = source.read(spec.name);
  write_stored_safetensors(dir.file("w.safetensors"), stored, {{DType::bf16, "BF16"}});
  const ConvertedCheckpoint done = convert_checkpoint(dir.file("w.safetensors"), dir.file("a.h5"), "auto", true);
  write_fp8_weights_file(dir.file("w.h5"), dir.file("b.h5"));
  EXPECT_EQ(done.quantized, int64_t(flux_token_linear_names(flux_preset("flux-tiny")).size()));
  const WeightsFile a(dir.file("a.h5")), b(dir.file("b.h5"));
  ASSERT_TRUE(a.fp8());
  ASSERT_EQ(a.table().size(), b.table().size());
  for (const auto& [name, info] : b.table()) EXPECT_TRUE(same_bytes(a.read(name), b.read(name))) << name;
  // An autoencoder has no token linears.
  write_random_weights(dir.file("ae.h5"), "ae-tiny", 1, DType::bf16);
  EXPECT_NE(input_error([&] { write_fp8_weights_file(dir.file("ae.h5"), dir.file("c.h5")); })
                .find("FP8 weights files are for FLUX transformer presets"),
            std::string::npos);
  // Nor is an FP8 file made twice.
  EXPECT_NE(input_error([&] { write_fp8_weights_file(dir.file("a.h5"), dir.file("c.h5")); }).find("already an FP8"),
            std::string::npos);
}

// The fp8 forward from the FP8 file equals the fp8 forward from its source (golden flux-tiny,
// f32), bit for bit, and holds no bf16 copy of the linears; the identities differ.
TEST(Fp8Weights, ForwardEqualsFp8FromSource) {
  TempDir dir;
  const std::string source = kGolden + "/flux_tiny_weights.h5";
  write_fp8_weights_file(source, dir.file("fp8.h5"));
  const auto cpu = make_cpu_backend();
  const ModelWeights from_source = load_weights(source, "flux-tiny", *cpu, DType::bf16);
  const ModelWeights from_file = load_weights(dir.file("fp8.h5"), "flux-tiny", *cpu, DType::bf16, nullptr, Fp8Linears::keep);
  for (const std::string& name : flux_token_linear_names(flux_preset("flux-tiny"))) {
    EXPECT_EQ(from_file.get(name + ".weight").dtype(), DType::e4m3) << name;
    EXPECT_EQ(from_file.get(name + kWeightScaleSuffix).dtype(), DType::f32) << name;
  }
  EXPECT_EQ(from_file.get("img_in.weight").dtype(), DType::bf16);  // the other tensors as asked
  EXPECT_NE(from_file.identity(), from_source.identity());
  const Tensor a = fp8_forward(from_source, *cpu), b = fp8_forward(from_file, *cpu);
  EXPECT_TRUE(same_bytes(a, b));
  EXPECT_EQ(count_nonfinite_host(b), 0);
}

// For another dtype the linears are q * scale in it, no scales kept; the identity is the file's.
TEST(Fp8Weights, DequantizedForOtherDtypes) {
  TempDir dir;
  const std::string source = kGolden + "/flux_tiny_weights.h5";
  write_fp8_weights_file(source, dir.file("fp8.h5"));
  const auto cpu = make_cpu_backend();
  const WeightsFile file(dir.file("fp8.h5"));
  const std::string name = "double_blocks.0.img_attn.qkv";
  const Tensor q = file.read(name + ".weight"), s = file.read(name + kWeightScaleSuffix);
  const ModelWeights kept = load_weights(dir.file("fp8.h5"), "flux-tiny", *cpu, DType::bf16, nullptr, Fp8Linears::keep);
  for (const std::optional<DType> as : {std::optional<DType>(DType::bf16), std::optional<DType>()}) {
    const ModelWeights w = load_weights(dir.file("fp8.h5"), "flux-tiny", *cpu, as);
    const Tensor got = w.get(name + ".weight").to_f32();  // [N, K]
    EXPECT_EQ(w.get(name + ".weight").dtype(), as.value_or(DType::f32));
    EXPECT_FALSE(w.has(name + kWeightScaleSuffix));
    EXPECT_EQ(w.identity(), kept.identity());
    const int64_t K = q.dim(1);
    for (int64_t i = 0; i < q.numel(); ++i) {
      const float exact = e4m3_to_float(q.data<uint8_t>()[i]) * s.f32()[i / K];
      const float expect = as ? Tensor::from_floats({1}, std::vector<float>{exact}).to_dtype(*as).to_f32().f32()[0] : exact;
      ASSERT_EQ(got.f32()[i], expect) << i;
    }
  }
  // A bf16 forward of the dequantized weights is close to the source's bf16 forward.
  const FluxConfig c = flux_preset("flux-tiny");
  const ForwardInputs in = read_forward_inputs(kGolden + "/flux_tiny_inputs.h5", c);
  Tensor velocity[2] = {Tensor({in.grid_h * in.grid_w, c.in_channels}), Tensor({in.grid_h * in.grid_w, c.in_channels})};
  const std::string files[2] = {source, dir.file("fp8.h5")};
  for (int i = 0; i < 2; ++i) {
    FluxTransformer model(c, load_weights(files[i], c.name, *cpu, DType::bf16), *cpu, std::make_unique<LocalAttention>(),
                          DType::bf16);
    model.set_condition(in.txt, in.y, in.grid_h, in.grid_w);
    model.forward(in.img, float(in.t), float(in.guidance), velocity[i]);
  }
  const double err = difference(velocity[1], velocity[0]).relative_l2;
  std::printf("bf16 forward of the dequantized FP8 file against the source's: relative L2 %.3e\n", err);
  EXPECT_GT(err, 0);
  EXPECT_LT(err, 0.1);
}

// A damaged scale tensor, each way, is an InputError naming the tensor and the file, whether the
// linears are kept or dequantized; so is a plain weight in an FP8 file.
TEST(Fp8Weights, CorruptScaleRefused) {
  TempDir dir;
  write_random_weights(dir.file("w.h5"), "flux-tiny", 5, DType::bf16);
  write_fp8_weights_file(dir.file("w.h5"), dir.file("fp8.h5"));
  const WeightsFile good(dir.file("fp8.h5"));
  const std::string target = "single_blocks.0.linear1.weight_scale";
  const int64_t rows = good.read(target).dim(0);
  // An FP8 file like fp8.h5 with `target` given to `change` (which may leave it out: nothing).
  const auto damaged = [&](const std::string& file, const std::function<std::optional<Tensor>(Tensor)>& change) {
    write_weights_file(dir.file(file), "flux-tiny", [&](WeightsWriter& w) {
      w.attribute(kQuantizationAttr, kFp8Quantization);
      for (const WeightSpec& spec : fp8_file_weight_specs("flux-tiny", file)) {
        std::optional<Tensor> t = good.read(spec.name);
        if (spec.name == target) t = change(t->clone());
        if (t) w.tensor(spec.name, *t);
      }
    });
    return dir.file(file);
  };
  const auto set_value = [](float v) {
    return [v](Tensor t) -> std::optional<Tensor> {
      t.f32()[3] = v;
      return t;
    };
  };
  struct Case {
    const char* what;
    std::string path;
    std::string says;
  };
  const std::string n = std::to_string(rows);
  const Case cases[] = {
      {"NaN", damaged("nan.h5", set_value(std::nanf(""))), "1 of " + n + " scales are not finite and > 0 (channel 3 is nan)"},
      {"infinite", damaged("inf.h5", set_value(INFINITY)), "(channel 3 is inf)"},
      {"zero", damaged("zero.h5", set_value(0.0f)), "(channel 3 is 0)"},
      {"negative", damaged("neg.h5", set_value(-0.5f)), "(channel 3 is -0.5)"},
      {"wrong shape", damaged("shape.h5", [&](Tensor) -> std::optional<Tensor> { return Tensor::zeros({rows + 1}); }),
       "tensor single_blocks.0.linear1.weight_scale has shape [" + std::to_string(rows + 1) + "], flux-tiny expects [" + n +
           "]"},
      {"bf16", damaged("bf16.h5", [](Tensor t) -> std::optional<Tensor> { return t.to_dtype(DType::bf16); }),
       "(expected f32)"},
      {"missing", damaged("missing.h5", [](Tensor) -> std::optional<Tensor> { return std::nullopt; }),
       "missing tensor single_blocks.0.linear1.weight_scale [" + n + "]"},
  };
  const auto cpu = make_cpu_backend();
  for (const Case& c : cases)
    for (const Fp8Linears mode : {Fp8Linears::keep, Fp8Linears::dequantize}) {
      const std::string msg =
          input_error([&] { load_weights(c.path, "flux-tiny", *cpu, DType::bf16, nullptr, mode); });
      EXPECT_NE(msg.find(c.path), std::string::npos) << c.what << ": " << msg;
      EXPECT_NE(msg.find("single_blocks.0.linear1.weight_scale"), std::string::npos) << c.what << ": " << msg;
      EXPECT_NE(msg.find(c.says), std::string::npos) << c.what << ": " << msg;
    }
  // A token linear stored in bf16 in an FP8 file.
  const std::string plain = dir.file("plain.h5");
  write_weights_file(plain, "flux-tiny", [&](WeightsWriter& w) {
    w.attribute(kQuantizationAttr, kFp8Quantization);
    for (const WeightSpec& spec : fp8_file_weight_specs("flux-tiny", "plain.h5"))
      w.tensor(spec.name, spec.name == "double_blocks.0.img_mlp.0.weight" ? WeightsFile(dir.file("w.h5")).read(spec.name)
                                                                          : good.read(spec.name));
  });
  const std::string msg = input_error([&] { load_weights(plain, "flux-tiny", *cpu, DType::bf16); });
  EXPECT_NE(msg.find("tensor double_blocks.0.img_mlp.0.weight is stored as float16 (expected e4m3)"),
            std::string::npos)
      << msg;
}

// The memory estimate counts an FP8 file's linears once, in e4m3, under --dtype fp8 (its size),
// and dequantized under another dtype; a bf16 file under --dtype fp8 holds both.
TEST(Fp8Weights, MemoryEstimateOfAnFp8File) {
  TempDir dir;
  write_random_weights(dir.file("w.h5"), "flux-small", 1, DType::bf16);
  write_fp8_weights_file(dir.file("w.h5"), dir.file("fp8.h5"));
  const FluxConfig c = flux_preset("flux-small");
  EngineChoice fp8, bf16;
  fp8.compute = bf16.compute = DType::bf16;
  fp8.fp8 = true;
  const double params = double(flux_parameter_count(c)), linears = double(flux_token_linear_weight_count(c));
  EXPECT_EQ(weight_bytes_in_memory(c, fp8, dir.file("fp8.h5")), double(std::filesystem::file_size(dir.file("fp8.h5"))));
  EXPECT_EQ(weight_bytes_in_memory(c, bf16, dir.file("fp8.h5")), 2 * params);
  EXPECT_EQ(weight_bytes_in_memory(c, fp8, dir.file("w.h5")), 2 * params + linears);
  EXPECT_LT(weight_bytes_in_memory(c, fp8, dir.file("fp8.h5")), 0.55 * (2 * params + linears));  // about half
}
