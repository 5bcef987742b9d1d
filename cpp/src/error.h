// Errors: a library never exits. Every failure throws one of these; the Python binding maps
// InvalidArgument -> ValueError, OutOfMemory -> MemoryError, FileError -> OSError (or ValueError for
// malformed content, see FormatError), DeviceError/Error -> RuntimeError. The C API maps them to status codes.
#pragma once
#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>

namespace mambart {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// Bad argument from the caller (ids out of range, wrong shape, bad option).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};
// A file whose content is malformed or does not match the model spec (truncated, bad header, wrong shape).
class FormatError : public Error {
 public:
  using Error::Error;
};
// A file that cannot be opened/read/mapped (missing, permissions).
class FileError : public Error {
 public:
  using Error::Error;
};
// A device (CUDA) failure or an unavailable device.
class DeviceError : public Error {
 public:
  using Error::Error;
};
// An allocation that failed; carries the size asked for.
class OutOfMemory : public Error {
 public:
  OutOfMemory(const std::string& what, size_t bytes) : Error(what), bytes_(bytes) {}
  size_t bytes() const { return bytes_; }

 private:
  size_t bytes_;
};

// A computation stopped because the caller's interrupt check said so (Ctrl-C in Python).
class Interrupted : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace mambart

// MAMBART_CHECK(cond, ExceptionType, message parts...) throws ExceptionType(concatenated message).
#define MAMBART_CHECK(cond, Exc, ...)                                  \
  do {                                                                 \
    if (!(cond)) throw ::mambart::Exc(::mambart::detail::cat(__VA_ARGS__)); \
  } while (0)
