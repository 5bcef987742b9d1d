// safetensors files: strict header parse, read-only mmap, sharded checkpoints.
// Format: u64 little-endian header length N, N bytes of UTF-8 JSON {name: {dtype, shape, data_offsets:[b,e]},
// "__metadata__": {str: str}}, then the data region. Offsets are relative to the data region.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dtype.h"

namespace mambart {

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // points into the mapping; valid while the owning file lives
  size_t nbytes = 0;
  std::string file;            // path of the file holding it (for error messages)

  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  std::string shape_str() const;  // "(80, 1536)"
};

// One .safetensors file, memory-mapped read-only for its lifetime. Throws FileError when it cannot be
// opened/mapped and FormatError (naming the file and the problem) for any malformed content:
// header length beyond the file, invalid/non-UTF-8/deeply nested JSON, unknown dtype, offsets out of
// bounds, overlapping or with gaps, byte size != numel*dtype_size, shape product overflow, duplicate names.
class SafetensorsFile {
 public:
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  // Parses an in-memory buffer (no mmap); used by the fuzzer and tests. The buffer must outlive the object.
  static std::unique_ptr<SafetensorsFile> from_buffer(const void* data, size_t size, const std::string& label);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }
  size_t file_size() const { return size_; }

 private:
  SafetensorsFile() = default;
  void parse();
  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  int fd_ = -1;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a model folder: `model.safetensors`, or the shards named by
// `model.safetensors.index.json` ({"weight_map": {tensor: file}}), or a single explicit file path.
// Every shard is opened (and checked) once; a tensor named in two files, or named in the index but missing
// from its shard, is a FormatError.
class Checkpoint {
 public:
  static std::unique_ptr<Checkpoint> open(const std::string& path);  // folder or .safetensors file
  const TensorInfo* find(const std::string& name) const;             // nullptr when absent
  std::vector<std::string> names() const;
  size_t total_bytes() const;  // sum of the files' sizes
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorInfo*> by_name_;
};

}  // namespace mambart
