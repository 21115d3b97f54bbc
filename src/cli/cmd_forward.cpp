// `fresco forward`: one transformer evaluation from an inputs file, for checking Fresco
// against other implementations (schema in docs/file-formats.md).
#include <cmath>
#include <cstdio>

#include "io/atomic_output.hpp"
#include "io/forward_io.hpp"
#include "io/weights_file.hpp"
#include "src/cli/commands.hpp"
#include "src/model/flux_model.hpp"

namespace fresco::cli {

Command forward_command() {
  Command c;
  c.name = "forward";
  c.summary = "run the transformer once on an inputs file (checks against other implementations)";
  c.usage = "fresco forward --weights W.h5 --inputs IN.h5 --out OUT.h5";
  c.details =
      "Reads /img [Limg, in_channels], /txt [Ltxt, context_in_dim], /y [vec_in_dim] and the\n"
      "attributes t, guidance, grid_h, grid_w from IN.h5, and writes the predicted velocity\n"
      "/velocity [Limg, in_channels] (float32) to OUT.h5, published atomically. Runs on one rank.";
  c.add_options = [](po::options_description& o, po::positional_options_description&) {
    o.add_options()
        ("weights", po::value<std::string>()->required(), "weights file (HDF5, fresco-weights)")
        ("inputs", po::value<std::string>()->required(), "inputs file (HDF5)")
        ("out", po::value<std::string>()->required(), "output file for /velocity")
        ("model", po::value<std::string>()->default_value("auto"),
         "preset: flux-dev, flux-schnell, flux-small, flux-tiny, or auto (the weights' own)")
        ("threads", po::value<int>()->default_value(0), "CPU threads per rank (0: OMP_NUM_THREADS, else cores / ranks on the node)");
  };
  c.setup = [](const po::variables_map& vm, const RunContext& ctx) -> std::function<int()> {
    require_input(ctx.mpi.size() == 1,
                  "fresco forward runs on one rank; start it without mpiexec or with -n 1");
    configure_threads(vm["threads"].as<int>(), ctx.mpi.local_size());
    const std::string out = vm["out"].as<std::string>();
    ensure_output_path(out);
    const std::string weights_path = vm["weights"].as<std::string>();
    const FluxConfig config = preset_for_weights(weights_path, vm["model"].as<std::string>());
    auto backend = std::shared_ptr<Backend>(make_cpu_backend());
    auto model = std::make_shared<FluxTransformer>(
        config, load_flux_weights(weights_path, config, *backend), *backend);
    auto inputs = std::make_shared<ForwardInputs>(read_forward_inputs(vm["inputs"].as<std::string>(), config));
    return [backend, model, inputs, out]() {
      const int64_t Limg = inputs->grid_h * inputs->grid_w;
      model->set_condition(inputs->txt, inputs->y, inputs->grid_h, inputs->grid_w);
      const Tensor velocity = backend->alloc({Limg, model->config().in_channels}, DType::f32);
      model->forward(inputs->img, float(inputs->t), float(inputs->guidance), velocity);
      const Tensor host = backend->download(velocity);
      for (float v : host.to_vector())
        if (!std::isfinite(v)) throw ComputeError("the forward produced non-finite values; nothing written");
      write_velocity(out, host);
      std::printf("fresco forward: wrote %s %s\n", out.c_str(), shape_string(host.shape()).c_str());
      return 0;
    };
  };
  return c;
}

}  // namespace fresco::cli
