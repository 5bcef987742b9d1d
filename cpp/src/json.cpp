// Strict RFC 8259 JSON parser. Design choices:
// - Recursion is bounded by Options::max_depth (clamped to kDepthCap so a caller cannot ask for a stack
//   overflow); every container level costs two small stack frames.
// - Strings must be valid UTF-8 (Unicode Table 3-7: no overlongs, no UTF-8-encoded surrogates, nothing
//   above U+10FFFF); \u escapes must pair surrogates correctly; raw control characters are rejected.
// - Numbers follow the RFC grammar exactly (no leading zeros, no '+', no bare '.'); values outside the
//   double range are rejected. The text is kept so integers are read exactly (as_int never goes via double).
// - Memory: a parsed value costs far more than its text ("0," is 2 bytes, a Json node ~100), so the parser
//   charges every node and string against a budget proportional to the input and fails cleanly instead
//   of letting a hostile 100 MB header turn into gigabytes of nodes.
#include "json.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <system_error>
#include <unordered_set>

#include "error.h"

namespace mambart {

namespace {

constexpr int kDepthCap = 1024;
constexpr size_t kBudgetBase = size_t(64) << 20;  // bytes of parsed values always allowed
constexpr size_t kBudgetPerInputByte = 16;        // plus this much per input byte

const char* type_name(Json::Type t) {
  switch (t) {
    case Json::Type::Null: return "null";
    case Json::Type::Bool: return "a boolean";
    case Json::Type::Number: return "a number";
    case Json::Type::String: return "a string";
    case Json::Type::Array: return "an array";
    case Json::Type::Object: return "an object";
  }
  return "?";
}

// Length of the well-formed UTF-8 sequence starting at p (lead byte >= 0x80), or 0 when ill-formed.
size_t utf8_sequence_length(const unsigned char* p, size_t avail) {
  unsigned char c = p[0];
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // UTF-16 surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;  // continuation byte, overlong 2-byte lead (C0/C1) or F5..FF
  }
  if (avail < len) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < len; ++i)
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  return len;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::string printable(const std::string& s, size_t max_len) {
  std::string out;
  size_t n = s.size() < max_len ? s.size() : max_len;
  static const char* hex = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F) {
      out.push_back(char(c));
    } else {
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  if (n < s.size()) out += "...";
  return out;
}

class JsonParser {
 public:
  JsonParser(const char* data, size_t size, const std::string& label, const Json::Options& opt)
      : d_(data), n_(size), label_(label), dup_(opt.reject_duplicate_keys) {
    max_depth_ = opt.max_depth < 0 ? 0 : (opt.max_depth > kDepthCap ? kDepthCap : opt.max_depth);
    budget_ = kBudgetBase + (size > (SIZE_MAX - kBudgetBase) / kBudgetPerInputByte
                                 ? SIZE_MAX - kBudgetBase
                                 : size * kBudgetPerInputByte);
  }

  Json parse_document() {
    Json root;
    skip_ws();
    if (pos_ >= n_) fail("empty input, expected a JSON value");
    parse_value(root, 0);
    skip_ws();
    if (pos_ != n_) fail("unexpected data after the JSON value");
    return root;
  }

 private:
  [[noreturn]] void fail(const std::string& what) { fail_at(what, pos_); }
  [[noreturn]] void fail_at(const std::string& what, size_t at) {
    throw FormatError(detail::cat(label_, ": ", what, " at byte ", at));
  }

  void charge(size_t bytes) {
    if (bytes > budget_) fail("JSON document too large to hold in memory (more values than its size allows)");
    budget_ -= bytes;
  }

  void skip_ws() {
    while (pos_ < n_) {
      char c = d_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  void parse_value(Json& out, int depth) {
    charge(sizeof(Json));
    if (pos_ >= n_) fail("unexpected end of input, expected a value");
    char c = d_[pos_];
    switch (c) {
      case '{':
        parse_object(out, depth + 1);
        return;
      case '[':
        parse_array(out, depth + 1);
        return;
      case '"':
        out.type_ = Json::Type::String;
        parse_string(out.str_);
        return;
      case 't':
        parse_literal("true");
        out.type_ = Json::Type::Bool;
        out.b_ = true;
        return;
      case 'f':
        parse_literal("false");
        out.type_ = Json::Type::Bool;
        out.b_ = false;
        return;
      case 'n':
        parse_literal("null");
        out.type_ = Json::Type::Null;
        return;
      default:
        if (c == '-' || is_digit(c)) {
          parse_number(out);
          return;
        }
        if (static_cast<unsigned char>(c) >= 0x80 && utf8_sequence_length(
                reinterpret_cast<const unsigned char*>(d_ + pos_), n_ - pos_) == 0)
          fail("invalid UTF-8");
        fail(detail::cat("unexpected character '", printable(std::string(1, c)), "'"));
    }
  }

  void enter(int depth) {
    if (depth > max_depth_) fail(detail::cat("nesting deeper than ", max_depth_, " levels"));
  }

  void parse_object(Json& out, int depth) {
    enter(depth);
    out.type_ = Json::Type::Object;
    ++pos_;  // '{'
    skip_ws();
    if (pos_ < n_ && d_[pos_] == '}') {
      ++pos_;
      return;
    }
    std::unordered_set<std::string> seen;
    for (;;) {
      skip_ws();
      if (pos_ >= n_ || d_[pos_] != '"') fail("expected a string key");
      size_t key_pos = pos_;
      std::string key;
      parse_string(key);
      if (dup_) {
        charge(key.size() + 32);
        if (!seen.insert(key).second) fail_at(detail::cat("duplicate key '", printable(key), "'"), key_pos);
      }
      skip_ws();
      if (pos_ >= n_ || d_[pos_] != ':') fail("expected ':' after object key");
      ++pos_;
      skip_ws();
      charge(sizeof(std::pair<std::string, Json>));
      out.obj_.emplace_back(std::move(key), Json());
      parse_value(out.obj_.back().second, depth);
      skip_ws();
      if (pos_ >= n_) fail("unexpected end of input in object");
      if (d_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (d_[pos_] == '}') {
        ++pos_;
        return;
      }
      fail("expected ',' or '}' in object");
    }
  }

  void parse_array(Json& out, int depth) {
    enter(depth);
    out.type_ = Json::Type::Array;
    ++pos_;  // '['
    skip_ws();
    if (pos_ < n_ && d_[pos_] == ']') {
      ++pos_;
      return;
    }
    for (;;) {
      skip_ws();
      out.arr_.emplace_back();
      parse_value(out.arr_.back(), depth);
      skip_ws();
      if (pos_ >= n_) fail("unexpected end of input in array");
      if (d_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (d_[pos_] == ']') {
        ++pos_;
        return;
      }
      fail("expected ',' or ']' in array");
    }
  }

  void parse_literal(const char* word) {
    size_t len = std::strlen(word);
    if (n_ - pos_ < len || std::memcmp(d_ + pos_, word, len) != 0) fail("invalid literal");
    pos_ += len;
  }

  void parse_number(Json& out) {
    size_t start = pos_;
    if (d_[pos_] == '-') ++pos_;
    if (pos_ >= n_ || !is_digit(d_[pos_])) fail_at("invalid number", start);
    if (d_[pos_] == '0') {
      ++pos_;
      if (pos_ < n_ && is_digit(d_[pos_])) fail_at("number with a leading zero", start);
    } else {
      while (pos_ < n_ && is_digit(d_[pos_])) ++pos_;
    }
    if (pos_ < n_ && d_[pos_] == '.') {
      ++pos_;
      if (pos_ >= n_ || !is_digit(d_[pos_])) fail_at("invalid number (no digit after '.')", start);
      while (pos_ < n_ && is_digit(d_[pos_])) ++pos_;
    }
    if (pos_ < n_ && (d_[pos_] == 'e' || d_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < n_ && (d_[pos_] == '+' || d_[pos_] == '-')) ++pos_;
      if (pos_ >= n_ || !is_digit(d_[pos_])) fail_at("invalid number (no digit in exponent)", start);
      while (pos_ < n_ && is_digit(d_[pos_])) ++pos_;
    }
    charge(pos_ - start);
    out.type_ = Json::Type::Number;
    out.str_.assign(d_ + start, pos_ - start);
    double v = 0;
    auto r = std::from_chars(out.str_.data(), out.str_.data() + out.str_.size(), v);
    if (r.ec != std::errc() || r.ptr != out.str_.data() + out.str_.size())
      fail_at(detail::cat("number ", printable(out.str_, 40), " out of range"), start);
    out.num_ = v;
  }

  uint32_t parse_hex4() {
    if (n_ - pos_ < 4) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hex_value(d_[pos_ + i]);
      if (h < 0) fail("invalid hex digit in \\u escape");
      v = v << 4 | uint32_t(h);
    }
    pos_ += 4;
    return v;
  }

  void parse_string(std::string& out) {
    size_t start = pos_;
    ++pos_;  // opening quote
    for (;;) {
      // Fast path: a run of plain printable ASCII.
      size_t run = pos_;
      while (run < n_) {
        unsigned char c = static_cast<unsigned char>(d_[run]);
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') break;
        ++run;
      }
      if (run > pos_) {
        charge(run - pos_);
        out.append(d_ + pos_, run - pos_);
        pos_ = run;
      }
      if (pos_ >= n_) fail_at("unterminated string", start);
      unsigned char c = static_cast<unsigned char>(d_[pos_]);
      if (c == '"') {
        ++pos_;
        return;
      }
      if (c < 0x20) fail("control character in string (must be escaped)");
      if (c >= 0x80) {
        size_t len = utf8_sequence_length(reinterpret_cast<const unsigned char*>(d_ + pos_), n_ - pos_);
        if (len == 0) fail("invalid UTF-8 in string");
        charge(len);
        out.append(d_ + pos_, len);
        pos_ += len;
        continue;
      }
      // Backslash escape.
      size_t esc = pos_;
      ++pos_;
      if (pos_ >= n_) fail_at("unterminated string", start);
      char e = d_[pos_++];
      charge(4);
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          uint32_t cp = parse_hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail_at("lone low surrogate in \\u escape", esc);
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (n_ - pos_ < 2 || d_[pos_] != '\\' || d_[pos_ + 1] != 'u')
              fail_at("high surrogate in \\u escape not followed by a low surrogate", esc);
            pos_ += 2;
            uint32_t lo = parse_hex4();
            if (lo < 0xDC00 || lo > 0xDFFF)
              fail_at("high surrogate in \\u escape not followed by a low surrogate", esc);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default:
          fail_at("invalid escape in string", esc);
      }
    }
  }

  const char* d_;
  size_t n_;
  size_t pos_ = 0;
  const std::string& label_;
  bool dup_;
  int max_depth_;
  size_t budget_;
};

Json Json::parse(const char* data, size_t size, const std::string& label, const Options& opt) {
  JsonParser p(data, size, label, opt);
  return p.parse_document();
}

bool Json::as_bool() const {
  MAMBART_CHECK(is_bool(), FormatError, "expected a boolean, got ", type_name(type_));
  return b_;
}

double Json::as_number() const {
  MAMBART_CHECK(is_number(), FormatError, "expected a number, got ", type_name(type_));
  return num_;
}

int64_t Json::as_int(int64_t lo, int64_t hi) const {
  MAMBART_CHECK(is_number(), FormatError, "expected an integer, got ", type_name(type_));
  int64_t v = 0;
  const char* b = str_.data();
  const char* e = b + str_.size();
  auto r = std::from_chars(b, e, v);
  bool integral = r.ptr == e;  // a '.' or exponent stops from_chars early
  MAMBART_CHECK(integral && r.ec == std::errc() && v >= lo && v <= hi, FormatError, "expected an integer in [",
                lo, ", ", hi, "], got ", printable(str_, 40));
  return v;
}

const std::string& Json::as_string() const {
  MAMBART_CHECK(is_string(), FormatError, "expected a string, got ", type_name(type_));
  return str_;
}

const std::vector<Json>& Json::as_array() const {
  MAMBART_CHECK(is_array(), FormatError, "expected an array, got ", type_name(type_));
  return arr_;
}

const std::vector<std::pair<std::string, Json>>& Json::as_object() const {
  MAMBART_CHECK(is_object(), FormatError, "expected an object, got ", type_name(type_));
  return obj_;
}

const Json* Json::get(const std::string& key) const {
  if (!is_object()) return nullptr;
  for (const auto& kv : obj_)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

const std::string& Json::raw_number() const {
  static const std::string empty;
  return is_number() ? str_ : empty;
}

namespace {
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};
std::string errno_text(int err) { return std::generic_category().message(err); }
}  // namespace

std::string read_text_file(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // O_NONBLOCK: a FIFO must not hang us
  if (fd < 0) throw FileError(detail::cat("cannot open ", path, ": ", errno_text(errno)));
  FdCloser closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) throw FileError(detail::cat("cannot stat ", path, ": ", errno_text(errno)));
  if (S_ISDIR(st.st_mode)) throw FileError(detail::cat("cannot read ", path, ": it is a directory"));
  if (!S_ISREG(st.st_mode)) throw FileError(detail::cat("cannot read ", path, ": not a regular file"));
  if (uint64_t(st.st_size) > max_bytes)
    throw FormatError(detail::cat(path, ": file is ", st.st_size, " bytes, more than the limit of ", max_bytes));
  std::string out;
  out.reserve(size_t(st.st_size));
  char buf[65536];
  for (;;) {
    ssize_t got = ::read(fd, buf, sizeof(buf));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw FileError(detail::cat("cannot read ", path, ": ", errno_text(errno)));
    }
    if (got == 0) break;
    if (out.size() + size_t(got) > max_bytes)
      throw FormatError(detail::cat(path, ": file is more than the limit of ", max_bytes, " bytes"));
    out.append(buf, size_t(got));
  }
  return out;
}

}  // namespace mambart
