// Test helper for the command-line tests: compares datasets and makes broken files.
//   h5_tool compare A.h5 B.h5 DATASET MAX_REL_L2 [B_DATASET]
//                                                  exit 0 when relative L2 <= limit (0: identical);
//                                                  B_DATASET: B's dataset when its name differs
//   h5_tool delete FILE DATASET                    removes a dataset
//   h5_tool reshape FILE DATASET                   replaces a dataset with a [3, 3] float32 one
//   h5_tool retype FILE DATASET                    replaces a dataset with an int32 one
//   h5_tool poison FILE DATASET                    sets the first value of a float dataset to NaN
//   h5_tool attr FILE NAME [OBJECT]                prints a root attribute (or OBJECT's)
//   h5_tool shape FILE DATASET                     prints a dataset's shape, e.g. [16, 6, 8]
//   h5_tool add FILE DATASET                       adds a [3, 3] float32 dataset (groups created)
//   h5_tool bigendian FILE DATASET                 rewrites a float32 dataset as big-endian
//   h5_tool setint FILE OBJECT NAME VALUE          sets an int64 attribute of an object
//   h5_tool setfloat FILE OBJECT NAME VALUE        sets a float64 attribute ("nan" works)
//   h5_tool setstr FILE OBJECT NAME VALUE          sets a string attribute
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "io/h5_file.hpp"
#include "src/core/difference.hpp"

using namespace fresco;

namespace {

int compare(const std::string& a_path, const std::string& b_path, const std::string& name,
            double limit, const std::string& b_name) {
  const Tensor a = h5::File::open(a_path).read_f32(name);
  const Tensor b = h5::File::open(b_path).read_f32(b_name);
  if (a.shape() != b.shape()) {
    std::printf("shapes differ: %s vs %s\n", shape_string(a.shape()).c_str(),
                shape_string(b.shape()).c_str());
    return 1;
  }
  const Difference d = difference(a, b);
  std::printf("%s: relative L2 %.3e, max abs %.3e (limit %.1e)\n", name.c_str(), d.relative_l2,
              d.max_abs, limit);
  return (limit == 0 ? d.squared_error == 0 : d.relative_l2 <= limit) ? 0 : 1;
}

void edit(const std::string& op, const std::string& path, const std::string& name) {
  const hid_t file = FRESCO_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), path);
  FRESCO_H5_CHECK(H5Ldelete(file, name.c_str(), H5P_DEFAULT), path + ":" + name);
  if (op != "delete") {
    const bool as_int = op == "retype";
    const std::vector<hsize_t> dims = as_int ? std::vector<hsize_t>{64} : std::vector<hsize_t>{3, 3};
    const hid_t space = H5Screate_simple(int(dims.size()), dims.data(), nullptr);
    const hid_t type = as_int ? H5T_STD_I32LE : H5T_IEEE_F32LE;
    const hid_t ds = FRESCO_H5_CHECK(
        H5Dcreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), path);
    const std::vector<int32_t> zeros(64 * 9, 0);  // all-zero bits: 0 as int and as float
    FRESCO_H5_CHECK(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros.data()), path);
    H5Dclose(ds);
    H5Sclose(space);
  }
  H5Fclose(file);
}

// Sets (replaces) a scalar attribute of `object`.
void set_attr(const std::string& path, const std::string& object, const std::string& name, const std::string& kind,
              const std::string& value) {
  const hid_t file = FRESCO_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), path);
  if (H5Aexists_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT) > 0)
    FRESCO_H5_CHECK(H5Adelete_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT), path);
  const hid_t space = H5Screate(H5S_SCALAR);
  hid_t type = kind == "int" ? H5Tcopy(H5T_STD_I64LE) : kind == "float" ? H5Tcopy(H5T_IEEE_F64LE) : H5Tcopy(H5T_C_S1);
  if (kind == "str") H5Tset_size(type, std::max<size_t>(value.size(), 1));
  const hid_t a = FRESCO_H5_CHECK(
      H5Acreate_by_name(file, object.c_str(), name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), path);
  const int64_t i = kind == "int" ? std::stoll(value) : 0;
  const double d = kind == "float" ? std::stod(value) : 0.0;
  const void* data = kind == "int" ? static_cast<const void*>(&i) : kind == "float" ? static_cast<const void*>(&d)
                                                                                      : static_cast<const void*>(value.c_str());
  FRESCO_H5_CHECK(H5Awrite(a, type, data), path);
  H5Aclose(a);
  H5Tclose(type);
  H5Sclose(space);
  H5Fclose(file);
}

// Adds a [3, 3] float dataset, or rewrites an f32 dataset as big-endian.
void add_dataset(const std::string& path, const std::string& name, bool big_endian) {
  std::vector<float> values;
  std::vector<hsize_t> dims{3, 3};
  if (big_endian) {
    const Tensor t = h5::File::open(path).read_f32(name);
    values.assign(t.f32(), t.f32() + t.numel());
    dims.assign(t.shape().begin(), t.shape().end());
  } else {
    values.assign(9, 0.5f);
  }
  const hid_t file = FRESCO_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), path);
  if (big_endian) FRESCO_H5_CHECK(H5Ldelete(file, name.c_str(), H5P_DEFAULT), path + ":" + name);
  const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  const hid_t space = H5Screate_simple(int(dims.size()), dims.data(), nullptr);
  const hid_t ds = FRESCO_H5_CHECK(H5Dcreate2(file, name.c_str(), big_endian ? H5T_IEEE_F32BE : H5T_IEEE_F32LE,
                                              space, lcpl, H5P_DEFAULT, H5P_DEFAULT),
                                   path);
  FRESCO_H5_CHECK(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), path);
  H5Dclose(ds);
  H5Sclose(space);
  H5Pclose(lcpl);
  H5Fclose(file);
}

// Prints an attribute of `object` (the root by default) whatever its type (string, integer or
// float).
void print_attr(const std::string& path, const std::string& name, const std::string& object) {
  const h5::File f = h5::File::open(path);
  try {
    std::printf("%s\n", f.read_string_attr(name, object).c_str());
  } catch (const InputError&) {
    try {
      std::printf("%lld\n", (long long)f.read_int_attr(name, object));
    } catch (const InputError&) {
      std::printf("%.17g\n", f.read_double_attr(name, object));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  try {
    if ((a.size() == 5 || a.size() == 6) && a[0] == "compare")
      return compare(a[1], a[2], a[3], std::stod(a[4]), a.size() == 6 ? a[5] : a[3]);
    if (a.size() == 3 && a[0] == "poison") {
      Tensor t = h5::File::open(a[1]).read_f32(a[2]);
      t.f32()[0] = std::nanf("");
      const hid_t f = FRESCO_H5_CHECK(H5Fopen(a[1].c_str(), H5F_ACC_RDWR, H5P_DEFAULT), a[1]);
      const hid_t ds = FRESCO_H5_CHECK(H5Dopen2(f, a[2].c_str(), H5P_DEFAULT), a[1]);
      FRESCO_H5_CHECK(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw()), a[1]);
      H5Dclose(ds);
      H5Fclose(f);
      return 0;
    }
    if ((a.size() == 3 || a.size() == 4) && a[0] == "attr") {
      print_attr(a[1], a[2], a.size() == 4 ? a[3] : "/");
      return 0;
    }
    if (a.size() == 3 && a[0] == "shape") {
      std::printf("%s\n", shape_string(h5::File::open(a[1]).dataset_shape(a[2])).c_str());
      return 0;
    }
    if (a.size() == 3 && (a[0] == "add" || a[0] == "bigendian")) {
      add_dataset(a[1], a[2], a[0] == "bigendian");
      return 0;
    }
    if (a.size() == 5 && (a[0] == "setint" || a[0] == "setfloat" || a[0] == "setstr")) {
      set_attr(a[1], a[2], a[3], a[0].substr(3), a[4]);
      return 0;
    }
    if (a.size() == 3 && (a[0] == "delete" || a[0] == "reshape" || a[0] == "retype")) {
      edit(a[0], a[1], a[2]);
      return 0;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "h5_tool: %s\n", e.what());
    return 2;
  }
  std::fprintf(stderr, "usage: see the comment at the top of tests/h5_tool.cpp\n");
  return 2;
}
