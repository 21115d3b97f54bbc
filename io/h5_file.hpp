// HDF5 access for Fresco: one move-only owner per HDF5 id, one checking macro
// (FRESCO_H5_CHECK) that names the call, file and line plus HDF5's own message, and the few
// typed reads/writes the file formats need. Every message names the file and the object.
#pragma once

#include <hdf5.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "src/core/error.hpp"
#include "src/core/tensor.hpp"

namespace fresco::h5 {

// The innermost message of HDF5's error stack (HDF5's automatic printing is turned off).
std::string last_error_message();
// Throws ApiError naming the call, the source location, `context` (file and object) and
// HDF5's message.
[[noreturn]] void fail(const char* call, const std::string& context, const char* file, int line);

// A move-only HDF5 id closed by the matching H5*close.
template <herr_t (*Close)(hid_t)>
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      o.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  // Gives up ownership without closing.
  hid_t release() {
    const hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }
  void reset() {
    if (id_ >= 0) Close(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

using FileId = Handle<&H5Fclose>;
using GroupId = Handle<&H5Gclose>;
using DatasetId = Handle<&H5Dclose>;
using SpaceId = Handle<&H5Sclose>;
using TypeId = Handle<&H5Tclose>;
using AttrId = Handle<&H5Aclose>;
using PlistId = Handle<&H5Pclose>;

// Element types Fresco stores: IEEE f32/f16 and bfloat16 (sign bit 15, exponent 7-14,
// mantissa 0-6, bias 127); f64 and i64 (little-endian) for statistics and counters; e4m3 as
// uint8 (HDF5 has no 8-bit float type), the dataset marked by kE4m3DtypeAttr (File::write).
TypeId file_type(DType dtype);
// The dataset attribute "dtype" = "float8_e4m3fn" that says a uint8 dataset holds e4m3 bits.
inline constexpr const char* kDtypeAttr = "dtype";
inline constexpr const char* kE4m3DtypeName = "float8_e4m3fn";
// The DType of a stored f32, f16 or bf16 type (the element types of tensors Fresco reads
// raw), or nothing (integers, float64, strings...).
std::optional<DType> stored_dtype(hid_t type);
std::string type_description(hid_t type);
// True for a regular file that HDF5 recognizes (its signature); false for anything else,
// missing files included (File::open then names the problem).
bool is_hdf5_file(const std::string& path);

// An open HDF5 file. Paths inside it are absolute ("/double_blocks/0/...").
class File {
 public:
  // Opens an existing file read-only; InputError when missing, not HDF5 or unreadable.
  static File open(const std::string& path);
  // Creates (truncates) a file for writing.
  static File create(const std::string& path);

  const std::string& path() const { return path_; }
  hid_t id() const { return id_.get(); }
  bool exists(const std::string& object) const;
  // Flushes and closes the file, checking both: IoError naming the path and the cause (no
  // space, quota, permission) when what was written did not reach the file system.
  void close();

  // Every dataset under a group, as absolute paths (sorted).
  std::vector<std::string> list_datasets(const std::string& group = "/") const;
  std::vector<std::string> list_children(const std::string& group) const;

  // Shape and stored type of a dataset.
  Shape dataset_shape(const std::string& name) const;
  TypeId dataset_type(const std::string& name) const;
  // The DType of a dataset Fresco reads raw: stored_dtype of its type, or e4m3 for a uint8
  // dataset marked dtype = float8_e4m3fn; nothing for anything else.
  std::optional<DType> dataset_dtype(const std::string& name) const;
  // type_description, or "float8_e4m3fn (uint8)" for a marked e4m3 dataset.
  std::string dataset_type_description(const std::string& name) const;

  // Reads a float dataset converted to f32, checking the shape when one is given.
  Tensor read_f32(const std::string& name, const std::optional<Shape>& expect = std::nullopt) const;
  // Reads a dataset in its stored dtype (f32, f16, bf16 or marked e4m3) without conversion.
  Tensor read_raw(const std::string& name) const;
  // Writes a host tensor (any row stride) as a dataset of its dtype (groups created as needed);
  // e4m3 as uint8 marked dtype = float8_e4m3fn.
  void write(const std::string& name, const Tensor& tensor);
  // Writes raw bytes of a dtype and shape (the converter's path).
  void write_bytes(const std::string& name, DType dtype, const Shape& shape, const void* bytes);

  // Attributes of an object (default the root group).
  bool has_attr(const std::string& attr, const std::string& object = "/") const;
  std::string read_string_attr(const std::string& attr, const std::string& object = "/") const;
  double read_double_attr(const std::string& attr, const std::string& object = "/") const;
  int64_t read_int_attr(const std::string& attr, const std::string& object = "/") const;
  void write_attr(const std::string& attr, const std::string& value, const std::string& object = "/");
  void write_attr(const std::string& attr, double value, const std::string& object = "/");
  void write_attr(const std::string& attr, int64_t value, const std::string& object = "/");

 private:
  File(std::string path, FileId id) : path_(std::move(path)), id_(std::move(id)) {}
  std::string where(const std::string& object) const { return path_ + ":" + object; }
  DatasetId open_dataset(const std::string& name) const;
  AttrId open_attr(const std::string& attr, const std::string& object) const;
  std::string path_;
  FileId id_;
};

// The operating system's reason for the failure on HDF5's error stack ("No space left on
// device", "Disk quota exceeded", ...), or HDF5's innermost message when it gives none.
std::string failure_cause();

// Creates `path` through AtomicOutput: `fill` writes into a temporary HDF5 file, which is
// then flushed and closed (both checked), read back (every dataset), fsynced and renamed. On
// any failure the temporary file is removed, nothing appears at `path`, and the error is an
// IoError (status 3) naming `path` and the cause.
void write_atomically(const std::string& path, const std::function<void(File&)>& fill);
// Opens `path` and reads every dataset of it and, with `all_attributes`, every attribute of
// the root and the prompt groups; IoError naming the path when any of it does not read back.
// Walking the attributes by index of a damaged file can crash HDF5 1.10 (H5Aopen_by_idx, found
// by fuzz/fuzz_h5_readers): files of unknown origin are checked without it, their attributes
// read by name.
void verify_readable(const std::string& path, bool all_attributes = true);

}  // namespace fresco::h5

// Checks an HDF5 call (negative id or status means failure); `context` names the file/object.
#define FRESCO_H5_CHECK(call, context)                                                  \
  ([&]() {                                                                              \
    auto fresco_h5_status_ = (call);                                                    \
    if (fresco_h5_status_ < 0) ::fresco::h5::fail(#call, (context), __FILE__, __LINE__); \
    return fresco_h5_status_;                                                           \
  }())
