// A small strict JSON parser (RFC 8259) for safetensors headers and config.json files.
// Rejects invalid UTF-8, nesting deeper than max_depth, trailing garbage, duplicate object keys
// (when asked), and anything larger than the input. Never recurses past max_depth.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mambart {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  bool as_bool() const;                 // throws FormatError when not a bool
  double as_number() const;             // throws FormatError when not a number
  // Integer value; throws FormatError when not an integral number within [lo, hi].
  int64_t as_int(int64_t lo = INT64_MIN, int64_t hi = INT64_MAX) const;
  const std::string& as_string() const;  // throws FormatError when not a string
  const std::vector<Json>& as_array() const;
  // Object members in file order (keys unique when parsed with reject_duplicate_keys).
  const std::vector<std::pair<std::string, Json>>& as_object() const;
  const Json* get(const std::string& key) const;  // object member or nullptr (nullptr if not an object)

  struct Options {
    int max_depth = 64;
    bool reject_duplicate_keys = true;
  };
  // Throws FormatError("<label>: <what> at byte <offset>") on any error.
  static Json parse(const char* data, size_t size, const std::string& label, const Options& opt);
  static Json parse(const std::string& text, const std::string& label) {
    return parse(text.data(), text.size(), label, Options());
  }

  // Number text as written (for exact integer checks); empty for non-numbers.
  const std::string& raw_number() const;

 private:
  friend class JsonParser;
  Type type_ = Type::Null;
  bool b_ = false;
  double num_ = 0;
  std::string str_;
  std::vector<Json> arr_;
  std::vector<std::pair<std::string, Json>> obj_;
};

std::string read_text_file(const std::string& path, size_t max_bytes);  // FileError/FormatError

// `s` made safe to embed in an error message: control and non-ASCII-printable bytes as \xNN, cut to
// max_len bytes with "..." (names read from hostile files must not put NULs or megabytes into messages).
std::string printable(const std::string& s, size_t max_len = 120);

}  // namespace mambart
