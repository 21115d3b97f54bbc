// Atomic publication of an output file: the writer fills a temporary file beside the
// destination; commit() fsyncs it, renames it over the destination and fsyncs the directory.
// Without commit (an error, a killed job) the temporary file is removed and the destination
// is untouched, so readers never see a partial output.
#pragma once

#include <string>

namespace fresco {

class AtomicOutput {
 public:
  explicit AtomicOutput(std::string destination);
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  const std::string& temp_path() const { return temp_; }
  const std::string& destination() const { return destination_; }
  void commit();

 private:
  std::string destination_;
  std::string temp_;
  bool committed_ = false;
};

// Creates the directory (and parents) if needed and checks that files can be created in it;
// IoError naming the directory otherwise.
void ensure_writable_directory(const std::string& dir);
// ensure_writable_directory for the directory that will hold `file`; run it at set-up so a
// bad output path fails before any work is done.
void ensure_output_path(const std::string& file);

}  // namespace fresco
