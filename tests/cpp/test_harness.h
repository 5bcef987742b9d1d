// A minimal test harness: TEST(name) { CHECK(...); EXPECT_THROW(Exc, expr, "substring"); }
// main() runs every test (or those whose name contains argv[1]) and prints "N passed, M failed".
#pragma once
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace test {

struct Failure {
  std::string msg;
};

template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

inline std::vector<std::pair<const char*, void (*)()>>& registry() {
  static std::vector<std::pair<const char*, void (*)()>> r;
  return r;
}

struct Registrar {
  Registrar(const char* name, void (*fn)()) { registry().emplace_back(name, fn); }
};

// Runs f, which must throw exactly an E (or a subclass) whose message contains `needle`.
template <typename E, typename F>
void expect_throw(F&& f, const std::string& needle, const char* expr, int line) {
  try {
    f();
  } catch (const E& e) {
    std::string what = e.what();
    if (what.find(needle) == std::string::npos)
      throw Failure{cat("line ", line, ": ", expr, " threw \"", what, "\", which does not contain \"", needle, "\"")};
    return;
  } catch (const std::exception& e) {
    throw Failure{cat("line ", line, ": ", expr, " threw the wrong exception type: \"", e.what(), "\"")};
  }
  throw Failure{cat("line ", line, ": ", expr, " did not throw")};
}

inline int run_all(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0, failed = 0;
  for (const auto& t : registry()) {
    if (filter && std::string(t.first).find(filter) == std::string::npos) continue;
    try {
      t.second();
      ++passed;
    } catch (const Failure& f) {
      ++failed;
      std::printf("FAIL %s: %s\n", t.first, f.msg.c_str());
    } catch (const std::exception& e) {
      ++failed;
      std::printf("FAIL %s: unexpected exception: %s\n", t.first, e.what());
    }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace test

#define TEST(name)                                        \
  static void name();                                     \
  static ::test::Registrar name##_registrar(#name, name); \
  static void name()

#define CHECK(cond)                                                                          \
  do {                                                                                       \
    if (!(cond)) throw ::test::Failure{::test::cat("line ", __LINE__, ": CHECK(" #cond ")")}; \
  } while (0)

#define CHECK_EQ(a, b)                                                                                    \
  do {                                                                                                    \
    auto va_ = (a);                                                                                       \
    auto vb_ = (b);                                                                                       \
    if (!(va_ == vb_))                                                                                    \
      throw ::test::Failure{::test::cat("line ", __LINE__, ": CHECK_EQ(" #a ", " #b "): ", va_, " != ", vb_)}; \
  } while (0)

#define EXPECT_THROW(Exc, expr, needle) \
  ::test::expect_throw<Exc>([&]() { (void)(expr); }, needle, #expr, __LINE__)
