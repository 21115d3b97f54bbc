// What the CUDA runtime sees on this node: used by `fresco info` and by the gpu-labelled tests
// to skip cleanly where no GPU is present. Declared without CUDA headers so CPU-only code can
// include it.
#pragma once

#include <string>
#include <vector>

namespace fresco::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;  // compute capability
  size_t total_memory = 0;   // bytes
  int multiprocessors = 0;
};

// Visible devices; empty (not an error) when there is no driver or no GPU.
std::vector<DeviceInfo> list_devices();
// Why list_devices() is empty, for skip messages ("no CUDA driver", ...).
std::string no_device_reason();
int runtime_version();

}  // namespace fresco::cuda
