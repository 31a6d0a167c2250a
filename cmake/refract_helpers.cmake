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

# at::parallel_for is a header template around `#pragma omp parallel` (libtorch's parallel
# backend is OpenMP in both builds): compiled without -fopenmp the pragma is ignored and the loop
# runs on the calling thread alone. Every source that calls at::parallel_for is listed here.
# Per file and without the shared PCH, which is built without -fopenmp (GCC refuses a PCH
# when _OPENMP differs); the target links libgomp, the runtime libtorch itself loads (the wheel's
# RUNPATH resolves libgomp.so.1 to the copy in torch/lib, so there is one OpenMP runtime).
function(refract_openmp_sources target)
  find_package(OpenMP REQUIRED COMPONENTS CXX)
  set_source_files_properties(${ARGN} TARGET_DIRECTORY ${target} PROPERTIES COMPILE_OPTIONS "${OpenMP_CXX_FLAGS}" SKIP_PRECOMPILE_HEADERS ON)
  target_link_libraries(${target} PUBLIC ${OpenMP_CXX_LIBRARIES})
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
