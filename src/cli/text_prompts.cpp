#include "src/cli/text_prompts.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "io/atomic_output.hpp"
#include "io/h5_file.hpp"

namespace fresco::cli {

void add_text_encoder_options(po::options_description& o, bool required) {
  const auto text = [required] {
    auto* v = po::value<std::string>();
    return required ? v->required() : v;
  };
  o.add_options()
      ("t5", text(),
       "T5 encoder weights (fresco-weights, t5-xxl or t5-tiny), or random:SEED: t5-xxl's random\n"
       "weights made on the device (timing the full size without a checkpoint)")
      ("clip", text(), "CLIP text encoder weights (fresco-weights, clip-l or clip-tiny), or random:SEED (clip-l's)")
      ("tokenizers", text(), "folder with tokenizer_2/spiece.model, tokenizer/vocab.json, tokenizer/merges.txt")
      ("t5-tokens", po::value<int64_t>()->default_value(512),
       "T5 tokens per prompt, padded or truncated: 512 for FLUX.1-dev, 256 for FLUX.1-schnell");
}

std::optional<TextEncoderOptions> text_encoder_options(const po::variables_map& vm) {
  const int given = int(vm.count("t5")) + int(vm.count("clip")) + int(vm.count("tokenizers"));
  if (given == 0) return std::nullopt;
  require_input(given == 3, "options --t5, --clip and --tokenizers go together (the text encoders and their "
                            "tokenizers): give all three");
  require_positive(vm, "t5-tokens");
  return TextEncoderOptions{{vm["t5"].as<std::string>(), vm["clip"].as<std::string>(),
                             vm["tokenizers"].as<std::string>()},
                            vm["t5-tokens"].as<int64_t>()};
}

void encode_prompt_list(const std::vector<TextPrompt>& prompts, const TextEncoderOptions& encoders,
                        const std::string& backend_name, int device, DType compute, const std::string& out,
                        const std::string& label) {
  const auto start = std::chrono::steady_clock::now();
  // Declared in this order so that the encoder (its weights and buffers) goes before its backend.
  const std::unique_ptr<Backend> backend = make_backend(backend_name, device);
  PromptEncoder encoder(encoders.files, encoders.t5_tokens, *backend, compute);
  const std::string model = encoder.t5_config().name + "+" + encoder.clip_config().name;
  // Per-prompt times after the first (which also allocates the encoders' buffers).
  double t5_ms = 0, clip_ms = 0;
  write_prompts_file(out, model, PromptSettings{}, int64_t(prompts.size()), [&](int64_t i) {
    const TextPrompt& p = prompts[size_t(i)];
    PromptEntry entry = encoder.encode(p.text);
    entry.settings = p.settings;
    if (i > 0 || prompts.size() == 1) {
      t5_ms += encoder.times().t5_ms;
      clip_ms += encoder.times().clip_ms;
    }
    return entry;
  });
  const double timed = prompts.size() == 1 ? 1.0 : double(prompts.size() - 1);
  std::printf("%s: weights %.1f MB loaded in %.2f s; T5 %.2f ms and CLIP %.2f ms per prompt (%s)\n", label.c_str(),
              double(encoder.weight_bytes()) / 1e6, encoder.times().load_s, t5_ms / timed, clip_ms / timed,
              prompts.size() == 1 ? "one prompt, buffers allocated in it" : "mean after the first prompt");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s: wrote %s (%zu prompts; %s with %lld T5 tokens, %s; %s %s; %.1f s)\n", label.c_str(), out.c_str(),
              prompts.size(), encoder.t5_config().name.c_str(), (long long)encoders.t5_tokens,
              encoder.clip_config().name.c_str(), backend_name.c_str(), dtype_name(compute), seconds);
}

std::string prompt_batch_for_generate(const po::variables_map& vm, const MpiSession& mpi, const EngineChoice& engine,
                                      const std::string& out_dir) {
  const std::string path = vm["prompts"].as<std::string>();
  const std::optional<TextEncoderOptions> encoders = text_encoder_options(vm);
  std::error_code ec;
  const bool text_list = std::filesystem::is_regular_file(path, ec) && !h5::is_hdf5_file(path);
  if (!text_list) {  // a batch, or what PromptsFile then names (missing, a directory...)
    require_input(!encoders || !h5::is_hdf5_file(path),
                  "options --t5, --clip and --tokenizers encode a text prompt list, but " + path +
                      " is a prompt batch (HDF5), encoded already: leave them out");
    return path;
  }
  require_input(encoders.has_value(),
                path + " is a text prompt list, not a prompt batch (HDF5): add --t5 T5.h5 --clip CLIP.h5 "
                       "--tokenizers DIR (the text encoders, docs/text-encoders.md) to encode it in generate, "
                       "or make the batch with fresco encode first");
  // Every rank reads the list, so its errors stop all ranks alike before the encoding.
  const std::vector<TextPrompt> prompts = read_prompt_list(path);
  ensure_writable_directory(out_dir);
  const std::string batch = out_dir + "/prompts.h5";
  collective_setup(mpi, [&] {
    if (mpi.rank() == 0)
      encode_prompt_list(prompts, *encoders, engine.backend, mpi.local_rank(), engine.compute, batch,
                         "fresco generate");
  });
  return batch;
}

}  // namespace fresco::cli
