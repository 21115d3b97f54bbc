// `fresco convert`: a checkpoint (one safetensors file, a sharded one, a diffusers folder) to a
// Fresco weights file. The layouts are src/model/checkpoint_layout.hpp's; the reading,
// io/safetensors_set.hpp's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fresco {

// Converts a checkpoint to a weights file for `model` ("auto": the preset whose table the
// checkpoint matches). The layout is diffusers' when a tensor has a diffusers name of the FLUX
// transformer or autoencoder, else the original release's. Tensors keep their dtype, except
// F8_E4M3, widened to bf16 (times the tensor's scale when the checkpoint stores one, as
// ComfyUI's scaled checkpoints do: NAME.scale_weight or NAME.weight_scale beside NAME.weight).
// Keys under the prefix "model.diffusion_model." (ComfyUI's single-file checkpoints) are taken
// without it, and the tensors outside it (text encoders, autoencoder) left out; so are an
// autoencoder's encoder tensors, and of the text encoders' HF checkpoints CLIP's buffer
// text_model.embeddings.position_ids and T5's encoder.embed_tokens.weight where it has
// shared.weight's shape (the tied copy). Published atomically. A mismatch is one InputError that
// summarises the differences and names the preset the checkpoint does match, or else the
// closest one. `fp8`: written as an FP8 weights file (src/model/fp8_weights.hpp; FLUX
// transformer presets only), the token linears' weights quantized from what the plain file
// would hold.
struct ConvertedCheckpoint {
  std::string preset;
  std::string layout;           // layout_name(), or for a U-Net "diffusers U-Net" / "original SDXL single file (sgm names)"
  std::string stripped_prefix;  // the key prefix taken off, or empty
  int64_t shards = 1;           // safetensors files read
  int64_t left_out = 0;         // tensors of the checkpoint not written (encoder, outside the prefix)
  std::vector<std::string> dropped;  // text encoders' non-weights left out, each "NAME (why)"
  int64_t widened_e4m3 = 0;     // F8_E4M3 tensors written as bf16
  int64_t scaled_e4m3 = 0;      // of which with a per-tensor scale
  int64_t quantized = 0;        // token linears stored as e4m3 (fp8)
};
ConvertedCheckpoint convert_checkpoint(const std::string& in, const std::string& out, const std::string& model,
                                       bool fp8 = false);

}  // namespace fresco
