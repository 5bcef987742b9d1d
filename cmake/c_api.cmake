# The C API: libmambart (shared), its header and a CMake package so that an installed prefix works with
#   find_package(mambart)  +  target_link_libraries(app PRIVATE mambart::mambart)
# Included from the top-level CMakeLists.txt after mambart_core is defined.
#
# The Python wheel (scikit-build-core sets SKBUILD) does not need the C library, so it is off there by default;
# pass -DMAMBART_C_API=ON to build it anyway.
if(SKBUILD)
  set(_mambart_c_api_default OFF)
else()
  set(_mambart_c_api_default ON)
endif()
option(MAMBART_C_API "Build and install the C API shared library libmambart" ${_mambart_c_api_default})
if(NOT MAMBART_C_API)
  return()
endif()

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The header's version macros must agree with the project version (mambart_version() reports them).
file(STRINGS ${CMAKE_CURRENT_SOURCE_DIR}/cpp/include/mambart/mambart.h _mambart_ver REGEX "#define MAMBART_VERSION_")
string(REGEX REPLACE ".*MAJOR ([0-9]+).*MINOR ([0-9]+).*PATCH ([0-9]+).*" "\\1.\\2.\\3" _mambart_hver "${_mambart_ver}")
if(NOT _mambart_hver VERSION_EQUAL PROJECT_VERSION)
  message(FATAL_ERROR "mambart.h says version ${_mambart_hver} but the project is ${PROJECT_VERSION}")
endif()

add_library(mambart SHARED ${CMAKE_CURRENT_SOURCE_DIR}/cpp/src/c_api.cpp)
add_library(mambart::mambart ALIAS mambart)
target_include_directories(mambart PUBLIC
  $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/cpp/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(mambart PRIVATE $<BUILD_INTERFACE:mambart_core>)
target_compile_definitions(mambart PRIVATE MAMBART_BUILDING_LIBRARY)
set_target_properties(mambart PROPERTIES
  OUTPUT_NAME mambart
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}  # 0.x: the ABI may change between minors
  C_VISIBILITY_PRESET hidden
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON)
# Export only the MAMBART_API functions: symbols of the static core and template instantiations from the
# standard library headers (which carry default visibility) stay local, by a version script.
if(CMAKE_SYSTEM_NAME STREQUAL "Linux" AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/mambart.map "{\n  global: mambart_*;\n  local: *;\n};\n")
  target_link_options(mambart PRIVATE "LINKER:--version-script=${CMAKE_CURRENT_BINARY_DIR}/mambart.map"
                      "LINKER:--exclude-libs,ALL" "LINKER:--no-undefined")
  set_property(TARGET mambart APPEND PROPERTY LINK_DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/mambart.map)
endif()

install(TARGETS mambart EXPORT mambartTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/cpp/include/mambart/mambart.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/mambart)
set(MAMBART_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/mambart)
install(EXPORT mambartTargets NAMESPACE mambart:: FILE mambart-targets.cmake DESTINATION ${MAMBART_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/mambart-config.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/mambart-config.cmake INSTALL_DESTINATION ${MAMBART_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/mambart-config-version.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/mambart-config.cmake ${CMAKE_CURRENT_BINARY_DIR}/mambart-config-version.cmake
  DESTINATION ${MAMBART_CMAKE_DIR})

# Tests of the C API (a C program that writes a small random model and drives every function) and the
# example, built in-tree against the same target (examples/CMakeLists.txt also works from an install).
if(MAMBART_TESTS)
  enable_testing()
  add_executable(test_c_api_c ${CMAKE_CURRENT_SOURCE_DIR}/tests/c/test_c_api.c)
  target_link_libraries(test_c_api_c PRIVATE mambart::mambart m)
  add_test(NAME test_c_api_c COMMAND test_c_api_c ${CMAKE_CURRENT_BINARY_DIR}/test_c_api_model)
  set_tests_properties(test_c_api_c PROPERTIES PASS_REGULAR_EXPRESSION "[0-9]+ passed, 0 failed")
  add_subdirectory(${CMAKE_CURRENT_SOURCE_DIR}/examples ${CMAKE_CURRENT_BINARY_DIR}/examples)
endif()
