#include "io/safetensors_set.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "src/core/error.hpp"

namespace fresco {
namespace fs = std::filesystem;
namespace {

constexpr const char* kIndexSuffix = ".safetensors.index.json";

// "a, b, c, ... N in all": up to three names of a sorted list.
std::string first_names(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  std::string out;
  for (size_t i = 0; i < names.size() && i < 3; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 3) out += ", ... " + std::to_string(names.size()) + " in all";
  return out;
}

// The one checkpoint a folder holds: its index, else its only safetensors file. A diffusers
// pipeline's root (transformer/ and vae/ folders) and a folder of several checkpoints are
// refused with what to pass instead.
std::string checkpoint_in_folder(const std::string& folder) {
  std::vector<std::string> indexes, files;
  bool pipeline_root = false;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(folder, ec)) {
    const std::string name = f.path().filename().string();
    if (name.ends_with(kIndexSuffix)) indexes.push_back(f.path().string());
    else if (name.ends_with(".safetensors")) files.push_back(f.path().string());
    else if (f.is_directory() && (name == "transformer" || name == "vae")) pipeline_root = true;
  }
  if (indexes.size() == 1) return indexes[0];
  if (indexes.size() > 1)
    throw InputError(folder + " holds several sharded checkpoints; pass one index (" + first_names(indexes) + ")");
  if (files.size() == 1) return files[0];
  if (files.empty() && pipeline_root)
    throw InputError(folder + " is a diffusers pipeline folder: convert its transformer/ folder (the FLUX "
                              "transformer) and its vae/ folder (the autoencoder) one at a time");
  if (files.empty()) throw InputError(folder + " is a folder, not a safetensors file, and holds none");
  throw InputError(folder + " is a folder of several checkpoints and no index; pass one of its .safetensors "
                            "files (" + first_names(files) + ")");
}

}  // namespace

SafetensorsSet::SafetensorsSet(const std::string& path) : path_(path) {
  std::error_code ec;
  const std::string file = fs::is_directory(path, ec) ? checkpoint_in_folder(path) : path;
  if (file.ends_with(".json")) {
    open_index(file);
    return;
  }
  files_.push_back(std::make_unique<SafetensorsFile>(file));
  for (const auto& [name, e] : files_[0]->entries()) tensors_[name] = {files_[0].get(), e};
}

void SafetensorsSet::open_index(const std::string& index_path) {
  nlohmann::json index;
  {
    std::ifstream in(index_path);
    if (!in) throw InputError("cannot open " + index_path);
    try {
      index = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw InputError(index_path + " is not valid JSON: " + e.what());
    }
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw InputError(index_path + " has no \"weight_map\" object (the index of a sharded checkpoint maps "
                                  "each tensor to its shard file)");
  // Shard file name -> the keys the index maps to it.
  std::map<std::string, std::vector<std::string>> keys_of_shard;
  for (const auto& [key, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) throw InputError(index_path + ": weight_map entry " + key + " is not a file name");
    keys_of_shard[shard.get<std::string>()].push_back(key);
  }
  if (keys_of_shard.empty()) throw InputError(index_path + ": the weight_map is empty");
  const fs::path dir = fs::path(index_path).parent_path();
  for (const auto& [shard, keys] : keys_of_shard) {
    const std::string shard_path = (dir / shard).string();
    std::error_code ec;
    if (!fs::is_regular_file(shard_path, ec))
      throw InputError(index_path + " maps " + std::to_string(keys.size()) + " tensor(s) (" + first_names(keys) +
                       ") to shard " + shard + ", which is missing (" + shard_path + ")");
    files_.push_back(std::make_unique<SafetensorsFile>(shard_path));
    const SafetensorsFile& file = *files_.back();
    for (const std::string& key : keys) {
      const auto it = file.entries().find(key);
      if (it == file.entries().end())
        throw InputError(index_path + " maps tensor " + key + " to shard " + shard + ", which does not hold it");
      tensors_[key] = {&file, it->second};
    }
  }
  // Only when every key was found: a tensor in the wrong shard is named by its key above.
  for (const auto& file : files_)
    for (const auto& [name, e] : file->entries())
      if (const auto it = tensors_.find(name); it == tensors_.end() || it->second.file != file.get())
        throw InputError(file->path() + " holds tensor " + name + ", which " + index_path +
                         " does not map to this shard");
}

}  // namespace fresco
