// `fresco encode`: text prompts in, a prompt batch of T5 and CLIP embeddings out
// (docs/text-encoders.md, "fresco encode").
#include "io/atomic_output.hpp"
#include "io/prompt_list.hpp"
#include "src/cli/commands.hpp"
#include "src/cli/text_prompts.hpp"

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
    add_text_encoder_options(o, true);
    o.add_options()
        ("backend", po::value<std::string>()->default_value("auto"), "auto (cuda where a GPU is present), cpu or cuda")
        ("dtype", po::value<std::string>()->default_value("auto"), "auto (bf16 on cuda, f32 on cpu), f32 or bf16")
        ("input", po::value<std::string>()->required(), "prompt list: text or .jsonl (first positional)")
        ("output", po::value<std::string>()->required(), "prompt batch HDF5 to write (second positional)");
    p.add("input", 1).add("output", 1);
  };
  c.setup = [](const po::variables_map& vm, const RunContext& ctx) -> std::function<int()> {
    const TextEncoderOptions encoders = *text_encoder_options(vm);  // required options: all given
    const std::string backend_name = backend_option(vm);
    const std::string dtype_text = vm["dtype"].as<std::string>();
    const DType compute = dtype_text == "auto" ? (backend_name == "cuda" ? DType::bf16 : DType::f32)
                                               : parse_dtype_option("dtype", dtype_text);
    require_input(compute == DType::f32 || compute == DType::bf16,
                  "option --dtype: the encoders run in f32 or bf16 (got " + dtype_text + ")");
    const std::string in = vm["input"].as<std::string>(), out = vm["output"].as<std::string>();
    const std::vector<TextPrompt> prompts = read_prompt_list(in);  // its errors before any work
    ensure_output_path(out);
    return [=, &mpi = ctx.mpi]() {
      if (mpi.rank() != 0) return 0;
      encode_prompt_list(prompts, encoders, backend_name, mpi.local_rank(), compute, out, "fresco encode");
      return 0;
    };
  };
  return c;
}

}  // namespace fresco::cli
