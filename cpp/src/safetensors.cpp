// safetensors reader. Every number in the header is treated as hostile; the checks follow the reference
// `safetensors` Rust crate (header <= 100 MB, offsets must tile the data region exactly: no overlap, no
// hole, no trailing bytes) plus overflow checks on shape products.
//
// A file that changes size after opening: the header is read with pread (never through the mapping), all
// offsets are validated against the size seen by fstat, and fstat is repeated just before open() returns:
// a size change in between is a FormatError. If the file is truncated later, while the mapping is in use,
// touching the lost pages raises SIGBUS; no mmap-based reader can prevent that (the same holds for the
// Rust crate and llama.cpp). Do not rewrite a checkpoint in place while a model uses it.
#include "safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <set>
#include <system_error>

#include "error.h"
#include "json.h"

namespace mambart {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100000000;  // as the Rust crate (N > 100_000_000 is HeaderTooLarge)
constexpr size_t kMaxIndexBytes = size_t(64) << 20;
const char* kSingleFile = "model.safetensors";
const char* kIndexFile = "model.safetensors.index.json";

std::string errno_text(int err) { return std::generic_category().message(err); }

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

// Reads exactly n bytes at offset; false on a short read (file shrank).
bool pread_all(int fd, void* buf, size_t n, off_t offset) {
  char* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t got = ::pread(fd, p, n, offset);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= size_t(got);
    offset += got;
  }
  return true;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string TensorInfo::shape_str() const {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // O_NONBLOCK: a FIFO must not hang us
  if (f->fd_ < 0) throw FileError(detail::cat("cannot open ", path, ": ", errno_text(errno)));
  struct stat st;
  if (::fstat(f->fd_, &st) != 0) throw FileError(detail::cat("cannot stat ", path, ": ", errno_text(errno)));
  if (!S_ISREG(st.st_mode)) throw FileError(detail::cat("cannot read ", path, ": not a regular file"));
  f->size_ = size_t(st.st_size);
  if (f->size_ >= 8) {  // smaller files are rejected by parse(); mmap of 0 bytes would fail
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, f->fd_, 0);
    if (p == MAP_FAILED) throw FileError(detail::cat("cannot map ", path, ": ", errno_text(errno)));
    f->base_ = static_cast<const uint8_t*>(p);
    f->mapped_ = true;
  }
  f->parse();  // reads the header with pread while fd_ is open
  if (::fstat(f->fd_, &st) != 0) throw FileError(detail::cat("cannot stat ", path, ": ", errno_text(errno)));
  MAMBART_CHECK(size_t(st.st_size) == f->size_, FormatError, path, ": file changed size while being opened (",
                f->size_, " bytes, then ", st.st_size, ")");
  ::close(f->fd_);  // the mapping stays valid without the descriptor
  f->fd_ = -1;
  return f;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::from_buffer(const void* data, size_t size,
                                                              const std::string& label) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = label;
  f->base_ = static_cast<const uint8_t*>(data);
  f->size_ = size;
  f->parse();
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapped_) ::munmap(const_cast<uint8_t*>(base_), size_);
  if (fd_ >= 0) ::close(fd_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::parse() {
  const std::string& P = path_;
  MAMBART_CHECK(size_ >= 8, FormatError, P, ": file is ", size_,
                " bytes, too short for a safetensors file (needs an 8-byte header length)");
  uint8_t len_bytes[8];
  std::string header_copy;  // the header as read with pread (file) ...
  const char* header = nullptr;  // ... or in place (buffer)
  if (fd_ >= 0) {
    MAMBART_CHECK(pread_all(fd_, len_bytes, 8, 0), FormatError, P, ": file shrank while being read");
  } else {
    std::copy(base_, base_ + 8, len_bytes);
  }
  const uint64_t header_len = read_u64_le(len_bytes);
  MAMBART_CHECK(header_len <= size_ - 8, FormatError, P, ": header length ", header_len, " exceeds file size ",
                size_);
  MAMBART_CHECK(header_len <= kMaxHeaderBytes, FormatError, P, ": header length ", header_len,
                " exceeds the limit of ", kMaxHeaderBytes, " bytes");
  if (fd_ >= 0) {
    header_copy.resize(size_t(header_len));
    MAMBART_CHECK(pread_all(fd_, &header_copy[0], size_t(header_len), 8), FormatError, P,
                  ": file shrank while being read");
    header = header_copy.data();
  } else {
    header = reinterpret_cast<const char*>(base_ + 8);
  }
  const uint8_t* data_region = base_ + 8 + header_len;
  const uint64_t data_size = size_ - 8 - header_len;

  Json::Options opt;
  opt.reject_duplicate_keys = true;
  Json root = Json::parse(header, size_t(header_len), P + ": header", opt);
  MAMBART_CHECK(root.is_object(), FormatError, P, ": header is not a JSON object");

  const auto& members = root.as_object();
  tensors_.reserve(members.size());
  for (const auto& kv : members) {
    const std::string& name = kv.first;
    const Json& entry = kv.second;
    if (name == "__metadata__") {
      MAMBART_CHECK(entry.is_object(), FormatError, P, ": __metadata__ must be an object of strings");
      for (const auto& m : entry.as_object()) {
        MAMBART_CHECK(m.second.is_string(), FormatError, P, ": __metadata__ value of '", printable(m.first),
                      "' is not a string");
        metadata_[m.first] = m.second.as_string();
      }
      continue;
    }
    const std::string where = detail::cat(P, ": tensor '", printable(name), "'");
    MAMBART_CHECK(entry.is_object(), FormatError, where, ": entry is not an object");
    const Json* dtype = entry.get("dtype");
    const Json* shape = entry.get("shape");
    const Json* offsets = entry.get("data_offsets");
    MAMBART_CHECK(dtype && dtype->is_string(), FormatError, where, ": missing or non-string 'dtype'");
    MAMBART_CHECK(shape && shape->is_array(), FormatError, where, ": missing or non-array 'shape'");
    MAMBART_CHECK(offsets && offsets->is_array() && offsets->as_array().size() == 2, FormatError, where,
                  ": 'data_offsets' must be an array [begin, end]");

    TensorInfo t;
    t.name = name;
    t.file = P;
    MAMBART_CHECK(parse_dtype(dtype->as_string(), &t.dtype), FormatError, where, ": unknown dtype '",
                  printable(dtype->as_string()), "'");

    // numel: multiply in the order TensorInfo::numel() does, so that it can never overflow either.
    int64_t numel = 1;
    t.shape.reserve(shape->as_array().size());
    for (const Json& d : shape->as_array()) {
      MAMBART_CHECK(d.is_number(), FormatError, where, ": shape entries must be non-negative integers");
      int64_t v;
      try {
        v = d.as_int(0, INT64_MAX);
      } catch (const FormatError& e) {
        throw FormatError(detail::cat(where, ": shape entry: ", e.what()));
      }
      t.shape.push_back(v);
      MAMBART_CHECK(!__builtin_mul_overflow(numel, v, &numel), FormatError, where, ": shape ", t.shape_str(),
                    " overflows a 64-bit element count");
    }
    uint64_t nbytes = 0;
    MAMBART_CHECK(!__builtin_mul_overflow(uint64_t(numel), uint64_t(dtype_size(t.dtype)), &nbytes), FormatError,
                  where, ": shape ", t.shape_str(), " overflows a 64-bit byte count");

    uint64_t range[2];
    for (int i = 0; i < 2; ++i) {
      const Json& o = offsets->as_array()[i];
      MAMBART_CHECK(o.is_number(), FormatError, where, ": data_offsets must be non-negative integers");
      try {
        range[i] = uint64_t(o.as_int(0, INT64_MAX));
      } catch (const FormatError& e) {
        throw FormatError(detail::cat(where, ": data_offsets: ", e.what()));
      }
    }
    const uint64_t begin = range[0], end = range[1];
    MAMBART_CHECK(begin <= end, FormatError, where, ": data_offsets [", begin, ", ", end, "] end before begin");
    MAMBART_CHECK(end <= data_size, FormatError, where, ": data_offsets [", begin, ", ", end,
                  "] exceed data region of ", data_size, " bytes");
    MAMBART_CHECK(end - begin == nbytes, FormatError, where, ": data_offsets [", begin, ", ", end, "] hold ",
                  end - begin, " bytes but shape ", t.shape_str(), " ", dtype_name(t.dtype), " needs ", nbytes);
    t.data = data_region + begin;
    t.nbytes = size_t(nbytes);
    index_[name] = tensors_.size();  // names are unique: the JSON parser rejected duplicate keys
    tensors_.push_back(std::move(t));
  }

  // The tensors must tile the data region: sorted by offset, each starts where the previous ended.
  std::vector<size_t> order(tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto begin_of = [&](size_t i) { return uint64_t(static_cast<const uint8_t*>(tensors_[i].data) - data_region); };
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    uint64_t ba = begin_of(a), bb = begin_of(b);
    return ba != bb ? ba < bb : tensors_[a].nbytes < tensors_[b].nbytes;
  });
  uint64_t covered = 0;
  const TensorInfo* prev = nullptr;
  for (size_t i : order) {
    const TensorInfo& t = tensors_[i];
    uint64_t b = begin_of(i);
    if (b < covered)
      throw FormatError(detail::cat(P, ": tensor '", printable(t.name), "': data_offsets [", b, ", ", b + t.nbytes,
                                    "] overlap tensor '", printable(prev->name), "' (which ends at ", covered, ")"));
    if (b > covered)
      throw FormatError(detail::cat(P, ": tensor '", printable(t.name), "': data_offsets [", b, ", ", b + t.nbytes,
                                    "] leave a hole: bytes [", covered, ", ", b, ") of the data region belong to "
                                    "no tensor"));
    covered = b + t.nbytes;
    if (t.nbytes > 0 || !prev) prev = &t;
  }
  MAMBART_CHECK(covered == data_size, FormatError, P, ": data region has ", data_size,
                " bytes but the tensors cover only ", covered, " (trailing bytes)");
}

// ---- Checkpoint ----------------------------------------------------------------------------------

namespace {

namespace fs = std::filesystem;

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// Shard names from an index must be plain file names in the checkpoint folder.
bool is_plain_file_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\\') == std::string::npos && s.find('\0') == std::string::npos;
}

}  // namespace

std::unique_ptr<Checkpoint> Checkpoint::open(const std::string& path) {
  std::unique_ptr<Checkpoint> ck(new Checkpoint());
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw FileError(detail::cat("cannot open ", path, ": no such file or directory"));

  std::vector<std::string> shard_names;  // files to open, in the folder dir_
  std::string index_path;
  if (fs::is_directory(st)) {
    ck->dir_ = path;
    fs::path dir(path);
    if (is_file(dir / kSingleFile)) {
      shard_names.push_back(kSingleFile);
    } else if (is_file(dir / kIndexFile)) {
      index_path = (dir / kIndexFile).string();
    } else {
      std::vector<std::string> found;
      for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->path().extension() == ".safetensors" && is_file(it->path()))
          found.push_back(it->path().filename().string());
      }
      if (ec) throw FileError(detail::cat("cannot list ", path, ": ", ec.message()));
      std::sort(found.begin(), found.end());
      if (found.empty())
        throw FileError(detail::cat("no ", kSingleFile, " or ", kIndexFile, " in ", path,
                                    " (a pytorch_model.bin checkpoint? convert it with `mambart convert`)"));
      if (found.size() > 1) {
        std::string list;
        for (const auto& n : found) list += (list.empty() ? "" : ", ") + n;
        throw FileError(detail::cat("several .safetensors files in ", path, " (", list, ") and no ", kIndexFile,
                                    " to say which belong to the model"));
      }
      shard_names.push_back(found[0]);
    }
  } else {
    fs::path p(path);
    ck->dir_ = p.has_parent_path() ? p.parent_path().string() : ".";
    if (p.filename() == kIndexFile)
      index_path = path;
    else
      shard_names.push_back(p.filename().string());
  }

  // tensor -> shard, from the index (empty when there is no index)
  std::vector<std::pair<std::string, std::string>> weight_map;
  if (!index_path.empty()) {
    Json::Options opt;
    opt.reject_duplicate_keys = true;
    std::string text = read_text_file(index_path, kMaxIndexBytes);
    Json root = Json::parse(text.data(), text.size(), index_path, opt);
    const Json* wm = root.get("weight_map");
    MAMBART_CHECK(wm && wm->is_object(), FormatError, index_path, ": missing 'weight_map' object");
    MAMBART_CHECK(!wm->as_object().empty(), FormatError, index_path, ": 'weight_map' is empty");
    std::set<std::string> shards;
    for (const auto& kv : wm->as_object()) {
      MAMBART_CHECK(kv.second.is_string(), FormatError, index_path, ": weight_map entry for tensor '",
                    printable(kv.first), "' is not a file name string");
      const std::string& shard = kv.second.as_string();
      MAMBART_CHECK(is_plain_file_name(shard), FormatError, index_path, ": tensor '", printable(kv.first),
                    "' maps to '", printable(shard), "', which is not a plain file name in the checkpoint folder");
      weight_map.emplace_back(kv.first, shard);
      shards.insert(shard);
    }
    shard_names.assign(shards.begin(), shards.end());
  }

  for (const std::string& name : shard_names) {
    std::string file = (fs::path(ck->dir_) / name).string();
    if (!index_path.empty() && !is_file(file))
      throw FileError(detail::cat(index_path, ": shard '", printable(name), "' not found in ", ck->dir_));
    ck->files_.push_back(SafetensorsFile::open(file));
    for (const TensorInfo& t : ck->files_.back()->tensors()) {
      auto ins = ck->by_name_.emplace(t.name, &t);
      MAMBART_CHECK(ins.second, FormatError, "tensor '", printable(t.name), "' is in both ", ins.first->second->file,
                    " and ", t.file);
    }
  }
  for (const auto& kv : weight_map) {
    auto it = ck->by_name_.find(kv.first);
    std::string shard_path = (fs::path(ck->dir_) / kv.second).string();
    MAMBART_CHECK(it != ck->by_name_.end() && it->second->file == shard_path, FormatError, index_path,
                  ": tensor '", printable(kv.first), "' is listed in shard '", printable(kv.second),
                  "' but that file does not contain it");
  }
  return ck;
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& kv : by_name_) out.push_back(kv.first);
  return out;
}

size_t Checkpoint::total_bytes() const {
  size_t n = 0;
  for (const auto& f : files_) n += f->file_size();
  return n;
}

}  // namespace mambart
