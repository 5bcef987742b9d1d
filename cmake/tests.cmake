# C++ tests (MAMBART_TESTS=ON). Included from the top-level CMakeLists.txt after mambart_core is defined.
enable_testing()

# Parsers: JSON, safetensors, config.json (hostile inputs of issue 7 item 2 included).
add_executable(test_parsers ${CMAKE_CURRENT_SOURCE_DIR}/tests/cpp/test_parsers.cpp)
target_include_directories(test_parsers PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/tests/cpp)
target_link_libraries(test_parsers PRIVATE mambart_core)
add_test(NAME test_parsers COMMAND test_parsers)
set_tests_properties(test_parsers PROPERTIES PASS_REGULAR_EXPRESSION "[0-9]+ passed, 0 failed")
# The fuzz seed corpus doubles as test data: valid_* seeds must parse, bad_* seeds must be rejected.
target_compile_definitions(test_parsers PRIVATE MAMBART_FUZZ_CORPUS="${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus")
