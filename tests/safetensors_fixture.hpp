// Test fixtures shared by test_io.cpp and test_lora.cpp: a temporary directory per test and
// safetensors files written from host tensors.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "src/core/tensor.hpp"

namespace fresco::test {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("fresco-test-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Writes a safetensors file holding `stored` (name -> host tensor in the dtype it is stored as,
// `tags` giving its safetensors dtype name).
inline void write_stored_safetensors(const std::string& path, const std::map<std::string, Tensor>& stored,
                              const std::map<DType, const char*>& tags) {
  nlohmann::json header;
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const auto& [name, t] : stored) {
    header[name] = {{"dtype", tags.at(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {data.size(), data.size() + t.bytes()}}};
    data.append(static_cast<const char*>(t.raw()), t.bytes());
  }
  const std::string h = header.dump();
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out.put(char((n >> (8 * i)) & 0xff));
  out << h << data;
}

// Writes a safetensors file holding `tensors` (name -> f32 tensor stored as `dtype`).
inline void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       DType dtype, const char* dtype_tag) {
  std::map<std::string, Tensor> stored;
  for (const auto& [name, t] : tensors) stored[name] = t.to_dtype(dtype);
  write_stored_safetensors(path, stored, {{dtype, dtype_tag}});
}

}  // namespace fresco::test
