# The fast CPU backend (cpp/src/cpu): generic kernels always, plus one translation unit per x86 ISA with its
# own flags (never -march=native, so the library runs on any x86-64 and picks the best path at run time).
# A NEON unit can be added the same way for aarch64.
set(MAMBART_CPU_DIR ${CMAKE_CURRENT_SOURCE_DIR}/cpp/src/cpu)
target_sources(mambart_core PRIVATE
  ${MAMBART_CPU_DIR}/cpu_backend.cpp
  ${MAMBART_CPU_DIR}/thread_pool.cpp
  ${MAMBART_CPU_DIR}/kernels_generic.cpp)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|x64)$")
  target_sources(mambart_core PRIVATE ${MAMBART_CPU_DIR}/kernels_avx2.cpp ${MAMBART_CPU_DIR}/kernels_avx512.cpp)
  target_compile_definitions(mambart_core PRIVATE MAMBART_CPU_X86=1)
  if(MSVC)
    set_source_files_properties(${MAMBART_CPU_DIR}/kernels_avx2.cpp PROPERTIES COMPILE_OPTIONS "/arch:AVX2")
    set_source_files_properties(${MAMBART_CPU_DIR}/kernels_avx512.cpp PROPERTIES COMPILE_OPTIONS "/arch:AVX512")
  else()
    set_source_files_properties(${MAMBART_CPU_DIR}/kernels_avx2.cpp PROPERTIES
      COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
    set_source_files_properties(${MAMBART_CPU_DIR}/kernels_avx512.cpp PROPERTIES
      # -Wno-maybe-uninitialized: GCC 12 false positives inside avx512fintrin.h
      COMPILE_OPTIONS "-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mavx2;-mfma;-mf16c;-Wno-maybe-uninitialized")
  endif()
endif()

# C++ kernel check against the reference ops (tests/cpp/cpu), independent of the Python module.
if(MAMBART_TESTS AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/tests/cpp/cpu/test_cpu_kernels.cpp)
  add_executable(test_cpu_kernels ${CMAKE_CURRENT_SOURCE_DIR}/tests/cpp/cpu/test_cpu_kernels.cpp)
  target_link_libraries(test_cpu_kernels PRIVATE mambart_core)
  if(COMMAND add_test)
    add_test(NAME cpu_kernels COMMAND test_cpu_kernels)
  endif()
endif()
if(MAMBART_TESTS AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/tests/cpp/cpu/bench_cpu_kernels.cpp)
  add_executable(bench_cpu_kernels ${CMAKE_CURRENT_SOURCE_DIR}/tests/cpp/cpu/bench_cpu_kernels.cpp)
  target_link_libraries(bench_cpu_kernels PRIVATE mambart_core)
endif()
