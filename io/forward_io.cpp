#include "io/forward_io.hpp"

#include "io/h5_file.hpp"

namespace fresco {

ForwardInputs read_forward_file(const std::string& path) {
  const h5::File file = h5::File::open(path);
  ForwardInputs in;
  in.t = file.read_double_attr("t");
  in.guidance = file.has_attr("guidance") ? file.read_double_attr("guidance") : 0.0;
  in.grid_h = file.read_int_attr("grid_h");
  in.grid_w = file.read_int_attr("grid_w");
  require_input(in.grid_h > 0 && in.grid_w > 0,
                path + ": grid_h and grid_w must be positive");
  in.img = file.read_f32("/img");
  in.txt = file.read_f32("/txt");
  in.y = file.exists("/y") ? file.read_f32("/y") : Tensor(Shape{0});  // no pooled vector (Qwen-Image)
  return in;
}

void write_forward_inputs(const std::string& path, const ForwardInputs& in) {
  h5::write_atomically(path, [&](h5::File& file) {
    file.write("/img", in.img);
    file.write("/txt", in.txt);
    if (in.y.numel() > 0) file.write("/y", in.y);  // a model without a pooled vector has none
    file.write_attr("t", in.t);
    file.write_attr("guidance", in.guidance);
    file.write_attr("grid_h", in.grid_h);
    file.write_attr("grid_w", in.grid_w);
  });
}

void write_velocity(const std::string& path, const Tensor& velocity) {
  const Tensor v = velocity.dtype() == DType::f32 ? velocity : velocity.to_f32();
  h5::write_atomically(path, [&](h5::File& file) {
    file.write("/velocity", v);
  });
}

}  // namespace fresco
