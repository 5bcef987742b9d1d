// Pieces of the _core module defined in separate files.
#pragma once
#include <functional>

#include <nanobind/nanobind.h>

namespace mambart_py {
void register_op_runner(nanobind::module_& m);  // op_runner.cpp: test-only single-op runner
std::function<bool()> interrupt_checker();
}  // namespace mambart_py
