// One checkpoint stored as one or more safetensors files: a single file, the JSON index of a
// sharded checkpoint (*.safetensors.index.json, whose weight_map names each tensor's shard), or
// a folder holding either (diffusers' transformer/ and vae/ folders). Every shard is memory-mapped
// and checked as a single file is (io/safetensors.hpp).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.hpp"

namespace fresco {

// A tensor of the checkpoint: its shard and its entry there.
struct CheckpointTensor {
  const SafetensorsFile* file = nullptr;
  SafetensorsEntry entry;
  const void* data() const { return file->data(entry); }
};

class SafetensorsSet {
 public:
  // InputError naming the path for what is not a checkpoint, a missing shard (with how many keys
  // the index maps to it), a key the index maps to a shard that lacks it, a shard tensor the index
  // does not list, or a folder that holds several checkpoints (which are listed).
  explicit SafetensorsSet(const std::string& path);

  const std::string& path() const { return path_; }
  size_t shard_count() const { return files_.size(); }
  const std::map<std::string, CheckpointTensor>& tensors() const { return tensors_; }

 private:
  void open_index(const std::string& index_path);
  std::string path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, CheckpointTensor> tensors_;
};

}  // namespace fresco
