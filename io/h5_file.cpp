#include "io/h5_file.hpp"

#include <algorithm>
#include <filesystem>
#include <mutex>

#include "io/atomic_output.hpp"

namespace fresco::h5 {
namespace {

// HDF5 closes the files still open when the process exits. A file whose close failed (no
// space left) stays half-open inside the library, and closing it again at exit crashes
// (HDF5 1.10). Fresco closes every file it writes itself, checked, so the library's exit
// handler is switched off before any other HDF5 call.
[[maybe_unused]] const herr_t no_exit_handler = H5dont_atexit();

// HDF5 prints its error stack to stderr by default; Fresco reports errors itself, once.
void silence_hdf5() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

herr_t innermost_message(unsigned n, const H5E_error2_t* err, void* out) {
  if (n == 0 && err->desc) *static_cast<std::string*>(out) = err->desc;
  return 0;
}

// Creates the groups leading to an absolute dataset path.
void create_parents(hid_t file, const std::string& name, const std::string& context) {
  PlistId lcpl(FRESCO_H5_CHECK(H5Pcreate(H5P_LINK_CREATE), context));
  FRESCO_H5_CHECK(H5Pset_create_intermediate_group(lcpl.get(), 1), context);
  const auto slash = name.rfind('/');
  if (slash == 0 || slash == std::string::npos) return;
  const std::string parent = name.substr(0, slash);
  if (H5Lexists(file, parent.c_str(), H5P_DEFAULT) > 0) return;
  GroupId g(FRESCO_H5_CHECK(H5Gcreate2(file, parent.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
                            context));
}

}  // namespace

std::string last_error_message() {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_message, &msg);
  return msg.empty() ? "no detail from HDF5" : msg;
}

namespace {
herr_t collect_messages(unsigned, const H5E_error2_t* err, void* out) {
  if (err->desc) static_cast<std::vector<std::string>*>(out)->push_back(err->desc);
  return 0;
}
}  // namespace

std::string failure_cause() {
  std::vector<std::string> messages;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_messages, &messages);
  // The sec2 driver reports "... errno = 28, error message = 'No space left on device', ...".
  for (const std::string& m : messages) {
    const auto at = m.find("error message = '");
    if (at == std::string::npos) continue;
    const auto begin = at + 17, end = m.find('\'', begin);
    if (end != std::string::npos) return m.substr(begin, end - begin);
  }
  return messages.empty() ? "no detail from HDF5" : messages.front();
}

void fail(const char* call, const std::string& context, const char* file, int line) {
  std::string message = last_error_message();
  if (const std::string cause = failure_cause(); cause != message) message += " (" + cause + ")";
  throw ApiError("HDF5 call failed on " + context + ": " + message + " [" + call +
                 " at " + source_location(file, line) + "]");
}

namespace {
// A little-endian 16-bit float type: sign bit 15, exponent bits [mpos+msize, 15), mantissa
// bits [0, msize). HDF5 1.10 has no predefined half type, so both 16-bit types are built.
TypeId float16_type(size_t exponent_bits, size_t mantissa_bits, size_t bias) {
  TypeId t(FRESCO_H5_CHECK(H5Tcopy(H5T_IEEE_F32LE), "16-bit float type"));
  FRESCO_H5_CHECK(H5Tset_fields(t.get(), 15, mantissa_bits, exponent_bits, 0, mantissa_bits),
                  "16-bit float type");
  FRESCO_H5_CHECK(H5Tset_offset(t.get(), 0), "16-bit float type");
  FRESCO_H5_CHECK(H5Tset_precision(t.get(), 16), "16-bit float type");
  FRESCO_H5_CHECK(H5Tset_size(t.get(), 2), "16-bit float type");
  FRESCO_H5_CHECK(H5Tset_ebias(t.get(), bias), "16-bit float type");
  return t;
}
}  // namespace

TypeId file_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return TypeId(FRESCO_H5_CHECK(H5Tcopy(H5T_IEEE_F32LE), "float32 type"));
    case DType::f16: return float16_type(5, 10, 15);
    case DType::bf16: return float16_type(8, 7, 127);
    case DType::f64: return TypeId(FRESCO_H5_CHECK(H5Tcopy(H5T_IEEE_F64LE), "float64 type"));
    case DType::i64: return TypeId(FRESCO_H5_CHECK(H5Tcopy(H5T_STD_I64LE), "int64 type"));
    case DType::e4m3: return TypeId(FRESCO_H5_CHECK(H5Tcopy(H5T_STD_U8LE), "e4m3 (uint8) type"));
  }
  FRESCO_ASSERT(false, std::string("no HDF5 type for ") + dtype_name(dtype));
}

std::optional<DType> stored_dtype(hid_t type) {
  if (H5Tget_class(type) != H5T_FLOAT) return std::nullopt;
  const size_t size = H5Tget_size(type);
  size_t spos, epos, esize, mpos, msize;
  H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize);
  if (H5Tget_order(type) != H5T_ORDER_LE) return std::nullopt;
  if (size == 4 && esize == 8 && msize == 23) return DType::f32;
  if (size == 2 && esize == 5 && msize == 10 && H5Tget_ebias(type) == 15) return DType::f16;
  if (size == 2 && esize == 8 && msize == 7 && H5Tget_ebias(type) == 127) return DType::bf16;
  return std::nullopt;
}

std::string type_description(hid_t type) {
  const size_t bits = H5Tget_size(type) * 8;
  switch (H5Tget_class(type)) {
    case H5T_FLOAT:
      if (H5Tget_order(type) == H5T_ORDER_BE)
        return "big-endian float" + std::to_string(bits) + " (Fresco reads little-endian only)";
      return "float" + std::to_string(bits) + (stored_dtype(type) ? "" : " (unsupported layout)");
    case H5T_INTEGER: return "int" + std::to_string(bits);
    case H5T_STRING: return "string";
    default: return "a non-numeric type";
  }
}

bool is_hdf5_file(const std::string& path) {
  silence_hdf5();
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec) && H5Fis_hdf5(path.c_str()) > 0;
}

File File::open(const std::string& path) {
  silence_hdf5();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw InputError("file not found: " + path);
  if (std::filesystem::is_directory(path, ec)) throw InputError(path + " is a directory, not an HDF5 file");
  // A FIFO or device would block or never end: only regular files (or links to them).
  if (!std::filesystem::is_regular_file(path, ec))
    throw InputError(path + " is not a regular file (a FIFO, socket or device?), not an HDF5 file");
  const htri_t is_h5 = H5Fis_hdf5(path.c_str());
  if (is_h5 <= 0) throw InputError(path + " is not an HDF5 file (or cannot be read)");
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0)
    throw InputError("cannot open HDF5 file " + path + " (damaged or truncated?): " +
                     last_error_message());
  return File(path, FileId(id));
}

File File::create(const std::string& path) {
  silence_hdf5();
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) throw IoError("cannot create HDF5 file " + path + ": " + failure_cause());
  return File(path, FileId(id));
}

void File::close() {
  if (id() < 0) return;
  const hid_t id = id_.release();  // closed here, checked, not by the handle's destructor
  const herr_t flushed = H5Fflush(id, H5F_SCOPE_LOCAL);
  std::string cause = flushed < 0 ? failure_cause() : "";
  const herr_t closed = H5Fclose(id);  // releases the id even when its own flush fails
  if (closed < 0 && cause.empty()) cause = failure_cause();
  if (flushed < 0 || closed < 0) throw IoError("cannot write " + path_ + ": " + cause);
}

bool File::exists(const std::string& object) const {
  if (object == "/") return true;
  // Check each prefix: H5Lexists fails on a path whose parent is missing.
  size_t pos = 0;
  while ((pos = object.find('/', pos + 1)) != std::string::npos)
    if (H5Lexists(id(), object.substr(0, pos).c_str(), H5P_DEFAULT) <= 0) return false;
  return H5Lexists(id(), object.c_str(), H5P_DEFAULT) > 0;
}

std::vector<std::string> File::list_children(const std::string& group) const {
  // H5Gget_info and H5Lget_name_by_idx keep one signature across HDF5 1.10 to 1.14.
  GroupId g(FRESCO_H5_CHECK(H5Gopen2(id(), group.c_str(), H5P_DEFAULT), where(group)));
  H5G_info_t info;
  FRESCO_H5_CHECK(H5Gget_info(g.get(), &info), where(group));
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = FRESCO_H5_CHECK(H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC,
                                                           i, nullptr, 0, H5P_DEFAULT),
                                        where(group));
    std::string name(size_t(len) + 1, '\0');
    FRESCO_H5_CHECK(H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(),
                                       name.size(), H5P_DEFAULT),
                    where(group));
    name.resize(size_t(len));
    names.push_back(name);
  }
  return names;
}

std::vector<std::string> File::list_datasets(const std::string& group) const {
  std::vector<std::string> out;
  const std::string prefix = group == "/" ? "/" : group + "/";
  for (const std::string& child : list_children(group)) {
    const std::string path = prefix + child;
    const hid_t obj = FRESCO_H5_CHECK(H5Oopen(id(), path.c_str(), H5P_DEFAULT), where(path));
    const H5I_type_t type = H5Iget_type(obj);
    H5Oclose(obj);
    if (type == H5I_DATASET) out.push_back(path);
    else if (type == H5I_GROUP) {
      const auto nested = list_datasets(path);
      out.insert(out.end(), nested.begin(), nested.end());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

DatasetId File::open_dataset(const std::string& name) const {
  if (!exists(name)) throw InputError(path_ + " has no dataset " + name);
  return DatasetId(FRESCO_H5_CHECK(H5Dopen2(id(), name.c_str(), H5P_DEFAULT), where(name)));
}

Shape File::dataset_shape(const std::string& name) const {
  const DatasetId ds = open_dataset(name);
  const SpaceId space(FRESCO_H5_CHECK(H5Dget_space(ds.get()), where(name)));
  const int rank = FRESCO_H5_CHECK(H5Sget_simple_extent_ndims(space.get()), where(name));
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  FRESCO_H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), where(name));
  // A damaged file can claim any extent: refuse what no tensor of Fresco's could be (2^40
  // elements; FLUX.1's largest holds 2^26) instead of failing on the allocation.
  long double numel = 1;
  for (hsize_t d : dims) numel *= (long double)d;
  if (numel > (long double)(int64_t(1) << 40))
    throw InputError(where(name) + " claims " + std::to_string(rank) + " dimensions of " +
                     std::to_string((double)numel) + " elements in all (damaged file?)");
  return Shape(dims.begin(), dims.end());
}

TypeId File::dataset_type(const std::string& name) const {
  const DatasetId ds = open_dataset(name);
  return TypeId(FRESCO_H5_CHECK(H5Dget_type(ds.get()), where(name)));
}

Tensor File::read_f32(const std::string& name, const std::optional<Shape>& expect) const {
  const Shape shape = dataset_shape(name);
  if (expect && *expect != shape)
    throw InputError(where(name) + " has shape " + shape_string(shape) + ", expected " +
                     shape_string(*expect));
  const TypeId type = dataset_type(name);
  if (H5Tget_class(type.get()) != H5T_FLOAT)
    throw InputError(where(name) + " is stored as " + type_description(type.get()) +
                     ", expected floating point");
  Tensor t(shape, DType::f32);
  const DatasetId ds = open_dataset(name);
  FRESCO_H5_CHECK(H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw()),
                  where(name));
  return t;
}

std::optional<DType> File::dataset_dtype(const std::string& name) const {
  const DatasetId ds = open_dataset(name);
  const TypeId type(FRESCO_H5_CHECK(H5Dget_type(ds.get()), where(name)));
  if (const auto dtype = stored_dtype(type.get())) return dtype;
  const bool byte = H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) == 1 &&
                    H5Tget_sign(type.get()) == H5T_SGN_NONE;
  // The marker looked up on the open dataset (not by path: a weights file has a thousand datasets).
  if (byte && H5Aexists(ds.get(), kDtypeAttr) > 0 && read_string_attr(kDtypeAttr, name) == kE4m3DtypeName)
    return DType::e4m3;
  return std::nullopt;
}

std::string File::dataset_type_description(const std::string& name) const {
  if (dataset_dtype(name) == DType::e4m3) return std::string(kE4m3DtypeName) + " (uint8)";
  return type_description(dataset_type(name).get());
}

Tensor File::read_raw(const std::string& name) const {
  const auto dtype = dataset_dtype(name);
  if (!dtype)
    throw InputError(where(name) + " is stored as " + dataset_type_description(name) +
                     ", expected float32, float16, bfloat16 or float8_e4m3fn");
  Tensor t(dataset_shape(name), *dtype);
  const TypeId memory = file_type(*dtype);  // the stored layout itself: the bytes unconverted
  const DatasetId ds = open_dataset(name);
  FRESCO_H5_CHECK(H5Dread(ds.get(), memory.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw()),
                  where(name));
  return t;
}

void File::write(const std::string& name, const Tensor& tensor) {
  FRESCO_ASSERT(tensor.device() == Device::cpu,
                "h5::File::write takes host tensors (download first), got " + tensor.describe());
  if (!tensor.contiguous()) {  // a column view: its rows are not adjacent in memory
    const Tensor dense = tensor.clone();
    write_bytes(name, dense.dtype(), dense.shape(), dense.raw());
    return;
  }
  write_bytes(name, tensor.dtype(), tensor.shape(), tensor.raw());
}

void File::write_bytes(const std::string& name, DType dtype, const Shape& shape,
                       const void* bytes) {
  create_parents(id(), name, where(name));
  const std::vector<hsize_t> dims(shape.begin(), shape.end());
  const SpaceId space(FRESCO_H5_CHECK(H5Screate_simple(int(dims.size()), dims.data(), nullptr),
                                      where(name)));
  const TypeId type = file_type(dtype);
  DatasetId ds(FRESCO_H5_CHECK(H5Dcreate2(id(), name.c_str(), type.get(), space.get(),
                                          H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                               where(name)));
  FRESCO_H5_CHECK(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes),
                  where(name));
  // A dataset smaller than HDF5's sieve buffer (64 KiB) reaches the file only when it is
  // closed, and a full disk fails that close, not the H5Dwrite; the file's later flush does
  // not report it again, and the unwritten data reads back as zeros. So the close is checked
  // here (not left to the handle's destructor), with the cause as close() reports it.
  if (H5Dclose(ds.release()) < 0) throw IoError("cannot write " + where(name) + ": " + failure_cause());
  if (dtype == DType::e4m3) write_attr(kDtypeAttr, std::string(kE4m3DtypeName), name);
}

bool File::has_attr(const std::string& attr, const std::string& object) const {
  return exists(object) &&
         H5Aexists_by_name(id(), object.c_str(), attr.c_str(), H5P_DEFAULT) > 0;
}

AttrId File::open_attr(const std::string& attr, const std::string& object) const {
  if (!has_attr(attr, object))
    throw InputError(where(object) + " has no attribute '" + attr + "'");
  return AttrId(FRESCO_H5_CHECK(
      H5Aopen_by_name(id(), object.c_str(), attr.c_str(), H5P_DEFAULT, H5P_DEFAULT),
      where(object) + " attribute " + attr));
}

std::string File::read_string_attr(const std::string& attr, const std::string& object) const {
  const AttrId a = open_attr(attr, object);
  const std::string ctx = where(object) + " attribute " + attr;
  const TypeId type(FRESCO_H5_CHECK(H5Aget_type(a.get()), ctx));
  if (H5Tget_class(type.get()) != H5T_STRING)
    throw InputError(ctx + " is not a string");
  if (H5Tis_variable_str(type.get()) > 0) {
    const TypeId mem(H5Tcopy(H5T_C_S1));
    FRESCO_H5_CHECK(H5Tset_size(mem.get(), H5T_VARIABLE), ctx);
    FRESCO_H5_CHECK(H5Tset_cset(mem.get(), H5Tget_cset(type.get())), ctx);
    char* value = nullptr;
    FRESCO_H5_CHECK(H5Aread(a.get(), mem.get(), &value), ctx);
    std::string out = value ? value : "";
    H5free_memory(value);
    return out;
  }
  const size_t length = H5Tget_size(type.get());
  if (length > (size_t(1) << 20)) throw InputError(ctx + " claims a string of " + std::to_string(length) + " bytes (damaged file?)");
  std::string out(length, '\0');
  FRESCO_H5_CHECK(H5Aread(a.get(), type.get(), out.data()), ctx);
  out.resize(std::min(out.size(), out.find('\0')));
  return out;
}

double File::read_double_attr(const std::string& attr, const std::string& object) const {
  const AttrId a = open_attr(attr, object);
  const std::string ctx = where(object) + " attribute " + attr;
  const TypeId type(FRESCO_H5_CHECK(H5Aget_type(a.get()), ctx));
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) throw InputError(ctx + " is not a number");
  double v = 0;
  FRESCO_H5_CHECK(H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v), ctx);
  return v;
}

int64_t File::read_int_attr(const std::string& attr, const std::string& object) const {
  const AttrId a = open_attr(attr, object);
  const std::string ctx = where(object) + " attribute " + attr;
  const TypeId type(FRESCO_H5_CHECK(H5Aget_type(a.get()), ctx));
  if (H5Tget_class(type.get()) != H5T_INTEGER) throw InputError(ctx + " is not an integer");
  int64_t v = 0;
  FRESCO_H5_CHECK(H5Aread(a.get(), H5T_NATIVE_INT64, &v), ctx);
  return v;
}

namespace {
// Writes a scalar attribute, replacing an existing one.
void write_scalar_attr(hid_t file, const std::string& object, const std::string& attr,
                       hid_t type, const void* value, const std::string& ctx) {
  if (H5Aexists_by_name(file, object.c_str(), attr.c_str(), H5P_DEFAULT) > 0)
    FRESCO_H5_CHECK(H5Adelete_by_name(file, object.c_str(), attr.c_str(), H5P_DEFAULT), ctx);
  const SpaceId space(FRESCO_H5_CHECK(H5Screate(H5S_SCALAR), ctx));
  const AttrId a(FRESCO_H5_CHECK(H5Acreate_by_name(file, object.c_str(), attr.c_str(), type,
                                                   space.get(), H5P_DEFAULT, H5P_DEFAULT,
                                                   H5P_DEFAULT),
                                 ctx));
  FRESCO_H5_CHECK(H5Awrite(a.get(), type, value), ctx);
}
}  // namespace

void File::write_attr(const std::string& attr, const std::string& value, const std::string& object) {
  const std::string ctx = where(object) + " attribute " + attr;
  const TypeId type(H5Tcopy(H5T_C_S1));
  FRESCO_H5_CHECK(H5Tset_size(type.get(), std::max<size_t>(value.size(), 1)), ctx);
  FRESCO_H5_CHECK(H5Tset_cset(type.get(), H5T_CSET_UTF8), ctx);
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  write_scalar_attr(id(), object, attr, type.get(), padded.data(), ctx);
}

void File::write_attr(const std::string& attr, double value, const std::string& object) {
  write_scalar_attr(id(), object, attr, H5T_IEEE_F64LE, &value, where(object) + " attribute " + attr);
}

void File::write_attr(const std::string& attr, int64_t value, const std::string& object) {
  write_scalar_attr(id(), object, attr, H5T_STD_I64LE, &value, where(object) + " attribute " + attr);
}

void verify_readable(const std::string& path, bool all_attributes) {
  const std::string what = "the written file " + path + " does not read back";
  const File file = [&] {
    try {
      return File::open(path);
    } catch (const InputError& e) {
      throw IoError(what + ": " + e.what());
    }
  }();
  auto check = [&](herr_t status, const std::string& object) {
    if (status < 0) throw IoError(what + " (" + object + "): " + failure_cause());
  };
  // Root attributes (the schemas put them there and on /prompts/{i}; all fixed-size).
  const std::vector<std::string> objects = [&] {
    std::vector<std::string> o{"/"};
    if (file.exists("/prompts"))
      for (const std::string& c : file.list_children("/prompts")) o.push_back("/prompts/" + c);
    return o;
  }();
  std::vector<char> buffer;
  for (const std::string& object : all_attributes ? objects : std::vector<std::string>{}) {
    H5O_info_t info;
#if H5_VERSION_GE(1, 12, 0)
    check(H5Oget_info_by_name3(file.id(), object.c_str(), &info, H5O_INFO_NUM_ATTRS, H5P_DEFAULT), object);
#else
    check(H5Oget_info_by_name(file.id(), object.c_str(), &info, H5P_DEFAULT), object);
#endif
    for (hsize_t i = 0; i < info.num_attrs; ++i) {
      const AttrId a(H5Aopen_by_idx(file.id(), object.c_str(), H5_INDEX_CRT_ORDER, H5_ITER_NATIVE, i,
                                    H5P_DEFAULT, H5P_DEFAULT));
      check(a.get() < 0 ? -1 : 0, object + " attribute " + std::to_string(i));
      const TypeId type(H5Aget_type(a.get()));
      check(type.get() < 0 ? -1 : 0, object);
      if (H5Tis_variable_str(type.get()) > 0) continue;
      buffer.resize(std::max<size_t>(H5Aget_storage_size(a.get()), H5Tget_size(type.get())));
      check(H5Aread(a.get(), type.get(), buffer.data()), object);
    }
  }
  for (const std::string& name : file.list_datasets()) {
    const DatasetId ds(H5Dopen2(file.id(), name.c_str(), H5P_DEFAULT));
    check(ds.get() < 0 ? -1 : 0, name);
    const TypeId type(H5Dget_type(ds.get()));
    const SpaceId space(H5Dget_space(ds.get()));
    check(type.get() < 0 || space.get() < 0 ? -1 : 0, name);
    const hssize_t n = H5Sget_simple_extent_npoints(space.get());
    check(n < 0 ? -1 : 0, name);
    buffer.resize(size_t(n) * H5Tget_size(type.get()));
    check(H5Dread(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()), name);
  }
}

void write_atomically(const std::string& path, const std::function<void(File&)>& fill) {
  AtomicOutput out(path);
  try {
    File file = File::create(out.temp_path());
    fill(file);
    file.close();  // checked: a failed flush never reaches the rename
  } catch (const IoError& e) {
    throw IoError("cannot write " + path + " (temporary file removed; nothing published): " + e.what());
  } catch (const ApiError& e) {
    // A write that fails on the way (no space while a dataset is written) is an I/O failure.
    throw IoError("cannot write " + path + " (temporary file removed; nothing published): " + e.what());
  }
  verify_readable(out.temp_path());
  out.commit();
}

}  // namespace fresco::h5
