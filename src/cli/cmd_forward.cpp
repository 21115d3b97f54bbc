// `fresco forward`: one transformer evaluation from an inputs file, for checking Fresco
// against other implementations (schema in docs/file-formats.md); on one rank or split over a
// sequence-parallel group (--ulysses/--ring), which must give the same result.
#include <chrono>
#include <cmath>
#include <cstdio>

#include "io/atomic_output.hpp"
#include "mpi/plans/parallel_plan.hpp"
#include "src/cli/commands.hpp"
#include "src/model/model_inputs.hpp"
#include "src/runtime/auto_layout.hpp"
#include "src/runtime/engine.hpp"
#include "src/runtime/memory_check.hpp"

namespace fresco::cli {
namespace {

struct ForwardRun {
  ForwardRun(const MpiSession& session, std::string path) : mpi(session), out(std::move(path)) {}
  const MpiSession& mpi;
  std::string out;
  std::unique_ptr<Engine> engine;
  ForwardInputs inputs;

  int operator()() {
    Backend* backend = engine->backend.get();
    const ParallelLayout* layout = engine->layout.get();
    Denoiser& model = *engine->model;
    const auto shards =
        image_shards(*layout, engine->parallel.plan, inputs.txt.dim(0), inputs.grid_h, inputs.grid_w);
    const SequenceShard& mine = shards[size_t(layout->position())];
    model.set_condition(Conditioning{inputs.txt, inputs.y}, inputs.grid_h, inputs.grid_w, shards, layout->position());
    const int64_t C = engine->spec.token_channels;
    const Tensor img = backend->upload(inputs.img.rows(mine.img_begin(), mine.img_rows()));  // [ni, C]
    const Tensor velocity = backend->alloc({mine.img_rows(), C}, DType::f32);              // [ni, C]
    const Tensor bad = backend->alloc({1}, DType::i64);                                    // [1]
    const float host_scalars[2] = {float(inputs.t), float(inputs.guidance)};
    const Tensor scalars = backend->upload(Tensor::from_floats({2}, std::span<const float>(host_scalars, 2)));  // [2]

    layout->reset_stats();
    const auto start = std::chrono::steady_clock::now();
    model.forward(img, scalars, velocity);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const StepAccounting acc = gather_accounting(layout->group(), layout->stats(), seconds);
    backend->count_nonfinite(velocity, bad);
    const Tensor all = gather_image_rows(*layout, shards, backend->download(velocity));  // [Limg, C]
    int64_t bad_here = backend->download(bad).data<int64_t>()[0], bad_total = 0;
    FRESCO_MPI_CHECK(MPI_Allreduce(&bad_here, &bad_total, 1, MPI_INT64_T, MPI_SUM, mpi.world()));
    if (mpi.rank() == 0 && layout->group_size() > 1)
      std::printf("fresco forward: communication of the step, group 0:\n%s", acc.table("").c_str());
    if (layout->group_index() != 0 || !layout->group_leader()) return 0;
    if (bad_total) throw ComputeError("the forward produced non-finite values; nothing written");
    write_velocity(out, all);
    std::printf("fresco forward: wrote %s %s in %.3f s\n", out.c_str(), shape_string(all.shape()).c_str(), seconds);
    return 0;
  }
};

}  // namespace

Command forward_command() {
  Command c;
  c.name = "forward";
  c.summary = "run the transformer once on an inputs file (checks against other implementations)";
  c.usage = "[mpiexec -n N] fresco forward --weights W.h5 --inputs IN.h5 --out OUT.h5 [--ulysses U --ring R]";
  c.details =
      "Reads /img [Limg, in_channels], /txt [Ltxt, context_in_dim], /y [vec_in_dim] and the\n"
      "attributes t, guidance, grid_h, grid_w from IN.h5, and writes the predicted velocity\n"
      "/velocity [Limg, in_channels] (float32) to OUT.h5, published atomically. On several ranks\n"
      "the image is split over a group (default: all ranks); with --parallel sequence the\n"
      "result is the same as on one rank; a forward is one step, hence a warm-up (exact) step\n"
      "for --parallel patch.";
  c.add_options = [](po::options_description& o, po::positional_options_description&) {
    o.add_options()
        ("inputs", po::value<std::string>()->required(), "inputs file (HDF5)")
        ("out", po::value<std::string>()->required(), "output file for /velocity");
    add_model_options(o);
    add_engine_options(o);
    add_parallel_options(o);
    add_lora_options(o);
  };
  c.setup = [](const po::variables_map& vm, const RunContext& ctx) -> std::function<int()> {
    auto run = std::make_shared<ForwardRun>(ctx.mpi, vm["out"].as<std::string>());
    // The engine (its backend selects the rank's GPU, which the device transports use), then
    // the inputs' sizes: the automatic layout is chosen for them (every rank reads the same
    // files, so these fail on all ranks or none); the layout is collective.
    const EngineChoice engine = engine_choice(vm);
    require_input(engine.fp8_bf16_steps == 0, "option --fp8-bf16-steps is for generate: forward runs one forward");
    run->engine = std::make_unique<Engine>(ctx.mpi, engine, parallel_choice(vm),
                                           vm["weights"].as<std::string>(), vm["model"].as<std::string>());
    Engine& e = *run->engine;
    e.lora = lora_options(vm);
    const std::string in_path = vm["inputs"].as<std::string>();
    run->inputs = read_forward_inputs(in_path, e.config);
    const ForwardInputs& in = run->inputs;
    AutoLayoutInputs auto_layout = auto_layout_inputs(e, vm["threads"].as<int>());
    auto_layout.images = {{in.txt.dim(0), in.grid_h, in.grid_w}};
    e.build_layout(automatic_layout(std::move(auto_layout)), 1);
    check_rank_memory(e, {{in_path + "'s image (grid " + std::to_string(in.grid_h) + "x" + std::to_string(in.grid_w) + ")",
                           in.grid_h * in.grid_w, in.txt.dim(0)}},
                      "the grid_h/grid_w attributes of " + in_path);
    configure_threads(vm["threads"].as<int>(), ctx.mpi.local_size());
    ensure_output_path(run->out);
    e.load_model();
    image_shards(*e.layout, e.parallel.plan, in.txt.dim(0), in.grid_h, in.grid_w);  // fits?
    e.report_plan(in.txt.dim(0) + in.grid_h * in.grid_w);
    return [run]() { return (*run)(); };
  };
  return c;
}

}  // namespace fresco::cli
