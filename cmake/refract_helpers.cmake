# refract_library(name SOURCES ... DEPS ... [TORCH])
# A library per concern. Only TORCH libraries see libtorch headers; they share one
# precompiled <torch/torch.h> so each torch translation unit costs seconds, not ~30 s.
function(refract_library name)
  cmake_parse_arguments(ARG "TORCH" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  target_compile_options(${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(ARG_TORCH)
    target_link_libraries(${name} PUBLIC torch)
    refract_use_torch_pch(${name})
  endif()
endfunction()

# The shared torch precompiled header (built once, reused by every torch target).
function(refract_use_torch_pch target)
  if(NOT TARGET refract_torch_pch)
    return()
  endif()
  target_precompile_headers(${target} REUSE_FROM refract_torch_pch)
endfunction()

# refract_test(name SOURCES ... DEPS ... [TORCH]) -> a gtest executable registered with ctest.
function(refract_test name)
  cmake_parse_arguments(ARG "TORCH" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main Threads::Threads)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)  # test_device.h
  target_compile_definitions(${name} PRIVATE
    REFRACT_FIXTURES_DIR="${PROJECT_SOURCE_DIR}/tests/fixtures"
    REFRACT_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    REFRACT_BINARY="$<TARGET_FILE:refract>")
  if(ARG_TORCH)
    target_link_libraries(${name} PRIVATE torch)
    refract_use_torch_pch(${name})
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 900)
endfunction()
