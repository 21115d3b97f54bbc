#include "io/weights_file.hpp"

#include <algorithm>

#include "io/h5_file.hpp"

namespace fresco {

std::string checkpoint_key_to_h5(const std::string& key) {
  std::string p = "/" + key;
  std::replace(p.begin(), p.end(), '.', '/');
  return p;
}

std::string h5_to_checkpoint_key(const std::string& path) {
  std::string k = path.substr(path.starts_with('/') ? 1 : 0);
  std::replace(k.begin(), k.end(), '/', '.');
  return k;
}

namespace {

void check_format(const h5::File& file) {
  const std::string what = file.path() + " is not a Fresco weights file";
  if (!file.has_attr("format") || file.read_string_attr("format") != kWeightsFormat)
    throw InputError(what + " (root attribute format is not '" + std::string(kWeightsFormat) + "')");
  const int64_t version = file.read_int_attr("format_version");
  if (version != kWeightsFormatVersion)
    throw InputError(file.path() + " has weights format version " + std::to_string(version) +
                     "; this Fresco reads version " + std::to_string(kWeightsFormatVersion));
}

}  // namespace

WeightsFile::WeightsFile(const std::string& path)
    : file_(std::make_shared<const h5::File>(h5::File::open(path))) {
  check_format(*file_);
  model_ = file_->read_string_attr("model");
  if (file_->has_attr(kQuantizationAttr)) {
    const std::string q = file_->read_string_attr(kQuantizationAttr);
    if (q != kFp8Quantization)
      throw InputError(path + " has quantization '" + q + "'; this Fresco reads '" + kFp8Quantization +
                       "' (FP8 weights files) or none");
    fp8_ = true;
  }
}

const std::string& WeightsFile::path() const { return file_->path(); }

TensorTable WeightsFile::table() const {
  TensorTable found;
  for (const std::string& ds : file_->list_datasets()) {
    const std::optional<DType> dtype = file_->dataset_dtype(ds);
    const std::string stored = dtype == DType::e4m3 ? file_->dataset_type_description(ds)
                                                    : h5::type_description(file_->dataset_type(ds).get());
    found[h5_to_checkpoint_key(ds)] = {file_->dataset_shape(ds), dtype, stored};
  }
  return found;
}

Tensor WeightsFile::read(const std::string& key) const {
  return file_->read_raw(checkpoint_key_to_h5(key));
}

std::string weights_file_model(const std::string& path) { return WeightsFile(path).model(); }

void WeightsWriter::attribute(const std::string& name, const std::string& value) {
  file_.write_attr(name, value);
}

void WeightsWriter::tensor(const std::string& key, const Tensor& host) {
  file_.write(checkpoint_key_to_h5(key), host);
}

void WeightsWriter::tensor_bytes(const std::string& key, DType dtype, const Shape& shape,
                                 const void* bytes) {
  file_.write_bytes(checkpoint_key_to_h5(key), dtype, shape, bytes);
}

void write_weights_file(const std::string& path, const std::string& model,
                        const std::function<void(WeightsWriter&)>& fill) {
  h5::write_atomically(path, [&](h5::File& file) {
    file.write_attr("format", std::string(kWeightsFormat));
    file.write_attr("format_version", kWeightsFormatVersion);
    file.write_attr("model", model);
    WeightsWriter writer(file);
    fill(writer);
  });
}

}  // namespace fresco
