// libFuzzer target: the HDF5 schema readers (weights, prompt batches, forward inputs, image
// results). Any input must end in a value or a fresco::Error, never a crash in Fresco's code.
// HDF5 itself is not instrumented; a crash inside libhdf5 is HDF5's (report it upstream).
#include <cstdint>
#include <new>

#include "fuzz/fuzz_input.hpp"
#include "io/forward_io.hpp"
#include "io/image_file.hpp"
#include "io/prompts_file.hpp"
#include "io/weights_file.hpp"
#include "src/core/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fresco::fuzz::input_file(data, size, ".h5");
  auto guarded = [](auto&& f) {
    try {
      f();
    } catch (const fresco::Error&) {
    } catch (const std::bad_alloc&) {  // a shape claiming more than memory: refused, not a crash
    } catch (const std::length_error&) {
    }
  };
  guarded([&] {
    const fresco::WeightsFile w(path);
    for (const auto& [key, entry] : w.table())
      if (entry.dtype && fresco::shape_numel(entry.shape) < (1 << 20)) (void)w.read(key);
  });
  guarded([&] {
    const fresco::PromptsFile p(path);
    for (int64_t i = 0; i < p.size() && i < 4; ++i) {
      (void)p.settings(i);
      (void)p.y_shape(i);
      if (fresco::shape_numel(p.txt_shape(i)) < (1 << 20)) (void)p.read(i);
    }
  });
  guarded([&] { (void)fresco::read_forward_file(path); });
  guarded([&] { (void)fresco::image_result_mismatch(path, {}); });
  return 0;
}
