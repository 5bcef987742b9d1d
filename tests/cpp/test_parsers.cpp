// Tests of the parsing layer: JSON, safetensors (single file and sharded checkpoints), config.json.
// Every hostile-input case of issue 7 item 2 has a test here; files are written into a fresh temp dir.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "config.h"
#include "dtype.h"
#include "error.h"
#include "json.h"
#include "safetensors.h"
#include "test_harness.h"

using namespace mambart;
namespace fs = std::filesystem;

namespace {

// ---- helpers -------------------------------------------------------------------------------------

const fs::path& temp_root() {
  static fs::path root = [] {
    std::string tmpl = (fs::temp_directory_path() / "mambart_test_parsers_XXXXXX").string();
    if (!::mkdtemp(&tmpl[0])) throw std::runtime_error("mkdtemp failed");
    return fs::path(tmpl);
  }();
  return root;
}

// A fresh empty folder under the temp root.
fs::path fresh_dir(const std::string& name) {
  fs::path d = temp_root() / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + p.string());
}

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char((v >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from a raw header text and data region (header padded with spaces to 8 bytes, as
// the reference writer does).
std::string st_raw(std::string header, const std::string& data, bool pad = true) {
  if (pad)
    while (header.size() % 8) header += ' ';
  return u64_le(header.size()) + header + data;
}

struct Tensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::string bytes;  // raw little-endian contents
};

std::mt19937& rng() {
  static std::mt19937 g(std::random_device{}());
  return g;
}

// A tensor of fresh random values (never all zeros) stored as `dtype`.
Tensor random_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng());
  std::string bytes(size_t(n) * dtype_size(dtype), '\0');
  from_f32(v.data(), dtype, &bytes[0], size_t(n));
  return {name, dtype, shape, bytes};
}

std::string shape_json(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// A valid safetensors file holding `ts` back to back (in the given order), with optional metadata JSON.
std::string st_build(const std::vector<Tensor>& ts, const std::string& metadata_json = "") {
  std::string header = "{";
  if (!metadata_json.empty()) header += "\"__metadata__\":" + metadata_json;
  std::string data;
  for (const auto& t : ts) {
    if (header.size() > 1) header += ",";
    header += test::cat("\"", t.name, "\":{\"dtype\":\"", dtype_name(t.dtype), "\",\"shape\":", shape_json(t.shape),
                        ",\"data_offsets\":[", data.size(), ",", data.size() + t.bytes.size(), "]}");
    data += t.bytes;
  }
  return st_raw(header + "}", data);
}

std::string one_entry(const std::string& name, const std::string& dtype, const std::string& shape,
                      const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

std::unique_ptr<SafetensorsFile> from_string(const std::string& bytes, const std::string& label = "t.safetensors") {
  return SafetensorsFile::from_buffer(bytes.data(), bytes.size(), label);
}

Json parse_json(const std::string& text, int max_depth = 64, bool reject_dup = true) {
  Json::Options opt;
  opt.max_depth = max_depth;
  opt.reject_duplicate_keys = reject_dup;
  return Json::parse(text.data(), text.size(), "j", opt);
}

}  // namespace

// ---- JSON ----------------------------------------------------------------------------------------

TEST(json_valid_document) {
  Json j = parse_json(
      " {\"a\": [1, -2.5e3, 0, -0, 1E+2], \"b\": {\"c\": null, \"d\": true, \"e\": false},"
      " \"s\": \"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20AC\\ud83d\\ude00\xc3\xa9\"} \r\n");
  CHECK(j.is_object());
  CHECK_EQ(j.as_object().size(), size_t(3));
  const auto& a = j.get("a")->as_array();
  CHECK_EQ(a.size(), size_t(5));
  CHECK_EQ(a[0].as_int(), 1);
  CHECK_EQ(a[1].as_number(), -2500.0);
  CHECK_EQ(a[1].raw_number(), std::string("-2.5e3"));
  CHECK_EQ(a[3].as_int(), 0);
  CHECK_EQ(a[4].as_number(), 100.0);
  CHECK(j.get("b")->get("c")->is_null());
  CHECK(j.get("b")->get("d")->as_bool());
  CHECK(!j.get("b")->get("e")->as_bool());
  CHECK(j.get("missing") == nullptr);
  CHECK(a[0].get("x") == nullptr);  // get on a non-object
  CHECK_EQ(j.get("s")->as_string(), std::string("q\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xc3\xa9"));
  CHECK(j.get("s")->raw_number().empty());  // not a number
  // \u0000 is valid JSON and becomes a NUL byte
  CHECK_EQ(parse_json("\"a\\u0000b\"").as_string(), std::string("a\0b", 3));
  // scalars at top level
  CHECK_EQ(parse_json("42").as_int(), 42);
  CHECK(parse_json("[]").as_array().empty());
  CHECK(parse_json("{}").as_object().empty());
}

TEST(json_rejects_invalid_syntax) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "empty input"},
      {"   ", "empty input"},
      {"{} x", "unexpected data after the JSON value at byte 3"},
      {"[1] [2]", "unexpected data after the JSON value"},
      {"01", "leading zero"},
      {"-01", "leading zero"},
      {"-", "invalid number"},
      {"1.", "no digit after '.'"},
      {".5", "unexpected character"},
      {"+1", "unexpected character"},
      {"1e", "no digit in exponent"},
      {"1e+", "no digit in exponent"},
      {"NaN", "unexpected character"},
      {"Infinity", "unexpected character"},
      {"-Infinity", "invalid number"},
      {"1e400", "out of range"},
      {"[1,]", "unexpected character ']'"},
      {"{\"a\":1,}", "expected a string key"},
      {"{'a':1}", "expected a string key"},
      {"{\"a\" 1}", "expected ':'"},
      {"{\"a\":1 \"b\":2}", "expected ',' or '}'"},
      {"[1 2]", "expected ',' or ']'"},
      {"[1", "unexpected end of input in array"},
      {"{\"a\":", "unexpected end of input, expected a value"},
      {"tru", "invalid literal"},
      {"nul", "invalid literal"},
      {"True", "unexpected character"},
      {"\"abc", "unterminated string at byte 0"},
      {"\"a\tb\"", "control character in string"},
      {"\"a\nb\"", "control character in string"},
      {std::string("\"a\0b\"", 5), "control character in string"},
      {"\"\\q\"", "invalid escape"},
      {"\"\\u12G4\"", "invalid hex digit"},
      {"\"\\u12\"", "truncated \\u escape"},
      {"\"\\u12", "truncated \\u escape"},
      {"\"\\ud800\"", "high surrogate"},
      {"\"\\ud800\\u0041\"", "high surrogate"},
      {"\"\\ud800x\"", "high surrogate"},
      {"\"\\udc00\"", "lone low surrogate"},
      {"\"\\ude00\\ud83d\"", "lone low surrogate"},
      {"\xef\xbb\xbf{}", "unexpected character"},  // a BOM is not JSON (parse_config skips it)
  };
  for (const auto& c : cases) EXPECT_THROW(FormatError, parse_json(c.first), c.second);
}

TEST(json_rejects_invalid_utf8) {
  const std::string bad[] = {
      "\x80",                  // lone continuation byte
      "\xbf",                  // lone continuation byte
      "\xc0\x80",              // overlong NUL
      "\xc1\xbf",              // overlong
      "\xe0\x80\x80",          // overlong 3-byte
      "\xe0\x9f\xbf",          // overlong 3-byte (U+07FF)
      "\xf0\x80\x80\x80",      // overlong 4-byte
      "\xf0\x8f\xbf\xbf",      // overlong 4-byte (U+FFFF)
      "\xed\xa0\x80",          // UTF-8-encoded high surrogate U+D800
      "\xed\xbf\xbf",          // UTF-8-encoded low surrogate U+DFFF
      "\xf4\x90\x80\x80",      // U+110000
      "\xf5\x80\x80\x80",      // lead byte beyond U+10FFFF
      "\xff",                  // never valid
      "\xe2\x82",              // truncated sequence
      "\xe2\x82x",             // bad continuation
      "\xf0\x9f\x98",          // truncated 4-byte
  };
  for (const auto& b : bad) {
    EXPECT_THROW(FormatError, parse_json("\"ok" + b + "\""), "invalid UTF-8 in string at byte 3");
    EXPECT_THROW(FormatError, parse_json(b), "");  // outside a string too
  }
  // boundaries that are valid
  const std::string good[] = {"\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80",
                              "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf"};
  for (const auto& g : good) CHECK_EQ(parse_json("\"" + g + "\"").as_string(), g);
}

TEST(json_depth_limit) {
  auto nested = [](int depth) { return std::string(size_t(depth), '[') + std::string(size_t(depth), ']'); };
  CHECK(parse_json(nested(64)).is_array());
  EXPECT_THROW(FormatError, parse_json(nested(65)), "nesting deeper than 64 levels at byte 64");
  // deeply nested hostile input fails at the limit, without recursing 1M levels
  EXPECT_THROW(FormatError, parse_json(std::string(1000000, '[')), "nesting deeper than 64");
  std::string objs;
  for (int i = 0; i < 100000; ++i) objs += "{\"a\":";
  EXPECT_THROW(FormatError, parse_json(objs), "nesting deeper than 64");
  // custom limits, and a huge requested limit is clamped (no stack overflow)
  EXPECT_THROW(FormatError, parse_json(nested(3), 2), "nesting deeper than 2");
  CHECK(parse_json(nested(2), 2).is_array());
  EXPECT_THROW(FormatError, parse_json(std::string(200000, '['), 1 << 30), "nesting deeper than");
}

TEST(json_duplicate_keys) {
  EXPECT_THROW(FormatError, parse_json("{\"a\":1,\"b\":2,\"a\":3}"), "duplicate key 'a' at byte 13");
  // duplicates after escape decoding are still duplicates
  EXPECT_THROW(FormatError, parse_json("{\"a\":1,\"\\u0061\":3}"), "duplicate key 'a'");
  Json j = parse_json("{\"a\":1,\"a\":3}", 64, false);
  CHECK_EQ(j.as_object().size(), size_t(2));
  // nested objects have their own key sets
  CHECK(parse_json("{\"a\":{\"a\":1},\"b\":{\"a\":2}}").is_object());
}

TEST(json_as_int_and_types) {
  CHECK_EQ(parse_json("9223372036854775807").as_int(), INT64_MAX);
  CHECK_EQ(parse_json("-9223372036854775808").as_int(), INT64_MIN);
  EXPECT_THROW(FormatError, parse_json("9223372036854775808").as_int(), "expected an integer");
  EXPECT_THROW(FormatError, parse_json("16.0").as_int(), "got 16.0");
  EXPECT_THROW(FormatError, parse_json("1e3").as_int(), "expected an integer");
  EXPECT_THROW(FormatError, parse_json("5").as_int(0, 4), "expected an integer in [0, 4], got 5");
  EXPECT_THROW(FormatError, parse_json("\"5\"").as_int(), "expected an integer, got a string");
  EXPECT_THROW(FormatError, parse_json("1").as_string(), "expected a string, got a number");
  EXPECT_THROW(FormatError, parse_json("1").as_bool(), "expected a boolean");
  EXPECT_THROW(FormatError, parse_json("null").as_number(), "expected a number, got null");
  EXPECT_THROW(FormatError, parse_json("{}").as_array(), "expected an array, got an object");
  EXPECT_THROW(FormatError, parse_json("[]").as_object(), "expected an object, got an array");
}

TEST(json_memory_budget) {
  // 8 MB of "0," would become ~4M nodes (~400 MB); the parser stops at its budget instead.
  std::string many = "[";
  for (int i = 0; i < 4000000; ++i) many += "0,";
  many += "0]";
  EXPECT_THROW(FormatError, parse_json(many), "too large to hold in memory");
  // ordinary documents of the same size are fine
  std::string strings = "[";
  for (int i = 0; i < 100000; ++i) strings += "\"backbone.layers.0.mixer.in_proj.weight\",";
  strings += "0]";
  CHECK_EQ(parse_json(strings).as_array().size(), size_t(100001));
}

TEST(json_printable) {
  CHECK_EQ(printable("abc"), std::string("abc"));
  CHECK_EQ(printable(std::string("a\0\n\xff", 4)), std::string("a\\x00\\x0a\\xff"));
  CHECK_EQ(printable(std::string(200, 'x'), 10), std::string(10, 'x') + "...");
}

TEST(read_text_file_errors) {
  fs::path d = fresh_dir("read_text");
  write_file(d / "a.txt", "hello");
  CHECK_EQ(read_text_file((d / "a.txt").string(), 5), std::string("hello"));
  EXPECT_THROW(FormatError, read_text_file((d / "a.txt").string(), 4), "more than the limit of 4");
  EXPECT_THROW(FileError, read_text_file((d / "nope.txt").string(), 100), "cannot open");
  EXPECT_THROW(FileError, read_text_file(d.string(), 100), "is a directory");
  CHECK(::mkfifo((d / "fifo").c_str(), 0600) == 0);  // must fail at once, not block
  EXPECT_THROW(FileError, read_text_file((d / "fifo").string(), 100), "not a regular file");
}

// ---- safetensors: valid files ---------------------------------------------------------------------

TEST(st_valid_f32_f16_bf16) {
  std::vector<Tensor> ts = {random_tensor("backbone.embeddings.weight", DType::F32, {7, 5}),
                            random_tensor("h", DType::F16, {3, 4, 2}), random_tensor("b", DType::BF16, {9}),
                            random_tensor("scalar", DType::F32, {})};
  std::string bytes = st_build(ts, "{\"format\":\"pt\",\"note\":\"\\u00e9\"}");
  fs::path d = fresh_dir("st_valid");
  write_file(d / "m.safetensors", bytes);
  auto mapped = SafetensorsFile::open((d / "m.safetensors").string());
  auto buffered = from_string(bytes);
  for (SafetensorsFile* f : {mapped.get(), buffered.get()}) {
    CHECK_EQ(f->tensors().size(), ts.size());
    CHECK_EQ(f->metadata().at("format"), std::string("pt"));
    CHECK_EQ(f->metadata().at("note"), std::string("\xc3\xa9"));
    for (const auto& t : ts) {
      const TensorInfo* info = f->find(t.name);
      CHECK(info != nullptr);
      CHECK(info->dtype == t.dtype);
      CHECK(info->shape == t.shape);
      CHECK_EQ(info->nbytes, t.bytes.size());
      CHECK_EQ(info->numel() * int64_t(dtype_size(t.dtype)), int64_t(t.bytes.size()));
      CHECK(std::memcmp(info->data, t.bytes.data(), t.bytes.size()) == 0);
      CHECK_EQ(info->file, f->path());
      // the values convert back as written (fp16/bf16 were rounded once when the file was made)
      std::vector<float> got(size_t(info->numel())), want(size_t(info->numel()));
      to_f32(info->dtype, info->data, got.data(), got.size());
      to_f32(t.dtype, t.bytes.data(), want.data(), want.size());
      CHECK(got == want);
    }
    CHECK(f->find("nope") == nullptr);
    // tensors() keeps file order
    CHECK_EQ(f->tensors()[1].name, std::string("h"));
  }
  CHECK_EQ(mapped->file_size(), bytes.size());
  CHECK_EQ(mapped->find("scalar")->shape_str(), std::string("()"));
  CHECK_EQ(mapped->find("b")->shape_str(), std::string("(9,)"));
  CHECK_EQ(mapped->find("h")->shape_str(), std::string("(3, 4, 2)"));
}

TEST(st_valid_unusual_but_legal) {
  // tensors listed out of offset order, an empty tensor anywhere, whitespace padding, other dtypes
  std::string data(8 + 2 + 1, '\x01');
  std::string header = "{" + one_entry("second", "F32", "[2]", "[2,10]") + "," +
                       one_entry("empty", "F16", "[0,5]", "[10,10]") + "," + one_entry("first", "I16", "[1]", "[0,2]") +
                       "," + one_entry("flag", "BOOL", "[1]", "[10,11]") +
                       ",\"ignored_keys\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[11,11],\"x\":1}}";
  auto f = from_string(st_raw(header, data));
  CHECK_EQ(f->tensors().size(), size_t(5));
  CHECK_EQ(f->find("empty")->nbytes, size_t(0));
  CHECK_EQ(f->find("empty")->numel(), int64_t(0));
  CHECK(f->find("flag")->dtype == DType::BOOL);
  CHECK_EQ(f->find("first")->shape_str(), std::string("(1,)"));
}

TEST(st_empty_files) {
  // no tensors at all
  auto f = from_string(st_raw("{}", ""));
  CHECK(f->tensors().empty());
  CHECK(f->metadata().empty());
  // only metadata
  auto g = from_string(st_raw("{\"__metadata__\":{\"a\":\"b\"}}", ""));
  CHECK(g->tensors().empty());
  CHECK_EQ(g->metadata().at("a"), std::string("b"));
  // only empty tensors
  auto h = from_string(st_raw("{" + one_entry("e1", "F32", "[0]", "[0,0]") + "," +
                                  one_entry("e2", "BF16", "[4,0,3]", "[0,0]") + "}",
                              ""));
  CHECK_EQ(h->tensors().size(), size_t(2));
  // and through the file path (a 16-byte file maps fine)
  fs::path d = fresh_dir("st_empty");
  write_file(d / "e.safetensors", st_raw("{}", ""));
  CHECK(SafetensorsFile::open((d / "e.safetensors").string())->tensors().empty());
}

// ---- safetensors: hostile files -------------------------------------------------------------------

TEST(st_too_short) {
  EXPECT_THROW(FormatError, from_string(""), "t.safetensors: file is 0 bytes, too short");
  EXPECT_THROW(FormatError, from_string(std::string("\x02\0\0\0\0\0\0", 7)), "file is 7 bytes, too short");
  fs::path d = fresh_dir("st_short");
  write_file(d / "zero.safetensors", "");
  write_file(d / "seven.safetensors", "1234567");
  EXPECT_THROW(FormatError, SafetensorsFile::open((d / "zero.safetensors").string()), "file is 0 bytes");
  EXPECT_THROW(FormatError, SafetensorsFile::open((d / "seven.safetensors").string()), "file is 7 bytes");
}

TEST(st_header_length_beyond_file) {
  std::string bytes = u64_le(1000000) + std::string(112, ' ');
  EXPECT_THROW(FormatError, from_string(bytes, "model.safetensors"),
               "model.safetensors: header length 1000000 exceeds file size 120");
  // a length that would wrap around if added to 8
  EXPECT_THROW(FormatError, from_string(u64_le(UINT64_MAX) + "{}"), "header length 18446744073709551615 exceeds");
  EXPECT_THROW(FormatError, from_string(u64_le(UINT64_MAX - 7) + "{}"), "exceeds file size 10");
  // one byte past the end
  EXPECT_THROW(FormatError, from_string(u64_le(3) + "{}"), "header length 3 exceeds file size 10");
  // beyond the 100 MB limit, in a sparse file (nothing is read or allocated)
  fs::path d = fresh_dir("st_huge_header");
  fs::path p = d / "huge.safetensors";
  write_file(p, u64_le(100000001));
  fs::resize_file(p, 100000001 + 8);
  EXPECT_THROW(FormatError, SafetensorsFile::open(p.string()), "header length 100000001 exceeds the limit");
}

TEST(st_truncated_data) {
  std::vector<Tensor> ts = {random_tensor("a", DType::F32, {4, 4}), random_tensor("x.weight", DType::F32, {25})};
  std::string bytes = st_build(ts);
  std::string cut = bytes.substr(0, bytes.size() - 36);  // data region: 64 + 100 - 36 = 128 bytes
  EXPECT_THROW(FormatError, from_string(cut, "model.safetensors"),
               "model.safetensors: tensor 'x.weight': data_offsets [64, 164] exceed data region of 128 bytes");
  // truncated inside the header
  EXPECT_THROW(FormatError, from_string(bytes.substr(0, 20)), "exceeds file size 20");
  fs::path d = fresh_dir("st_trunc");
  write_file(d / "t.safetensors", cut);
  EXPECT_THROW(FormatError, SafetensorsFile::open((d / "t.safetensors").string()), "exceed data region of 128 bytes");
}

TEST(st_overlapping_and_out_of_order_offsets) {
  std::string data(16, '\x07');
  // overlap
  EXPECT_THROW(FormatError,
               from_string(st_raw("{" + one_entry("a", "F32", "[2]", "[0,8]") + "," +
                                      one_entry("b", "F32", "[2]", "[4,12]") + "," +
                                      one_entry("c", "F32", "[1]", "[12,16]") + "}",
                                  data)),
               "tensor 'b': data_offsets [4, 12] overlap tensor 'a'");
  // two tensors aliasing the same bytes
  EXPECT_THROW(FormatError,
               from_string(st_raw("{" + one_entry("a", "F32", "[4]", "[0,16]") + "," +
                                      one_entry("b", "F32", "[4]", "[0,16]") + "}",
                                  data)),
               "overlap");
  // an empty tensor placed inside another one
  EXPECT_THROW(FormatError,
               from_string(st_raw("{" + one_entry("a", "F32", "[4]", "[0,16]") + "," +
                                      one_entry("e", "F32", "[0]", "[4,4]") + "}",
                                  data)),
               "tensor 'e': data_offsets [4, 4] overlap tensor 'a'");
  // end before begin
  EXPECT_THROW(FormatError,
               from_string(st_raw("{" + one_entry("a", "F32", "[-1]", "[8,4]") + "}", data)), "shape entry");
  EXPECT_THROW(FormatError, from_string(st_raw("{" + one_entry("a", "F32", "[1]", "[8,4]") + "}", data)),
               "tensor 'a': data_offsets [8, 4] end before begin");
  // a hole between tensors, a hole at the start, trailing bytes
  EXPECT_THROW(FormatError,
               from_string(st_raw("{" + one_entry("a", "F32", "[1]", "[0,4]") + "," +
                                      one_entry("b", "F32", "[2]", "[8,16]") + "}",
                                  data)),
               "tensor 'b': data_offsets [8, 16] leave a hole: bytes [4, 8)");
  EXPECT_THROW(FormatError, from_string(st_raw("{" + one_entry("a", "F32", "[3]", "[4,16]") + "}", data)),
               "leave a hole: bytes [0, 4)");
  EXPECT_THROW(FormatError, from_string(st_raw("{" + one_entry("a", "F32", "[3]", "[0,12]") + "}", data)),
               "data region has 16 bytes but the tensors cover only 12");
  EXPECT_THROW(FormatError, from_string(st_raw("{}", "x")), "data region has 1 bytes but the tensors cover only 0");
}

TEST(st_byte_size_disagrees_with_offsets) {
  std::string data(16, '\x05');
  EXPECT_THROW(FormatError, from_string(st_raw("{" + one_entry("w", "F32", "[2,2]", "[0,8]") + "}", data)),
               "tensor 'w': data_offsets [0, 8] hold 8 bytes but shape (2, 2) F32 needs 16");
  EXPECT_THROW(FormatError, from_string(st_raw("{" + one_entry("w", "BF16", "[2,2]", "[0,16]") + "}", data)),
               "hold 16 bytes but shape (2, 2) BF16 needs 8");
  EXPECT_THROW(FormatError, from_string(st_raw("{" + one_entry("w", "F32", "[0]", "[0,16]") + "}", data)),
               "needs 0");
}

TEST(st_shape_product_overflow) {
  std::string data(16, '\x05');
  auto with_shape = [&](const std::string& shape, const std::string& dtype = "F32") {
    return from_string(st_raw("{" + one_entry("w", dtype, shape, "[0,16]") + "}", data));
  };
  EXPECT_THROW(FormatError, with_shape("[4294967296,4294967296]"), "tensor 'w': shape (4294967296, 4294967296) "
                                                                    "overflows a 64-bit element count");
  // the product is 0 but an intermediate product overflows (TensorInfo::numel would overflow)
  EXPECT_THROW(FormatError, with_shape("[4611686018427387904,4,0]"), "overflows a 64-bit element count");
  // numel fits but numel * dtype_size does not
  EXPECT_THROW(FormatError, with_shape("[4611686018427387904]"), "overflows a 64-bit byte count");
  EXPECT_THROW(FormatError, with_shape("[2305843009213693952]", "F64"), "overflows a 64-bit byte count");
  // numel * size wraps to exactly 16 modulo 2^64 (a classic bypass of unchecked multiplication)
  EXPECT_THROW(FormatError, with_shape("[4611686018427387908]"), "overflows a 64-bit byte count");
  // dims that are not int64
  EXPECT_THROW(FormatError, with_shape("[9223372036854775808]"), "shape entry");
  EXPECT_THROW(FormatError, with_shape("[1e30]"), "shape entry");
  EXPECT_THROW(FormatError, with_shape("[2.0,2]"), "shape entry");
  EXPECT_THROW(FormatError, with_shape("[-4,-1]"), "shape entry");
  EXPECT_THROW(FormatError, with_shape("[\"4\"]"), "shape entries must be non-negative integers");
  EXPECT_THROW(FormatError, with_shape("4"), "missing or non-array 'shape'");
}

TEST(st_offsets_not_integers) {
  std::string data(4, '\x05');
  auto with_offsets = [&](const std::string& offsets) {
    return from_string(st_raw("{" + one_entry("w", "F32", "[1]", offsets) + "}", data));
  };
  EXPECT_THROW(FormatError, with_offsets("[0]"), "'data_offsets' must be an array [begin, end]");
  EXPECT_THROW(FormatError, with_offsets("[0,4,8]"), "'data_offsets' must be an array [begin, end]");
  EXPECT_THROW(FormatError, with_offsets("{}"), "'data_offsets' must be an array");
  EXPECT_THROW(FormatError, with_offsets("[-4,0]"), "data_offsets");
  EXPECT_THROW(FormatError, with_offsets("[0,18446744073709551620]"), "data_offsets");
  EXPECT_THROW(FormatError, with_offsets("[0,4.0]"), "data_offsets");
  EXPECT_THROW(FormatError, with_offsets("[null,4]"), "data_offsets must be non-negative integers");
  EXPECT_THROW(FormatError, with_offsets("[9223372036854775800,9223372036854775807]"), "exceed data region of 4");
}

TEST(st_duplicate_names) {
  std::string data(8, '\x05');
  EXPECT_THROW(FormatError,
               from_string(st_raw("{" + one_entry("w", "F32", "[1]", "[0,4]") + "," +
                                      one_entry("w", "F32", "[1]", "[4,8]") + "}",
                                  data),
                           "m.safetensors"),
               "m.safetensors: header: duplicate key 'w'");
  EXPECT_THROW(FormatError,
               from_string(st_raw("{\"__metadata__\":{},\"__metadata__\":{}}", ""), "m.safetensors"),
               "duplicate key '__metadata__'");
}

TEST(st_unknown_dtype) {
  std::string data(4, '\x05');
  EXPECT_THROW(FormatError, from_string(st_raw("{" + one_entry("x.weight", "F7", "[1]", "[0,4]") + "}", data),
                                        "model.safetensors"),
               "model.safetensors: tensor 'x.weight': unknown dtype 'F7'");
  EXPECT_THROW(FormatError, from_string(st_raw("{" + one_entry("w", "f32", "[1]", "[0,4]") + "}", data)),
               "unknown dtype 'f32'");
  EXPECT_THROW(FormatError,
               from_string(st_raw("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", data)),
               "tensor 'w': missing or non-string 'dtype'");
  // hostile names are quoted safely in messages
  EXPECT_THROW(FormatError,
               from_string(st_raw("{\"a\\u0000\\n\":{\"dtype\":\"Q\",\"shape\":[1],\"data_offsets\":[0,4]}}", data)),
               "tensor 'a\\x00\\x0a': unknown dtype 'Q'");
}

TEST(st_bad_json_headers) {
  EXPECT_THROW(FormatError, from_string(st_raw("{\"a\xff\":1}", ""), "m.safetensors"),
               "m.safetensors: header: invalid UTF-8 in string at byte 3");
  EXPECT_THROW(FormatError, from_string(st_raw("{\"a\":\"\xed\xa0\x80\"}", "")), "invalid UTF-8");
  std::string deep = "{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_THROW(FormatError, from_string(st_raw(deep, "")), "nesting deeper than 64");
  EXPECT_THROW(FormatError, from_string(st_raw("[]", "")), "header is not a JSON object");
  EXPECT_THROW(FormatError, from_string(st_raw("{}", "", false) + std::string(3, '\0')), "trailing bytes");
  EXPECT_THROW(FormatError, from_string(u64_le(0)), "empty input");
  std::string with_nul_padding = u64_le(4) + std::string("{}\0\0", 4);
  EXPECT_THROW(FormatError, from_string(with_nul_padding), "unexpected data after the JSON value");
  EXPECT_THROW(FormatError, from_string(st_raw("{\"w\":[]}", "")), "tensor 'w': entry is not an object");
  EXPECT_THROW(FormatError, from_string(st_raw("{\"__metadata__\":{\"a\":1}}", "")),
               "__metadata__ value of 'a' is not a string");
  EXPECT_THROW(FormatError, from_string(st_raw("{\"__metadata__\":[]}", "")), "__metadata__ must be an object");
}

TEST(st_file_changes_size_after_opening) {
  fs::path d = fresh_dir("st_resize");
  fs::path p = d / "m.safetensors";
  std::vector<Tensor> ts = {random_tensor("a", DType::F32, {64}), random_tensor("b", DType::F16, {32})};
  std::string bytes = st_build(ts);
  write_file(p, bytes);
  auto f = SafetensorsFile::open(p.string());
  // The file grows after opening: the mapping and every validated offset keep the size seen at open,
  // so the tensors read exactly as before.
  {
    std::ofstream app(p, std::ios::binary | std::ios::app);
    app << std::string(4096, 'z');
  }
  CHECK_EQ(f->file_size(), bytes.size());
  CHECK(std::memcmp(f->find("a")->data, ts[0].bytes.data(), ts[0].bytes.size()) == 0);
  CHECK(std::memcmp(f->find("b")->data, ts[1].bytes.data(), ts[1].bytes.size()) == 0);
  // Reopening sees the new size, which no longer matches the header.
  EXPECT_THROW(FormatError, SafetensorsFile::open(p.string()), "but the tensors cover only");
  // The file shrinks after opening: the open object keeps its validated view (its data must not be
  // touched: pages past the new end would fault, see safetensors.cpp), and reopening reports truncation.
  fs::resize_file(p, bytes.size() - 10);
  CHECK_EQ(f->tensors().size(), size_t(2));
  CHECK_EQ(f->find("b")->nbytes, size_t(64));
  EXPECT_THROW(FormatError, SafetensorsFile::open(p.string()), "exceed data region");
  // Replaced by a different file: the open object still reads the old contents (the mapping pins the inode).
  write_file(d / "new.safetensors", bytes);
  auto h = SafetensorsFile::open((d / "new.safetensors").string());
  fs::rename(d / "new.safetensors", d / "old.safetensors");
  write_file(d / "new.safetensors", st_raw("{}", ""));
  CHECK(std::memcmp(h->find("a")->data, ts[0].bytes.data(), ts[0].bytes.size()) == 0);
}

TEST(st_open_errors) {
  fs::path d = fresh_dir("st_open_errors");
  EXPECT_THROW(FileError, SafetensorsFile::open((d / "missing.safetensors").string()),
               "cannot open " + (d / "missing.safetensors").string() + ": No such file or directory");
  EXPECT_THROW(FileError, SafetensorsFile::open(d.string()), "not a regular file");
  CHECK(::mkfifo((d / "fifo.safetensors").c_str(), 0600) == 0);  // must fail at once, not block
  EXPECT_THROW(FileError, SafetensorsFile::open((d / "fifo.safetensors").string()), "not a regular file");
}

// ---- checkpoints ----------------------------------------------------------------------------------

namespace {
// Writes a two-shard checkpoint (tensors a,b in shard 1; c in shard 2) with the given weight_map JSON.
void write_sharded(const fs::path& d, const std::string& weight_map) {
  write_file(d / "model-00001-of-00002.safetensors",
             st_build({random_tensor("a", DType::F32, {3}), random_tensor("b", DType::BF16, {2, 2})}));
  write_file(d / "model-00002-of-00002.safetensors", st_build({random_tensor("c", DType::F16, {5})}));
  write_file(d / "model.safetensors.index.json",
             "{\"metadata\":{\"total_size\":30},\"weight_map\":" + weight_map + "}");
}
const char* kGoodMap =
    "{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00001-of-00002.safetensors\","
    "\"c\":\"model-00002-of-00002.safetensors\"}";
}  // namespace

TEST(ck_single_file_folder_and_path) {
  fs::path d = fresh_dir("ck_single");
  std::string bytes = st_build({random_tensor("w", DType::F32, {2, 3}), random_tensor("v", DType::F16, {4})});
  write_file(d / "model.safetensors", bytes);
  write_file(d / "config.json", "{}");
  auto ck = Checkpoint::open(d.string());
  CHECK_EQ(ck->dir(), d.string());
  CHECK(ck->names() == (std::vector<std::string>{"v", "w"}));
  CHECK_EQ(ck->find("w")->shape_str(), std::string("(2, 3)"));
  CHECK(ck->find("x") == nullptr);
  CHECK_EQ(ck->total_bytes(), bytes.size());
  auto by_path = Checkpoint::open((d / "model.safetensors").string());
  CHECK_EQ(by_path->dir(), d.string());
  CHECK(by_path->find("v") != nullptr);
}

TEST(ck_folder_with_one_other_name) {
  fs::path d = fresh_dir("ck_other");
  write_file(d / "weights.safetensors", st_build({random_tensor("w", DType::F32, {2})}));
  CHECK(Checkpoint::open(d.string())->find("w") != nullptr);
  write_file(d / "more.safetensors", st_build({random_tensor("w", DType::F32, {2})}));
  EXPECT_THROW(FileError, Checkpoint::open(d.string()),
               "several .safetensors files in " + d.string() + " (more.safetensors, weights.safetensors)");
}

TEST(ck_no_safetensors) {
  fs::path d = fresh_dir("ck_none");
  write_file(d / "pytorch_model.bin", "x");
  EXPECT_THROW(FileError, Checkpoint::open(d.string()),
               "no model.safetensors or model.safetensors.index.json in " + d.string() +
                   " (a pytorch_model.bin checkpoint? convert it with `mambart convert`)");
  EXPECT_THROW(FileError, Checkpoint::open((d / "missing").string()), "no such file or directory");
}

TEST(ck_sharded_good) {
  fs::path d = fresh_dir("ck_sharded");
  write_sharded(d, kGoodMap);
  auto ck = Checkpoint::open(d.string());
  CHECK(ck->names() == (std::vector<std::string>{"a", "b", "c"}));
  CHECK_EQ(ck->find("c")->file, (d / "model-00002-of-00002.safetensors").string());
  CHECK_EQ(ck->find("b")->file, (d / "model-00001-of-00002.safetensors").string());
  CHECK(ck->find("b")->dtype == DType::BF16);
  CHECK_EQ(ck->total_bytes(), size_t(fs::file_size(d / "model-00001-of-00002.safetensors") +
                                     fs::file_size(d / "model-00002-of-00002.safetensors")));
  // the index path itself is accepted too
  CHECK(Checkpoint::open((d / "model.safetensors.index.json").string())->find("a") != nullptr);
}

TEST(ck_sharded_bad_shard_names) {
  fs::path d = fresh_dir("ck_badnames");
  const std::string bad[] = {"../model-00001-of-00002.safetensors", "/etc/passwd", "sub/x.safetensors",
                             "..", ".", "", "a\\\\b.safetensors"};
  for (const auto& name : bad) {
    write_sharded(d, "{\"a\":\"" + name + "\"}");
    EXPECT_THROW(FormatError, Checkpoint::open(d.string()), "which is not a plain file name in the checkpoint folder");
  }
  write_sharded(d, "{\"a\":\"missing.safetensors\"}");
  EXPECT_THROW(FileError, Checkpoint::open(d.string()), "shard 'missing.safetensors' not found");
  write_sharded(d, "{\"a\":7}");
  EXPECT_THROW(FormatError, Checkpoint::open(d.string()), "weight_map entry for tensor 'a' is not a file name");
  write_sharded(d, "{}");
  EXPECT_THROW(FormatError, Checkpoint::open(d.string()), "'weight_map' is empty");
  write_file(d / "model.safetensors.index.json", "{\"metadata\":{}}");
  EXPECT_THROW(FormatError, Checkpoint::open(d.string()), "missing 'weight_map' object");
  write_file(d / "model.safetensors.index.json", "{\"weight_map\":{\"a\":\"x\",\"a\":\"y\"}}");
  EXPECT_THROW(FormatError, Checkpoint::open(d.string()), "duplicate key 'a'");
}

TEST(ck_sharded_tensor_not_in_its_shard) {
  fs::path d = fresh_dir("ck_wrongshard");
  write_sharded(d, "{\"a\":\"model-00002-of-00002.safetensors\",\"c\":\"model-00002-of-00002.safetensors\","
                   "\"b\":\"model-00001-of-00002.safetensors\"}");
  EXPECT_THROW(FormatError, Checkpoint::open(d.string()),
               "tensor 'a' is listed in shard 'model-00002-of-00002.safetensors' but that file does not contain it");
  write_sharded(d, "{\"zzz\":\"model-00001-of-00002.safetensors\"}");
  EXPECT_THROW(FormatError, Checkpoint::open(d.string()), "tensor 'zzz' is listed in shard");
}

TEST(ck_duplicate_tensor_across_shards) {
  fs::path d = fresh_dir("ck_dup");
  write_sharded(d, kGoodMap);
  write_file(d / "model-00002-of-00002.safetensors",
             st_build({random_tensor("c", DType::F16, {5}), random_tensor("a", DType::F32, {3})}));
  EXPECT_THROW(FormatError, Checkpoint::open(d.string()), "tensor 'a' is in both");
}

TEST(ck_bad_shard_content_names_the_file) {
  fs::path d = fresh_dir("ck_badshard");
  write_sharded(d, kGoodMap);
  write_file(d / "model-00002-of-00002.safetensors", u64_le(1000) + "{}");
  EXPECT_THROW(FormatError, Checkpoint::open(d.string()),
               (d / "model-00002-of-00002.safetensors").string() + ": header length 1000 exceeds file size 10");
}

// ---- config ---------------------------------------------------------------------------------------

namespace {
// transformers' MambaConfig for state-spaces/mamba-130m-hf, as save_pretrained writes it.
const char* kHfConfig = R"({
  "architectures": ["MambaForCausalLM"], "bos_token_id": 0, "conv_kernel": 4, "d_inner": 1536, "d_model": 768,
  "eos_token_id": 0, "expand": 2, "fused_add_norm": true, "hidden_act": "silu", "hidden_size": 768,
  "initializer_range": 0.1, "intermediate_size": 1536, "layer_norm_epsilon": 1e-05, "model_type": "mamba",
  "n_layer": 24, "num_hidden_layers": 24, "pad_token_id": 0, "pad_vocab_size_multiple": 8, "rescale_prenorm_residual": false,
  "residual_in_fp32": true, "rms_norm": true, "state_size": 16, "time_step_floor": 0.0001, "time_step_init_scheme": "random",
  "time_step_max": 0.1, "time_step_min": 0.001, "time_step_rank": 48, "time_step_scale": 1.0, "torch_dtype": "float32",
  "transformers_version": "4.39.0.dev0", "use_bias": false, "use_cache": true, "use_conv_bias": true, "vocab_size": 50280
})";
// mamba_ssm's config.json for state-spaces/mamba-130m.
const char* kStateSpacesConfig = R"({"d_model": 768, "n_layer": 24, "vocab_size": 50277, "ssm_cfg": {},
  "rms_norm": true, "residual_in_fp32": true, "fused_add_norm": true, "pad_vocab_size_multiple": 8})";

std::string hf_with(const std::string& extra) {
  return "{\"model_type\":\"mamba\",\"hidden_size\":64,\"num_hidden_layers\":2,\"vocab_size\":100" +
         (extra.empty() ? "" : "," + extra) + "}";
}
std::string ss_with(const std::string& extra) {
  return "{\"d_model\":64,\"n_layer\":2,\"vocab_size\":100" + (extra.empty() ? "" : "," + extra) + "}";
}
}  // namespace

TEST(cfg_hf_full) {
  ModelConfig c = parse_config(kHfConfig, "config.json");
  CHECK(c.layout == Layout::HF);
  CHECK_EQ(c.d_model, 768);
  CHECK_EQ(c.n_layer, 24);
  CHECK_EQ(c.vocab_size, 50280);
  CHECK_EQ(c.vocab_size_unpadded, 50280);
  CHECK_EQ(c.d_state, 16);
  CHECK_EQ(c.d_conv, 4);
  CHECK_EQ(c.expand, 2);
  CHECK_EQ(c.d_inner, 1536);
  CHECK_EQ(c.dt_rank, 48);
  CHECK(!c.in_proj_bias);
  CHECK(c.conv_bias);
  CHECK(c.rms_norm);
  CHECK(c.residual_in_fp32);
  CHECK(c.tie_embeddings);
  CHECK_EQ(c.norm_eps, 1e-5);
  CHECK_EQ(c.bos_token_id, 0);
  CHECK_EQ(c.eos_token_id, 0);
  CHECK_EQ(c.pad_token_id, 0);
  CHECK_EQ(c.format_version, 0);
  CHECK_EQ(c.state_bytes_per_sequence(), int64_t(24) * 1536 * (4 + 16) * 4);
}

TEST(cfg_hf_defaults_and_options) {
  ModelConfig c = parse_config(hf_with(""), "config.json");
  CHECK_EQ(c.d_inner, 128);
  CHECK_EQ(c.dt_rank, 4);
  CHECK_EQ(c.d_state, 16);
  CHECK_EQ(c.d_conv, 4);
  CHECK(c.conv_bias && !c.in_proj_bias && c.residual_in_fp32 && c.tie_embeddings);
  CHECK_EQ(c.bos_token_id, -1);
  CHECK_EQ(c.eos_token_id, -1);
  CHECK_EQ(c.pad_token_id, -1);
  // "auto" rank rounds up: ceil(100 / 16) = 7
  c = parse_config("{\"model_type\":\"mamba\",\"hidden_size\":100,\"num_hidden_layers\":1,\"vocab_size\":7,"
                   "\"time_step_rank\":\"auto\"}",
                   "config.json");
  CHECK_EQ(c.dt_rank, 7);
  CHECK_EQ(c.d_inner, 200);
  c = parse_config(hf_with("\"time_step_rank\":5,\"intermediate_size\":96,\"expand\":3,\"state_size\":8,"
                           "\"conv_kernel\":3,\"use_bias\":true,\"use_conv_bias\":false,\"residual_in_fp32\":false,"
                           "\"tie_word_embeddings\":false,\"layer_norm_epsilon\":1e-6,\"eos_token_id\":[2,3],"
                           "\"bos_token_id\":null,\"pad_token_id\":1,\"hidden_act\":\"silu\",\"unknown\":{\"x\":[]}"),
                   "config.json");
  CHECK_EQ(c.dt_rank, 5);
  CHECK_EQ(c.d_inner, 96);
  CHECK_EQ(c.expand, 3);
  CHECK_EQ(c.d_state, 8);
  CHECK_EQ(c.d_conv, 3);
  CHECK(c.in_proj_bias && !c.conv_bias && !c.residual_in_fp32 && !c.tie_embeddings);
  CHECK_EQ(c.norm_eps, 1e-6);
  CHECK_EQ(c.eos_token_id, 2);
  CHECK_EQ(c.bos_token_id, -1);
  CHECK_EQ(c.pad_token_id, 1);
  // a UTF-8 byte order mark is tolerated
  CHECK_EQ(parse_config("\xef\xbb\xbf" + hf_with(""), "config.json").d_model, 64);
}

TEST(cfg_hf_errors_name_the_field) {
  const std::pair<std::string, std::string> cases[] = {
      {"{\"model_type\":\"mamba\",\"hidden_size\":-3,\"num_hidden_layers\":2,\"vocab_size\":10}",
       "config.json: 'hidden_size' must be an integer in [1, 1048576], got -3"},
      {"{\"model_type\":\"mamba\",\"num_hidden_layers\":2,\"vocab_size\":10}",
       "config.json: missing required field 'hidden_size'"},
      {"{\"model_type\":\"mamba\",\"hidden_size\":8,\"vocab_size\":10}", "missing required field 'num_hidden_layers'"},
      {"{\"model_type\":\"mamba\",\"hidden_size\":8,\"num_hidden_layers\":2}", "missing required field 'vocab_size'"},
      {"{\"model_type\":\"mamba\",\"hidden_size\":\"64\",\"num_hidden_layers\":2,\"vocab_size\":10}",
       "'hidden_size' must be an integer in [1, 1048576], got \"64\""},
      {"{\"model_type\":\"mamba\",\"hidden_size\":64.5,\"num_hidden_layers\":2,\"vocab_size\":10}", "got 64.5"},
      {"{\"model_type\":\"mamba\",\"hidden_size\":2000000,\"num_hidden_layers\":2,\"vocab_size\":10}", "got 2000000"},
      {hf_with("\"state_size\":0"), "'state_size' must be an integer in [1, 256], got 0"},
      {hf_with("\"state_size\":257"), "'state_size' must be an integer in [1, 256], got 257"},
      {hf_with("\"conv_kernel\":65"), "'conv_kernel' must be an integer in [1, 64], got 65"},
      {hf_with("\"expand\":20000"), "'expand' * 'hidden_size' = 1280000 is out of range [1, 1048576]"},
      {hf_with("\"expand\":1.5"), "'expand' must be an integer"},
      {hf_with("\"intermediate_size\":0"), "'intermediate_size' must be an integer in [1, 1048576], got 0"},
      {hf_with("\"time_step_rank\":\"big\""), "'time_step_rank' must be \"auto\" or an integer in [1, 1048576], got "
                                              "\"big\""},
      {hf_with("\"time_step_rank\":0"), "'time_step_rank' must be an integer in [1, 1048576], got 0"},
      {hf_with("\"use_bias\":\"yes\""), "'use_bias' must be true or false, got \"yes\""},
      {hf_with("\"use_conv_bias\":1"), "'use_conv_bias' must be true or false, got 1"},
      {hf_with("\"layer_norm_epsilon\":0"), "'layer_norm_epsilon' must be a number in (0, 1), got 0"},
      {hf_with("\"layer_norm_epsilon\":\"1e-5\""), "'layer_norm_epsilon' must be a number"},
      {hf_with("\"hidden_act\":\"gelu\""), "'hidden_act' \"gelu\" is not supported"},
      {hf_with("\"eos_token_id\":-2"), "'eos_token_id' must be an integer in [-1, 2147483647], got -2"},
      {hf_with("\"eos_token_id\":\"x\""), "'eos_token_id' must be an integer"},
      {hf_with("\"mambart\":[]"), "'mambart' must be an object, got an array"},
      {hf_with("\"hidden_size\":64"), "duplicate key 'hidden_size'"},
  };
  for (const auto& c : cases) EXPECT_THROW(FormatError, parse_config(c.first, "config.json"), c.second);
}

TEST(cfg_model_types) {
  EXPECT_THROW(FormatError, parse_config("{\"model_type\":\"mamba2\",\"hidden_size\":64}", "c.json"),
               "c.json: Mamba-2 models are not supported yet");
  EXPECT_THROW(FormatError, parse_config("{\"model_type\":\"falcon_mamba\"}", "c.json"),
               "falcon_mamba is not supported yet");
  EXPECT_THROW(FormatError, parse_config("{\"model_type\":\"llama\"}", "c.json"),
               "c.json: unknown model_type 'llama' (expected 'mamba')");
  EXPECT_THROW(FormatError, parse_config("{\"model_type\":3}", "c.json"), "'model_type' must be a string, got 3");
  EXPECT_THROW(FormatError, parse_config("{}", "c.json"), "c.json: not a Mamba config");
  EXPECT_THROW(FormatError, parse_config("[]", "c.json"), "c.json: config is not a JSON object");
  EXPECT_THROW(FormatError, parse_config("{\"model_type\":", "c.json"), "c.json: unexpected end of input");
  EXPECT_THROW(FormatError, parse_config("", "c.json"), "c.json: empty input");
}

TEST(cfg_mambart_layout) {
  ModelConfig c = parse_config("{\"model_type\":\"mamba\",\"hidden_size\":64,\"num_hidden_layers\":2,"
                                   "\"vocab_size\":104,\"mambart\":{\"format_version\":1,\"source\":"
                                   "\"state-spaces/mamba-130m\",\"rms_norm\":false,\"vocab_size_unpadded\":100}}",
                               "config.json");
  CHECK(c.layout == Layout::Mambart);
  CHECK_EQ(c.format_version, 1);
  CHECK_EQ(c.source, std::string("state-spaces/mamba-130m"));
  CHECK(!c.rms_norm);
  CHECK_EQ(c.vocab_size, 104);
  CHECK_EQ(c.vocab_size_unpadded, 100);
  c = parse_config(hf_with("\"mambart\":{\"format_version\":1}"), "config.json");
  CHECK(c.rms_norm);
  CHECK_EQ(c.vocab_size_unpadded, 100);
  CHECK(c.source.empty());
  EXPECT_THROW(FormatError, parse_config(hf_with("\"mambart\":{\"format_version\":2}"), "config.json"),
               "config.json: written by a newer mambart ('mambart.format_version' 2");
  EXPECT_THROW(FormatError, parse_config(hf_with("\"mambart\":{}"), "config.json"),
               "missing required field 'mambart.format_version'");
  EXPECT_THROW(FormatError, parse_config(hf_with("\"mambart\":{\"format_version\":0}"), "config.json"),
               "'mambart.format_version' must be an integer in [1, 2147483647], got 0");
  EXPECT_THROW(FormatError,
               parse_config(hf_with("\"mambart\":{\"format_version\":1,\"vocab_size_unpadded\":101}"), "config.json"),
               "'mambart.vocab_size_unpadded' must be an integer in [1, 100], got 101");
  EXPECT_THROW(FormatError, parse_config(hf_with("\"mambart\":{\"format_version\":1,\"rms_norm\":null}"), "c"),
               "'mambart.rms_norm' must be true or false, got null");
  EXPECT_THROW(FormatError, parse_config(hf_with("\"mambart\":{\"format_version\":1,\"source\":5}"), "c"),
               "'mambart.source' must be a string, got 5");
}

TEST(cfg_state_spaces_layout) {
  ModelConfig c = parse_config(kStateSpacesConfig, "config.json");
  CHECK(c.layout == Layout::StateSpaces);
  CHECK_EQ(c.d_model, 768);
  CHECK_EQ(c.n_layer, 24);
  CHECK_EQ(c.vocab_size, 50280);
  CHECK_EQ(c.vocab_size_unpadded, 50277);
  CHECK_EQ(c.d_inner, 1536);
  CHECK_EQ(c.dt_rank, 48);
  CHECK_EQ(c.d_state, 16);
  CHECK_EQ(c.d_conv, 4);
  CHECK(c.rms_norm && c.residual_in_fp32 && c.tie_embeddings && c.conv_bias && !c.in_proj_bias);
  CHECK_EQ(c.norm_eps, 1e-5);
  CHECK_EQ(c.eos_token_id, -1);
  CHECK_EQ(c.bos_token_id, -1);
  c = parse_config(ss_with("\"pad_vocab_size_multiple\":16,\"rms_norm\":false,\"residual_in_fp32\":false,"
                           "\"tie_embeddings\":false,\"norm_epsilon\":1e-6,\"d_intermediate\":0,\"attn_layer_idx\":[],"
                           "\"attn_cfg\":{},\"ssm_cfg\":{\"d_state\":8,\"d_conv\":2,\"expand\":3,\"dt_rank\":9,"
                           "\"bias\":true,\"conv_bias\":false,\"layer\":\"Mamba1\",\"dt_min\":0.001}"),
                   "config.json");
  CHECK_EQ(c.vocab_size, 112);
  CHECK_EQ(c.vocab_size_unpadded, 100);
  CHECK(!c.rms_norm && !c.residual_in_fp32 && !c.tie_embeddings && c.in_proj_bias && !c.conv_bias);
  CHECK_EQ(c.norm_eps, 1e-6);
  CHECK_EQ(c.d_state, 8);
  CHECK_EQ(c.d_conv, 2);
  CHECK_EQ(c.d_inner, 192);
  CHECK_EQ(c.dt_rank, 9);
  c = parse_config(ss_with("\"pad_vocab_size_multiple\":1,\"ssm_cfg\":{\"dt_rank\":\"auto\"}"), "config.json");
  CHECK_EQ(c.vocab_size, 100);
  CHECK_EQ(c.dt_rank, 4);
}

TEST(cfg_state_spaces_errors) {
  const std::pair<std::string, std::string> cases[] = {
      {"{\"d_model\":64,\"vocab_size\":100}", "config.json: missing required field 'n_layer'"},
      {"{\"n_layer\":2,\"vocab_size\":100}", "missing required field 'd_model'"},
      {"{\"d_model\":64,\"n_layer\":2}", "missing required field 'vocab_size'"},
      {ss_with("\"ssm_cfg\":{\"layer\":\"Mamba2\"}"), "Mamba-2 models are not supported yet"},
      {ss_with("\"ssm_cfg\":{\"layer\":\"Mamba3\"}"), "unknown 'ssm_cfg.layer' \"Mamba3\""},
      {ss_with("\"d_intermediate\":10"), "MLP layers (d_intermediate > 0) are not supported"},
      {ss_with("\"attn_layer_idx\":[1]"), "hybrid attention layers are not supported"},
      {ss_with("\"attn_layer_idx\":3"), "'attn_layer_idx' must be an array, got 3"},
      {ss_with("\"ssm_cfg\":[]"), "'ssm_cfg' must be an object, got an array"},
      {ss_with("\"ssm_cfg\":{\"d_state\":1000}"), "'ssm_cfg.d_state' must be an integer in [1, 256], got 1000"},
      {ss_with("\"ssm_cfg\":{\"d_conv\":0}"), "'ssm_cfg.d_conv' must be an integer in [1, 64], got 0"},
      {ss_with("\"ssm_cfg\":{\"dt_rank\":0}"), "'ssm_cfg.dt_rank' must be an integer in [1, 1048576], got 0"},
      {ss_with("\"ssm_cfg\":{\"expand\":100000}"), "'ssm_cfg.expand' * 'd_model' = 6400000 is out of range"},
      {ss_with("\"ssm_cfg\":{\"bias\":0}"), "'ssm_cfg.bias' must be true or false, got 0"},
      {ss_with("\"pad_vocab_size_multiple\":0"), "'pad_vocab_size_multiple' must be an integer in [1, 1048576], got 0"},
      {"{\"d_model\":64,\"n_layer\":2,\"vocab_size\":1048575,\"pad_vocab_size_multiple\":7}",
       "'vocab_size' 1048575 padded to a multiple of 7 is 1048579, out of range"},
      {ss_with("\"rms_norm\":\"true\""), "'rms_norm' must be true or false"},
      {ss_with("\"norm_epsilon\":-1"), "'norm_epsilon' must be a number in (0, 1), got -1"},
      {"{\"d_model\":0,\"n_layer\":2,\"vocab_size\":100}", "'d_model' must be an integer in [1, 1048576], got 0"},
  };
  for (const auto& c : cases) EXPECT_THROW(FormatError, parse_config(c.first, "config.json"), c.second);
}

TEST(cfg_load_config) {
  fs::path d = fresh_dir("cfg_load");
  EXPECT_THROW(FileError, load_config(d.string()), "no config.json in " + d.string());
  write_file(d / "config.json", kHfConfig);
  CHECK_EQ(load_config(d.string()).d_model, 768);
  CHECK_EQ(load_config((d / "config.json").string()).n_layer, 24);
  CHECK_EQ(load_config((d / "model.safetensors").string()).vocab_size, 50280);  // a weights path: its folder
  write_file(d / "config.json", "{\"model_type\":\"mamba\",\"hidden_size\":-3}");
  EXPECT_THROW(FormatError, load_config(d.string()),
               (d / "config.json").string() + ": 'hidden_size' must be an integer in [1, 1048576], got -3");
}

#ifdef MAMBART_FUZZ_CORPUS
// The fuzz seeds are named for what they are: valid_* must parse, bad_* must fail with a FormatError.
TEST(fuzz_seed_corpus_classified) {
  int seen = 0;
  for (const char* kind : {"safetensors", "config"}) {
    for (const auto& entry : fs::directory_iterator(fs::path(MAMBART_FUZZ_CORPUS) / kind)) {
      std::string name = entry.path().filename().string();
      std::string bytes = read_text_file(entry.path().string(), 1 << 20);
      auto parse = [&] {
        if (std::string(kind) == "safetensors")
          (void)from_string(bytes, name);
        else
          (void)parse_config(bytes, name);
      };
      if (name.rfind("valid_", 0) == 0 || (std::string(kind) == "config" && name.rfind("bad_", 0) != 0)) {
        try {
          parse();
        } catch (const std::exception& e) {
          throw test::Failure{test::cat(kind, " seed ", name, " should parse but: ", e.what())};
        }
      } else {
        EXPECT_THROW(FormatError, parse(), name);
      }
      ++seen;
    }
  }
  CHECK(seen >= 40);
}
#endif

int main(int argc, char** argv) {
  int rc = test::run_all(argc, argv);
  std::error_code ec;
  fs::remove_all(temp_root(), ec);
  return rc;
}
