#include "io/atomic_output.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "src/core/error.hpp"

namespace fresco {
namespace {

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) throw IoError("cannot open " + path + " to sync it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw IoError("fsync of " + path + " failed: " + std::strerror(err));
}

std::string parent_dir(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

}  // namespace

AtomicOutput::AtomicOutput(std::string destination)
    : destination_(std::move(destination)),
      temp_(destination_ + ".tmp." + std::to_string(::getpid())) {
  ensure_output_path(destination_);
}

void ensure_output_path(const std::string& file) { ensure_writable_directory(parent_dir(file)); }

AtomicOutput::~AtomicOutput() {
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicOutput::commit() {
  fsync_path(temp_, O_RDONLY);
  if (std::rename(temp_.c_str(), destination_.c_str()) != 0)
    throw IoError("cannot publish " + destination_ + ": " + std::strerror(errno));
  committed_ = true;
  fsync_path(parent_dir(destination_), O_RDONLY | O_DIRECTORY);
}

void ensure_writable_directory(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    throw IoError("output directory " + dir + " cannot be created" +
                  (ec ? ": " + ec.message() : ""));
  // Permission bits say little for root or ACLs: try to create a file.
  const std::string probe = dir + "/.fresco-write-test." + std::to_string(::getpid());
  const int fd = ::open(probe.c_str(), O_CREAT | O_WRONLY | O_EXCL, 0600);
  if (fd < 0) throw IoError("output directory " + dir + " is not writable: " + std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

}  // namespace fresco
