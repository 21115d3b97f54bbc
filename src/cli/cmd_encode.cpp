// `fresco encode`: text prompts in, a prompt batch of T5 and CLIP embeddings out
// (docs/text-encoders.md, "fresco encode").
#include <chrono>
#include <cstdio>

#include "io/atomic_output.hpp"
#include "io/prompt_list.hpp"
#include "src/cli/commands.hpp"
#include "src/model/prompt_encoder.hpp"

namespace fresco::cli {

Command encode_command() {
  Command c;
  c.name = "encode";
  c.summary = "encode text prompts with T5 and CLIP into a prompt batch (the input of generate)";
  c.usage = "fresco encode --t5 T5.h5 --clip CLIP.h5 --tokenizers DIR [--t5-tokens 512] PROMPTS OUT.h5";
  c.details =
      "PROMPTS is a text file (one prompt a line, blank lines skipped) or a .jsonl file (one\n"
      "{\"prompt\": ..., \"seed\": ..., \"width\": ..., \"height\": ..., \"steps\": ..., \"guidance\": ...}\n"
      "a line; all but prompt optional). Each prompt is tokenized (T5: SentencePiece, padded to\n"
      "--t5-tokens; CLIP: byte-level BPE, 77 tokens) and encoded as FLUX.1 does: T5's last hidden\n"
      "state becomes /prompts/{i}/txt [t5-tokens, 4096], CLIP's pooled output /prompts/{i}/y [768];\n"
      "the text and the JSONL settings become the prompt's attributes. --t5 and --clip are\n"
      "fresco-weights files of the presets t5-xxl and clip-l (or the test sizes t5-tiny, clip-tiny);\n"
      "--tokenizers is a folder laid out as FLUX.1's Hugging Face repository: tokenizer_2/spiece.model,\n"
      "tokenizer/vocab.json, tokenizer/merges.txt. Runs on the first rank only. Prints the weights'\n"
      "size and load time and each encoder's time per prompt (the mean after the first prompt).";
  c.add_options = [](po::options_description& o, po::positional_options_description& p) {
    o.add_options()
        ("t5", po::value<std::string>()->required(),
         "T5 encoder weights (fresco-weights, t5-xxl or t5-tiny), or random:SEED: t5-xxl's random\n"
         "weights made on the device (timing the full size without a checkpoint)")
        ("clip", po::value<std::string>()->required(),
         "CLIP text encoder weights (fresco-weights, clip-l or clip-tiny), or random:SEED (clip-l's)")
        ("tokenizers", po::value<std::string>()->required(),
         "folder with tokenizer_2/spiece.model, tokenizer/vocab.json, tokenizer/merges.txt")
        ("t5-tokens", po::value<int64_t>()->default_value(512),
         "T5 tokens per prompt, padded or truncated: 512 for FLUX.1-dev, 256 for FLUX.1-schnell")
        ("backend", po::value<std::string>()->default_value("auto"), "auto (cuda where a GPU is present), cpu or cuda")
        ("dtype", po::value<std::string>()->default_value("auto"), "auto (bf16 on cuda, f32 on cpu), f32 or bf16")
        ("input", po::value<std::string>()->required(), "prompt list: text or .jsonl (first positional)")
        ("output", po::value<std::string>()->required(), "prompt batch HDF5 to write (second positional)");
    p.add("input", 1).add("output", 1);
  };
  c.setup = [](const po::variables_map& vm, const RunContext& ctx) -> std::function<int()> {
    require_positive(vm, "t5-tokens");
    const std::string backend_name = backend_option(vm);
    const std::string dtype_text = vm["dtype"].as<std::string>();
    const DType compute = dtype_text == "auto" ? (backend_name == "cuda" ? DType::bf16 : DType::f32)
                                               : parse_dtype_option("dtype", dtype_text);
    require_input(compute == DType::f32 || compute == DType::bf16,
                  "option --dtype: the encoders run in f32 or bf16 (got " + dtype_text + ")");
    const PromptEncoderFiles files{vm["t5"].as<std::string>(), vm["clip"].as<std::string>(),
                                   vm["tokenizers"].as<std::string>()};
    const int64_t t5_tokens = vm["t5-tokens"].as<int64_t>();
    const std::string in = vm["input"].as<std::string>(), out = vm["output"].as<std::string>();
    const std::vector<TextPrompt> prompts = read_prompt_list(in);  // its errors before any work
    ensure_output_path(out);
    return [=, &mpi = ctx.mpi]() {
      if (mpi.rank() != 0) return 0;
      const auto start = std::chrono::steady_clock::now();
      const std::unique_ptr<Backend> backend = make_backend(backend_name, mpi.local_rank());
      PromptEncoder encoder(files, t5_tokens, *backend, compute);
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
      std::printf("fresco encode: weights %.1f MB loaded in %.2f s; T5 %.2f ms and CLIP %.2f ms per prompt (%s)\n",
                  double(encoder.weight_bytes()) / 1e6, encoder.times().load_s, t5_ms / timed, clip_ms / timed,
                  prompts.size() == 1 ? "one prompt, buffers allocated in it" : "mean after the first prompt");
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("fresco encode: wrote %s (%zu prompts; %s with %lld T5 tokens, %s; %s %s; %.1f s)\n", out.c_str(),
                  prompts.size(), encoder.t5_config().name.c_str(), (long long)t5_tokens,
                  encoder.clip_config().name.c_str(), backend_name.c_str(), dtype_name(compute), seconds);
      return 0;
    };
  };
  return c;
}

}  // namespace fresco::cli
