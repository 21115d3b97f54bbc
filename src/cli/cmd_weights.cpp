// `fresco init-weights` (random weights of a preset) and `fresco convert` (safetensors
// checkpoint to Fresco's HDF5 weights format).
#include <cstdio>
#include <string>

#include "io/atomic_output.hpp"
#include "io/h5_file.hpp"
#include "src/model/checkpoint_convert.hpp"
#include "src/model/fp8_weights.hpp"
#include "src/model/weights_io.hpp"
#include "src/cli/commands.hpp"
#include "src/model/model_registry.hpp"

namespace fresco::cli {
namespace {

// Only rank 0 writes a single output file; the other ranks have nothing to do.
bool writes_here(const RunContext& ctx) { return ctx.mpi.rank() == 0; }

}  // namespace

Command init_weights_command() {
  Command c;
  c.name = "init-weights";
  c.summary = "write random weights of a preset (tests, demos, benchmarks)";
  c.usage = "fresco init-weights --model PRESET [--seed S] [--dtype f32|bf16|f16] OUT.h5";
  c.details =
      "Transformer presets (flux-dev, flux-schnell, flux-small, flux-tiny, qwen-image, qwen-tiny),\n"
      "autoencoder "
      "presets (flux-ae, ae-small, ae-tiny) and text-encoder presets (t5-xxl, t5-tiny, clip-l,\n"
      "clip-tiny). Linear weights are N(0, 0.02), convolution weights\n"
      "N(0, 1/sqrt(fan_in)), biases N(0, 0.002), norm scales 1 and norm biases 0, drawn from a\n"
      "counter-based RNG: the same seed always gives the same file.";
  c.add_options = [](po::options_description& o, po::positional_options_description& p) {
    o.add_options()
        ("model", po::value<std::string>()->required(),
         "preset: flux-dev, flux-schnell, flux-small, flux-tiny, qwen-image, qwen-tiny, flux-ae, ae-small, ae-tiny, t5-xxl, "
         "t5-tiny, clip-l, clip-tiny")
        ("seed", po::value<uint64_t>()->default_value(0), "random seed")
        ("dtype", po::value<std::string>()->default_value("f32"), "stored type: f32, bf16 or f16")
        ("output", po::value<std::string>()->required(), "output file (also the positional argument)");
    p.add("output", 1);
  };
  c.setup = [](const po::variables_map& vm, const RunContext& ctx) -> std::function<int()> {
    const std::string model = vm["model"].as<std::string>();
    const auto specs = preset_weight_specs(model);  // rejects an unknown preset
    const DType dtype = parse_dtype_option("dtype", vm["dtype"].as<std::string>());
    const std::string out = vm["output"].as<std::string>();
    ensure_output_path(out);
    const uint64_t seed = vm["seed"].as<uint64_t>();
    return [=]() {
      if (!writes_here(ctx)) return 0;
      write_random_weights(out, model, seed, dtype);
      int64_t parameters = 0;
      for (const auto& s : specs) parameters += shape_numel(s.shape);
      std::printf("fresco init-weights: wrote %s (%s, %lld parameters, %s)\n", out.c_str(),
                  model.c_str(), (long long)parameters, dtype_name(dtype));
      return 0;
    };
  };
  return c;
}

Command convert_command() {
  Command c;
  c.name = "convert";
  c.summary = "convert a FLUX (or FLUX autoencoder) checkpoint to a Fresco weights file";
  c.usage = "fresco convert [--model auto|PRESET] [--dtype keep|fp8] IN OUT.h5";
  c.details =
      "IN is a safetensors checkpoint: one file, the index of a sharded one\n"
      "(*.safetensors.index.json), or a folder holding either (diffusers' transformer/ or vae/).\n"
      "Names: those of the original FLUX.1 release (flux1-dev.safetensors, ae.safetensors), or\n"
      "diffusers' (renamed to the original's, q/k/v fused; docs/checkpoints.md has the table).\n"
      "Keys under model.diffusion_model. (ComfyUI's checkpoints) are taken without that prefix and\n"
      "the other tensors left out; for autoencoder presets so are encoder.*; for the text\n"
      "encoders (HF's text_encoder/, text_encoder_2/) CLIP's buffer text_model.embeddings.position_ids\n"
      "and T5's encoder.embed_tokens.weight (tied to shared.weight). F32, F16 and BF16\n"
      "tensors keep their dtype; F8_E4M3 ones (flux1-dev-fp8) are widened to bf16, times their\n"
      "per-tensor scale (NAME.scale_weight) when the checkpoint has one. The checkpoint must\n"
      "match the preset's weight table exactly; a mismatch is summarised with the preset the\n"
      "checkpoint does match, or the closest one.\n"
      "--dtype fp8 writes an FP8 weights file (FLUX transformer presets): the token linears'\n"
      "weights (qkv, proj, MLP, linear1, linear2) as e4m3 with one f32 scale per output channel,\n"
      "quantized exactly as --dtype fp8 does at set-up, everything else as it was: about half the\n"
      "size of a bf16 file and of its load time. IN may then also be a Fresco weights file (.h5,\n"
      "bf16 or f32) to rewrite. Such a file runs with --dtype fp8 from the stored e4m3 weights (the\n"
      "same result, bit for bit, as --dtype fp8 from the file it was made from); with another\n"
      "--dtype its linears are dequantized (q x scale); --fp8-bf16-steps and --lora need the bf16\n"
      "file. docs/file-formats.md describes the format.";
  c.add_options = [](po::options_description& o, po::positional_options_description& p) {
    o.add_options()
        ("input", po::value<std::string>()->required(), "safetensors file, index json or folder (first positional)")
        ("output", po::value<std::string>()->required(), "output HDF5 file (second positional)")
        ("model", po::value<std::string>()->default_value("auto"),
         "preset the checkpoint is for; auto picks the preset whose weight table matches")
        ("dtype", po::value<std::string>()->default_value("keep"),
         "keep (every tensor in its stored dtype) or fp8 (an FP8 weights file: the token linears in e4m3 "
         "with per-output-channel scales; IN may be a Fresco .h5 weights file)");
    p.add("input", 1).add("output", 1);
  };
  c.setup = [](const po::variables_map& vm, const RunContext& ctx) -> std::function<int()> {
    const std::string in = vm["input"].as<std::string>(), out = vm["output"].as<std::string>();
    const std::string model = vm["model"].as<std::string>();
    if (model != "auto") preset_weight_specs(model);  // rejects an unknown name before any work
    const std::string dtype = vm["dtype"].as<std::string>();
    require_input(dtype == "keep" || dtype == "fp8", "option --dtype: expected keep or fp8, got '" + dtype + "'");
    const bool fp8 = dtype == "fp8";
    ensure_output_path(out);
    return [=]() {
      if (!writes_here(ctx)) return 0;
      if (fp8 && h5::is_hdf5_file(in)) {  // a Fresco weights file rewritten
        const std::string preset = weights_file_model(in);
        require_input(model == "auto" || model == preset, in + " holds weights of preset " + preset + ", not " + model);
        const Fp8Conversion done = write_fp8_weights_file(in, out);
        std::printf("fresco convert: wrote %s (preset %s; FP8 weights file: %lld token linears in e4m3 with "
                    "per-output-channel scales)\n",
                    out.c_str(), done.preset.c_str(), (long long)done.quantized);
        return 0;
      }
      const ConvertedCheckpoint done = convert_checkpoint(in, out, model, fp8);
      std::string how = "; " + done.layout + " layout";
      if (done.shards > 1) how += ", " + std::to_string(done.shards) + " shards";
      if (!done.stripped_prefix.empty()) how += "; keys under " + done.stripped_prefix + ", prefix removed";
      if (done.left_out > 0) how += "; " + std::to_string(done.left_out) + " other tensor(s) left out";
      for (const std::string& dropped : done.dropped) how += "; left out " + dropped;
      if (done.widened_e4m3 > 0)
        how += "; " + std::to_string(done.widened_e4m3) + " F8_E4M3 tensor(s) widened to bf16 (" +
               std::to_string(done.scaled_e4m3) + " with a per-tensor scale)";
      if (fp8)
        how += "; FP8 weights file: " + std::to_string(done.quantized) +
               " token linears in e4m3 with per-output-channel scales";
      std::printf("fresco convert: wrote %s (preset %s%s)\n", out.c_str(), done.preset.c_str(), how.c_str());
      return 0;
    };
  };
  return c;
}

}  // namespace fresco::cli
