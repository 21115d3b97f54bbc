// HDF5 weights and 16-bit types, the safetensors converter, atomic outputs, and the golden
// forward against the independent PyTorch reference (tests/golden/make_golden.py).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/atomic_output.hpp"
#include "io/forward_io.hpp"
#include "io/h5_file.hpp"
#include "io/image_file.hpp"
#include "src/core/digest.hpp"
#include "io/png_file.hpp"
#include "io/prompts_file.hpp"
#include "io/safetensors.hpp"
#include "src/model/weights_io.hpp"
#include "src/model/checkpoint_convert.hpp"
#include "src/model/model_registry.hpp"
#include "src/model/model_inputs.hpp"
#include "src/core/difference.hpp"
#include "src/model/flux_model.hpp"
#include "src/model/vae_decoder.hpp"
#include "src/model/noise.hpp"
#include "tests/safetensors_fixture.hpp"

using namespace fresco;
using namespace fresco::test;
namespace fs = std::filesystem;

namespace {

std::map<std::string, Tensor> random_flux_tensors(const FluxConfig& c) {
  std::map<std::string, Tensor> m;
  uint32_t i = 0;
  for (const auto& s : flux_weight_specs(c)) {
    Tensor t(s.shape);
    fill_normal(t, 99, RandomStream::weights, i++);
    m[s.name] = t;
  }
  return m;
}

}  // namespace

TEST(Hdf5, SixteenBitTypesRoundTrip) {
  TempDir dir;
  const float values[] = {1.0f, -0.5f, 3.25f, 256.0f};  // exact in both 16-bit types
  const Tensor t = Tensor::from_floats({2, 2}, values);
  {
    h5::File f = h5::File::create(dir.file("t.h5"));
    f.write("/a/bf16", t.to_dtype(DType::bf16));
    f.write("/a/f16", t.to_dtype(DType::f16));
    f.write_attr("name", std::string("x"), "/a");
  }
  const h5::File f = h5::File::open(dir.file("t.h5"));
  EXPECT_EQ(f.list_datasets(), (std::vector<std::string>{"/a/bf16", "/a/f16"}));
  EXPECT_EQ(f.read_raw("/a/bf16").dtype(), DType::bf16);
  EXPECT_EQ(f.read_raw("/a/f16").dtype(), DType::f16);
  // HDF5's own conversion of our 16-bit layouts to float agrees with ours.
  for (const char* name : {"/a/bf16", "/a/f16"}) {
    const Tensor back = f.read_f32(name);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(back.f32()[i], values[i]) << name;
  }
  EXPECT_EQ(f.read_string_attr("name", "/a"), "x");
  EXPECT_THROW(f.read_f32("/a/missing"), InputError);
}

TEST(Hdf5, NotHdf5AndMissingFiles) {
  TempDir dir;
  std::ofstream(dir.file("text.h5")) << "not an HDF5 file";
  EXPECT_THROW(h5::File::open(dir.file("text.h5")), InputError);
  EXPECT_THROW(h5::File::open(dir.file("none.h5")), InputError);
}

TEST(Weights, RandomWeightsLoadInEveryDtype) {
  TempDir dir;
  const FluxConfig c = flux_preset("flux-tiny");
  auto cpu = make_cpu_backend();
  for (DType d : {DType::f32, DType::bf16, DType::f16}) {
    const std::string path = dir.file(std::string("w_") + dtype_name(d) + ".h5");
    write_random_weights(path, c.name, 5, d);
    EXPECT_EQ(weights_file_model(path), "flux-tiny");
    const ModelWeights w = load_weights(path, c.name, *cpu);
    const Tensor& qkv = w.get("double_blocks.1.img_attn.qkv.weight");
    EXPECT_EQ(qkv.shape(), (Shape{192, 64}));
    EXPECT_EQ(qkv.dtype(), d);  // weights keep their stored dtype
    EXPECT_EQ(w.get("single_blocks.0.norm.key_norm.scale").to_f32().f32()[3], 1.0f);
    // On request they are converted on load (a bf16 run of an f32 file).
    const ModelWeights as_bf16 = load_weights(path, c.name, *cpu, DType::bf16);
    EXPECT_EQ(as_bf16.get("double_blocks.1.img_attn.qkv.weight").dtype(), DType::bf16);
  }
  EXPECT_THROW(load_weights(dir.file("w_f32.h5"), "flux-small", *cpu), InputError);
}

TEST(Safetensors, ConvertRoundTrip) {
  TempDir dir;
  const FluxConfig c = flux_preset("flux-tiny");
  const auto tensors = random_flux_tensors(c);
  write_safetensors(dir.file("ckpt.safetensors"), tensors, DType::bf16, "BF16");
  EXPECT_EQ(convert_checkpoint(dir.file("ckpt.safetensors"), dir.file("w.h5"), "auto").preset, "flux-tiny");
  // The HDF5 file keeps bf16 and the values survive bit for bit.
  const h5::File f = h5::File::open(dir.file("w.h5"));
  EXPECT_EQ(f.read_raw("/double_blocks/0/txt_mlp/2/weight").dtype(), DType::bf16);
  auto cpu = make_cpu_backend();
  const ModelWeights w = load_weights(dir.file("w.h5"), c.name, *cpu);
  for (const auto& [name, t] : tensors) {
    const Tensor expect = t.to_dtype(DType::bf16).to_f32();
    const Tensor got = w.get(name).to_f32();
    ASSERT_EQ(got.numel(), expect.numel());
    for (int64_t i = 0; i < got.numel(); ++i) ASSERT_EQ(got.f32()[i], expect.f32()[i]) << name;
  }
}

TEST(Safetensors, RejectsBadCheckpoints) {
  TempDir dir;
  const FluxConfig c = flux_preset("flux-tiny");
  auto tensors = random_flux_tensors(c);
  // Another preset named explicitly: every mismatch listed, no output file.
  write_safetensors(dir.file("tiny.safetensors"), tensors, DType::f32, "F32");
  try {
    convert_checkpoint(dir.file("tiny.safetensors"), dir.file("out.h5"), "flux-small");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("img_in.weight has shape"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(dir.file("out.h5")));
  // A missing tensor: no preset matches.
  tensors.erase("final_layer.linear.bias");
  write_safetensors(dir.file("partial.safetensors"), tensors, DType::f32, "F32");
  EXPECT_THROW(convert_checkpoint(dir.file("partial.safetensors"), dir.file("out.h5"), "auto"), InputError);
  // An unsupported dtype names the tensor.
  write_safetensors(dir.file("i32.safetensors"), {{"x", Tensor::zeros({2})}}, DType::f32, "I32");
  EXPECT_THROW(SafetensorsFile(dir.file("i32.safetensors")), InputError);
  // Truncated data section.
  fs::resize_file(dir.file("tiny.safetensors"), fs::file_size(dir.file("tiny.safetensors")) - 100);
  EXPECT_THROW(SafetensorsFile(dir.file("tiny.safetensors")), InputError);
  EXPECT_FALSE(fs::exists(dir.file("out.h5")));
}

// The message of the InputError that `convert` throws (empty when it does not throw one).
std::string convert_error(const std::string& in, const std::string& out, const std::string& model) {
  try {
    convert_checkpoint(in, out, model);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, StripsTheComfyUiPrefix) {
  TempDir dir;
  // A ComfyUI single-file checkpoint: the transformer under model.diffusion_model., with an
  // autoencoder and a text encoder beside it.
  std::map<std::string, Tensor> tensors;
  for (const auto& [name, t] : random_flux_tensors(flux_preset("flux-tiny")))
    tensors["model.diffusion_model." + name] = t;
  tensors["vae.decoder.conv_in.weight"] = Tensor::zeros({4});
  tensors["text_encoders.clip_l.proj.weight"] = Tensor::zeros({2, 2});
  write_safetensors(dir.file("comfy.safetensors"), tensors, DType::bf16, "BF16");
  convert_checkpoint(dir.file("comfy.safetensors"), dir.file("w.h5"), "auto");
  auto cpu = make_cpu_backend();
  const ModelWeights w = load_weights(dir.file("w.h5"), "flux-tiny", *cpu);  // every tensor, no others
  EXPECT_EQ(w.get("img_in.weight").dtype(), DType::bf16);
}

TEST(Safetensors, SummarisesAnotherPresetsCheckpoint) {
  TempDir dir;
  // flux-tiny's tensors against flux-dev: hundreds of differences, summarised in a few lines
  // that say which preset the checkpoint is.
  write_safetensors(dir.file("tiny.safetensors"), random_flux_tensors(flux_preset("flux-tiny")), DType::bf16,
                    "BF16");
  const std::string msg = convert_error(dir.file("tiny.safetensors"), dir.file("out.h5"), "flux-dev");
  EXPECT_NE(msg.find("does not match preset flux-dev ("), std::string::npos) << msg;
  EXPECT_NE(msg.find("it looks like flux-tiny, which it matches exactly"), std::string::npos) << msg;
  EXPECT_NE(msg.find(" missing"), std::string::npos) << msg;
  EXPECT_NE(msg.find("with another shape"), std::string::npos) << msg;
  EXPECT_LE(std::count(msg.begin(), msg.end(), '\n'), 16) << msg;
  EXPECT_FALSE(fs::exists(dir.file("out.h5")));
  // Close to no preset: the closest is named, and its problems listed in full when few.
  auto tensors = random_flux_tensors(flux_preset("flux-tiny"));
  tensors.erase("final_layer.linear.bias");
  tensors["img_in.weight"] = Tensor::zeros({3, 3});
  write_safetensors(dir.file("partial.safetensors"), tensors, DType::f32, "F32");
  const std::string partial = convert_error(dir.file("partial.safetensors"), dir.file("out.h5"), "auto");
  EXPECT_NE(partial.find("does not match preset flux-tiny (2 problems: 1 missing, 1 with another shape); "
                         "no preset matches it; flux-tiny is the closest"),
            std::string::npos)
      << partial;
  EXPECT_NE(partial.find("missing tensor final_layer.linear.bias"), std::string::npos) << partial;
  // Keys of another naming (neither the original release's nor diffusers'): said so.
  write_safetensors(dir.file("renamed.safetensors"), {{"model.layers.0.mlp.weight", Tensor::zeros({2})}},
                    DType::f32, "F32");
  const std::string renamed = convert_error(dir.file("renamed.safetensors"), dir.file("out.h5"), "auto");
  EXPECT_NE(renamed.find("none of its tensor names is a key of a preset"), std::string::npos) << renamed;
  // Diffusers' names are read as such: what is missing is named by the preset's key.
  write_safetensors(dir.file("diffusers.safetensors"),
                    {{"transformer_blocks.0.attn.to_q.weight", Tensor::zeros({64, 64})}}, DType::f32, "F32");
  const std::string diffusers = convert_error(dir.file("diffusers.safetensors"), dir.file("out.h5"), "flux-tiny");
  EXPECT_NE(diffusers.find("read as diffusers' layout"), std::string::npos) << diffusers;
  EXPECT_NE(diffusers.find("(84 problems: 84 missing)"), std::string::npos) << diffusers;
  EXPECT_EQ(diffusers.find("none of its tensor names"), std::string::npos) << diffusers;
}

// F8_E4M3 checkpoints (flux1-dev-fp8, ComfyUI's scaled ones) are widened to bf16: each value
// exactly (every E4M3 value is a bf16 value), times the tensor's scale where NAME.scale_weight
// is stored (rounded once); the scale tensors and the scaled_fp8 marker are not written.
TEST(Safetensors, WidensE4m3ToBf16WithItsScale) {
  TempDir dir;
  std::map<std::string, Tensor> stored;
  std::map<std::string, float> scales;
  for (const auto& [name, t] : random_flux_tensors(flux_preset("flux-tiny"))) {
    Tensor scaled = t.clone();
    // Weights of the blocks get a per-tensor scale (values / scale fill E4M3's range), the rest none.
    const bool with_scale = name.ends_with(".weight") && name.find("blocks.") != std::string::npos;
    if (with_scale) {
      scales[name] = 0.0625f / 448.0f * float(1 + stored.size() % 7);
      for (int64_t i = 0; i < scaled.numel(); ++i) scaled.f32()[i] /= scales[name];
      const std::string stem = name.substr(0, name.size() - 7);
      stored[stem + ".scale_weight"] = Tensor::from_floats({1}, std::vector<float>{scales[name]});
      stored[stem + ".scale_input"] = Tensor::from_floats({1}, std::vector<float>{1.0f});
    }
    stored[name] = scaled.to_dtype(DType::e4m3);
  }
  stored["scaled_fp8"] = Tensor::zeros({0}).to_dtype(DType::e4m3);
  write_stored_safetensors(dir.file("fp8.safetensors"), stored, {{DType::e4m3, "F8_E4M3"}, {DType::f32, "F32"}});
  const ConvertedCheckpoint done = convert_checkpoint(dir.file("fp8.safetensors"), dir.file("w.h5"), "auto");
  EXPECT_EQ(done.preset, "flux-tiny");
  EXPECT_EQ(done.widened_e4m3, std::ssize(preset_weight_specs("flux-tiny")));
  EXPECT_EQ(done.scaled_e4m3, std::ssize(scales));
  const WeightsFile file(dir.file("w.h5"));
  for (const WeightSpec& spec : preset_weight_specs("flux-tiny")) {
    const Tensor got = file.read(spec.name);
    ASSERT_EQ(got.dtype(), DType::bf16) << spec.name;
    const Tensor e4m3 = stored.at(spec.name).to_f32();
    Tensor expected(spec.shape);
    const float scale = scales.count(spec.name) ? scales.at(spec.name) : 1.0f;
    for (int64_t i = 0; i < expected.numel(); ++i) expected.f32()[i] = e4m3.f32()[i] * scale;
    const Tensor want = expected.to_dtype(DType::bf16);
    ASSERT_EQ(std::memcmp(got.raw(), want.raw(), want.bytes()), 0) << spec.name;
  }
  // A per-channel scale is refused, naming it.
  stored["double_blocks.0.img_attn.qkv.scale_weight"] = Tensor::zeros({192});
  write_stored_safetensors(dir.file("rows.safetensors"), stored, {{DType::e4m3, "F8_E4M3"}, {DType::f32, "F32"}});
  const std::string msg = convert_error(dir.file("rows.safetensors"), dir.file("out.h5"), "auto");
  EXPECT_NE(msg.find("double_blocks.0.img_attn.qkv.scale_weight has shape [192]"), std::string::npos) << msg;
}

TEST(Prompts, BatchSeedIsOffsetByTheImageIndex) {
  TempDir dir;
  const std::string path = dir.file("p.h5");
  PromptBatchSpec spec;
  spec.count = 3;
  spec.txt_len = 2;
  spec.seed = 40;
  write_random_prompts(path, flux_preset("flux-tiny"), spec);
  // Drop the per-prompt seeds of images 1 and 2: the batch seed applies, plus the index.
  {
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    for (const char* group : {"/prompts/1", "/prompts/2"})
      ASSERT_GE(H5Adelete_by_name(f, group, "seed", H5P_DEFAULT), 0);
    H5Fclose(f);
  }
  const PromptsFile prompts(path);
  EXPECT_EQ(*prompts.settings(0).seed, 40);
  EXPECT_EQ(*prompts.settings(1).seed, 41);
  EXPECT_EQ(*prompts.settings(2).seed, 42);
  // Another format version is refused.
  h5::File::open(path);  // still fine
  {
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const int64_t v = 2;
    const hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Fclose(f);
  }
  EXPECT_THROW(PromptsFile{path}, InputError);
}

TEST(Png, RoundTripWithTextChunks) {
  TempDir dir;
  Tensor image({3, 5, 7});  // [3, H, W] with values across [0, 1] and beyond (clamped)
  for (int64_t i = 0; i < image.numel(); ++i) image.f32()[i] = float(i % 23) / 20.0f - 0.05f;
  write_png(dir.file("a.png"), image, {{"seed", "7"}, {"model", "flux-tiny"}});
  const PngImage back = read_png(dir.file("a.png"));
  ASSERT_EQ(back.image.shape(), image.shape());
  for (int64_t i = 0; i < image.numel(); ++i)
    ASSERT_NEAR(back.image.f32()[i], std::clamp(image.f32()[i], 0.0f, 1.0f), 0.5 / 255 + 1e-6);
  EXPECT_EQ(back.text.at("seed"), "7");
  EXPECT_EQ(back.text.at("model"), "flux-tiny");
  EXPECT_THROW(read_png(dir.file("missing.png")), IoError);
}

TEST(AtomicOutput, NothingVisibleWithoutCommit) {
  TempDir dir;
  {
    AtomicOutput out(dir.file("result.h5"));
    std::ofstream(out.temp_path()) << "partial";
    EXPECT_TRUE(fs::exists(out.temp_path()));
  }  // destroyed without commit: an error happened
  EXPECT_FALSE(fs::exists(dir.file("result.h5")));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.file("")), fs::directory_iterator()), 0);
  {
    AtomicOutput out(dir.file("result.h5"));
    std::ofstream(out.temp_path()) << "complete";
    out.commit();
  }
  EXPECT_TRUE(fs::exists(dir.file("result.h5")));
  EXPECT_THROW(AtomicOutput(dir.file("result.h5") + "/sub/x.h5"), IoError);
}

// A result that does not read back (truncated, 0 bytes) is an IoError, and resume names why
// it cannot trust a result: another version, other digests (which ones), a damaged file.
TEST(Reliability, ResultsAreReadBackAndCheckedAgainstTheirRecord) {
  TempDir dir;
  ImageProvenance p;
  p.model = "flux-tiny";
  p.digests = {"w1", "p1", "s1", "all1"};
  const std::string path = dir.file("img_0.h5");
  Tensor latent({16, 2, 2});
  for (int64_t i = 0; i < latent.numel(); ++i) latent.f32()[i] = float(i);
  write_image_result(path, latent, p);
  EXPECT_NO_THROW(h5::verify_readable(path));
  EXPECT_EQ(image_result_mismatch(path, p.digests), "");
  EXPECT_EQ(image_result_mismatch(path, {"w1", "p2", "s2", "all2"}),
            "was made with other prompt, settings than this run");
  // Truncated copies and an empty file do not read back.
  const auto size = fs::file_size(path);
  for (const uintmax_t keep : {uintmax_t(0), size / 2, size - 1}) {
    const std::string cut = dir.file("cut.h5");
    fs::copy_file(path, cut, fs::copy_options::overwrite_existing);
    fs::resize_file(cut, keep);
    EXPECT_THROW(h5::verify_readable(cut), Error) << keep << " bytes";
    EXPECT_TRUE(image_result_mismatch(cut, p.digests).starts_with("does not open")) << keep << " bytes";
  }
  // A damaged file's implausible extent is refused as input, not left to fail the allocation
  // (found by fuzz/fuzz_h5_readers). HDF5 allocates a contiguous dataset only when written.
  {
    h5::File huge = h5::File::create(dir.file("huge.h5"));
    const hsize_t dims[2] = {hsize_t(1) << 21, hsize_t(1) << 21};
    const hid_t space = H5Screate_simple(2, dims, nullptr);
    const hid_t ds = H5Dcreate2(huge.id(), "/x", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    H5Dclose(ds);
    H5Sclose(space);
    huge.close();
    EXPECT_THROW(h5::File::open(dir.file("huge.h5")).read_f32("/x"), InputError);
  }
  // Digests tell tensors apart by bytes, dtype and shape; NaNs of every float dtype are counted.
  Tensor a({2, 3}), b({3, 2});
  for (int64_t i = 0; i < 6; ++i) a.f32()[i] = b.f32()[i] = float(i);
  EXPECT_NE(Digest().tensor(a).hex(), Digest().tensor(b).hex());
  EXPECT_EQ(Digest().tensor(a).hex(), Digest().tensor(a.clone()).hex());
  a.f32()[4] = std::nanf("");
  a.f32()[5] = INFINITY;
  EXPECT_EQ(count_nonfinite_host(a), 2);
  EXPECT_EQ(count_nonfinite_host(a.to_dtype(DType::bf16)), 2);
  EXPECT_EQ(count_nonfinite_host(a.to_dtype(DType::f16)), 2);
  EXPECT_EQ(count_nonfinite_host(b.to_dtype(DType::f16)), 0);
}

TEST(Golden, ForwardMatchesPyTorchReference) {
  const std::string g = FRESCO_GOLDEN_DIR;
  const FluxConfig c = preset_for_weights(g + "/flux_tiny_weights.h5", "auto");
  auto cpu = make_cpu_backend();
  FluxTransformer model(c, load_weights(g + "/flux_tiny_weights.h5", c.name, *cpu), *cpu);
  const ForwardInputs in = read_forward_inputs(g + "/flux_tiny_inputs.h5", c);
  model.set_condition(in.txt, in.y, in.grid_h, in.grid_w);
  Tensor v1({in.grid_h * in.grid_w, 64}), v2({in.grid_h * in.grid_w, 64});
  model.forward(in.img, float(in.t), float(in.guidance), v1);
  model.forward(in.img, float(in.t), float(in.guidance), v2);  // buffers reused: same bits
  const Tensor expect = h5::File::open(g + "/flux_tiny_velocity.h5").read_f32("/velocity");
  EXPECT_LT(difference(v1, expect).relative_l2, 1e-5);
  EXPECT_EQ(std::memcmp(v1.raw(), v2.raw(), v1.bytes()), 0);
}

// The bf16 mode (bf16 weights and activations, f32 accumulation, one rounding per op store)
// against the float64 golden, held to flash-attention's rule: its error may be at most a small
// multiple of the error of a naive same-precision reference (PyTorch bf16 eager,
// tests/golden/make_bf16_golden.py), and it must be a real bf16 error, not the f32 one.
TEST(Golden, Bf16ForwardWithinSamePrecisionReference) {
  constexpr double kFactor = 2.0;  // the rule's multiple; measured ratio in docs/architecture.md
  const std::string g = FRESCO_GOLDEN_DIR;
  const FluxConfig c = preset_for_weights(g + "/flux_tiny_weights.h5", "auto");
  auto cpu = make_cpu_backend();
  FluxTransformer model(c, load_weights(g + "/flux_tiny_weights.h5", c.name, *cpu, DType::bf16), *cpu,
                        std::make_unique<LocalAttention>(), DType::bf16);
  const ForwardInputs in = read_forward_inputs(g + "/flux_tiny_inputs.h5", c);
  model.set_condition(in.txt, in.y, in.grid_h, in.grid_w);
  Tensor v({in.grid_h * in.grid_w, 64});
  model.forward(in.img, float(in.t), float(in.guidance), v);
  const Tensor exact = h5::File::open(g + "/flux_tiny_velocity.h5").read_f32("/velocity");
  const Tensor naive = h5::File::open(g + "/flux_tiny_velocity_bf16.h5").read_f32("/velocity");
  const double ours = difference(v, exact).relative_l2, theirs = difference(naive, exact).relative_l2;
  std::printf("bf16 forward: relative L2 %.3e (PyTorch bf16 eager %.3e, ratio %.2f)\n", ours, theirs,
              ours / theirs);
  EXPECT_LT(ours, kFactor * theirs);
  EXPECT_GT(ours, 1e-4);  // the activations really were rounded to bf16
}

// A denoising step allocates nothing: every buffer comes from set_condition's arena (reused
// for a later image of the same shape) and the strategy's prepare().
TEST(Model, StepAllocatesNothing) {
  const std::string g = FRESCO_GOLDEN_DIR;
  const FluxConfig c = preset_for_weights(g + "/flux_tiny_weights.h5", "auto");
  auto cpu = make_cpu_backend();
  for (DType compute : {DType::f32, DType::bf16}) {
    FluxTransformer model(c, load_weights(g + "/flux_tiny_weights.h5", c.name, *cpu), *cpu,
                          std::make_unique<LocalAttention>(), compute);
    const ForwardInputs in = read_forward_inputs(g + "/flux_tiny_inputs.h5", c);
    const Tensor img = cpu->upload(in.img), v = cpu->alloc({in.grid_h * in.grid_w, 64}, DType::f32);
    const Tensor scalars = cpu->upload(Tensor::from_floats({2}, std::vector<float>{0.7f, 3.5f}));
    model.set_condition(in.txt, in.y, in.grid_h, in.grid_w);
    const uint64_t before = Storage::created();
    model.forward(img, scalars, v);
    model.forward(img, scalars, v);
    EXPECT_EQ(Storage::created(), before) << dtype_name(compute);
    model.set_condition(in.txt, in.y, in.grid_h, in.grid_w);  // next image, same shape
    const uint64_t next_image = Storage::created();
    model.forward(img, scalars, v);
    EXPECT_EQ(Storage::created(), next_image) << dtype_name(compute);
  }
}

TEST(Golden, VaeDecoderMatchesPyTorchReference) {
  const std::string g = FRESCO_GOLDEN_DIR;
  auto cpu = make_cpu_backend();
  VaeDecoder decoder(vae_preset("ae-tiny"), load_weights(g + "/ae_tiny_weights.h5", "ae-tiny", *cpu), *cpu);
  const h5::File ref = h5::File::open(g + "/ae_tiny_decode.h5");
  const Tensor latent = ref.read_f32("/latent");
  LocalRows rows(latent.dim(1));
  const Tensor decoded = cpu->download(decoder.decode(latent, rows));
  EXPECT_EQ(decoded.shape(), (Shape{3, 20, 12}));
  EXPECT_LT(difference(decoded, ref.read_f32("/decoded")).relative_l2, 1e-5);
  EXPECT_LT(difference(decoded_to_image(decoded), ref.read_f32("/image")).relative_l2, 1e-5);
  // A second decode of the same shape reuses the first one's buffers.
  const uint64_t before = Storage::created();
  const Tensor again = decoder.decode(latent, rows);
  EXPECT_EQ(Storage::created(), before);
  EXPECT_EQ(std::memcmp(cpu->download(again).raw(), decoded.raw(), decoded.bytes()), 0);
}

// The decoder in bf16 stays close to the float64 reference (bf16 activations and weights).
TEST(Golden, VaeDecoderBf16) {
  const std::string g = FRESCO_GOLDEN_DIR;
  auto cpu = make_cpu_backend();
  VaeDecoder decoder(vae_preset("ae-tiny"), load_weights(g + "/ae_tiny_weights.h5", "ae-tiny", *cpu, DType::bf16),
                     *cpu, DType::bf16);
  const h5::File ref = h5::File::open(g + "/ae_tiny_decode.h5");
  const Tensor latent = ref.read_f32("/latent");
  LocalRows rows(latent.dim(1));
  const Tensor decoded = cpu->download(decoder.decode(latent, rows)).to_f32();
  const double err = difference(decoded, ref.read_f32("/decoded")).relative_l2;
  std::printf("bf16 decoder: relative L2 %.3e\n", err);
  EXPECT_LT(err, 3e-2);
  EXPECT_GT(err, 1e-4);
}
