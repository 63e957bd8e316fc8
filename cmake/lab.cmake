# Project-wide helpers: warnings, tests and benchmarks with one line each.

add_library(lab_warnings INTERFACE)
target_compile_options(lab_warnings INTERFACE -Wall -Wextra -Wpedantic -Wno-missing-field-initializers
  # GCC 12 misreports Asio's coroutine frame allocator (operator new/delete pairs it cannot see).
  -Wno-mismatched-new-delete)
if(LAB_WARNINGS_AS_ERRORS)
  target_compile_options(lab_warnings INTERFACE -Werror)
endif()

# lab_add_library(name SOURCES... [LINK libs...]) — static library with repo-root includes.
function(lab_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LINK" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_LINK} PRIVATE lab_warnings)
endfunction()

# lab_add_test(name SOURCES... [LINK libs...] [LABELS l...]) — a GoogleTest binary registered with ctest.
function(lab_add_test name)
  if(NOT LAB_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LINK;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${ARG_LINK} GTest::gtest GTest::gtest_main lab_warnings)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_test(NAME ${name} COMMAND ${name} --gtest_color=no)
  set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "unit;${ARG_LABELS}")
endfunction()

# lab_add_bench(name SOURCES... [LINK libs...]) — a Google Benchmark binary (not run by ctest).
function(lab_add_bench name)
  if(NOT LAB_BUILD_BENCHMARKS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "SOURCES;LINK" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${ARG_LINK} benchmark::benchmark benchmark::benchmark_main lab_warnings)
endfunction()
