// The run record (--record FILE): one JSON object saying what a command ran and what it
// measured, for scripts and `fresco sweep` (never log text): schema "fresco-run-record" 1,
// version and commit, command line, every effective setting (the options and what the prompt
// file set), the engine (backend, device, dtype, layout, transport), the model, per-image and
// per-step times, communication and memory. Written by rank 0, published atomically
// (docs/file-formats.md, "Run record").
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "src/runtime/engine.hpp"
#include "src/runtime/image_job.hpp"

namespace fresco {

class RunRecord {
 public:
  RunRecord(std::string command, std::string command_line);
  // The effective settings (name -> value as used, after defaults and the prompt file).
  void set_settings(nlohmann::json settings) { record_["settings"] = std::move(settings); }
  // The engine and model of the run (rank 0's view; degrees and transport are the group's).
  void set_engine(const Engine& engine);
  // One image this rank's group computed (called by the group leader).
  void add_image(const ImageJob& job, const DenoisedImage& result, bool ok);
  // Anything command-specific (bench's figures).
  nlohmann::json& operator[](const std::string& key) { return record_[key]; }
  // Collective over the world: rank 0 gathers every group leader's images and writes `path`
  // atomically (IoError naming it); other ranks write nothing.
  void write(const MpiSession& mpi, const std::string& path, double wall_seconds);

 private:
  nlohmann::json record_;
  nlohmann::json images_ = nlohmann::json::array();
};

}  // namespace fresco
