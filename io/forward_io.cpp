#include "io/forward_io.hpp"

#include "io/h5_file.hpp"

namespace fresco {

ForwardInputs read_forward_inputs(const std::string& path, const FluxConfig& config) {
  const h5::File file = h5::File::open(path);
  ForwardInputs in;
  in.t = file.read_double_attr("t");
  in.guidance = file.has_attr("guidance") ? file.read_double_attr("guidance") : 0.0;
  in.grid_h = file.read_int_attr("grid_h");
  in.grid_w = file.read_int_attr("grid_w");
  require_input(in.grid_h > 0 && in.grid_w > 0,
                path + ": grid_h and grid_w must be positive");
  const int64_t Limg = in.grid_h * in.grid_w;
  in.img = file.read_f32("/img", Shape{Limg, config.in_channels});
  const Shape txt_shape = file.dataset_shape("/txt");
  require_input(txt_shape.size() == 2 && txt_shape[1] == config.context_in_dim,
                path + ":/txt has shape " + shape_string(txt_shape) + ", " + config.name +
                    " expects [Ltxt, " + std::to_string(config.context_in_dim) + "]");
  in.txt = file.read_f32("/txt");
  in.y = file.read_f32("/y", Shape{config.vec_in_dim});
  return in;
}

void write_forward_inputs(const std::string& path, const ForwardInputs& in) {
  h5::write_atomically(path, [&](h5::File& file) {
    file.write("/img", in.img);
    file.write("/txt", in.txt);
    file.write("/y", in.y);
    file.write_attr("t", in.t);
    file.write_attr("guidance", in.guidance);
    file.write_attr("grid_h", in.grid_h);
    file.write_attr("grid_w", in.grid_w);
  });
}

void write_velocity(const std::string& path, const Tensor& velocity) {
  h5::write_atomically(path, [&](h5::File& file) {
    file.write("/velocity", velocity);
  });
}

}  // namespace fresco
