// libFuzzer target: the safetensors header parser (`fresco convert`'s input). Any input must
// end in a table or a fresco::Error, never a crash, a hang or undefined behaviour.
#include <cstdint>

#include "fuzz/fuzz_input.hpp"
#include "io/safetensors.hpp"
#include "src/core/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fresco::fuzz::input_file(data, size, ".safetensors");
  try {
    const fresco::SafetensorsFile st(path);
    const auto table = st.table();
    for (const auto& [name, e] : st.entries()) (void)st.data(e);
    (void)table;
  } catch (const fresco::Error&) {
  }
  return 0;
}
