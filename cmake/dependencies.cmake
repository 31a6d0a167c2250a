# Every dependency comes from Debian 12 (scripts/setup.sh installs them).
find_package(Threads REQUIRED)
# Before Torch: the torch wheel's Caffe2Config defines protobuf::libprotobuf as an empty dummy
# unless the target already exists, which would leave TensorBoard's writer unlinked.
find_package(Protobuf REQUIRED)
find_package(Torch REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(CLI11 REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
pkg_check_modules(JPEG REQUIRED IMPORTED_TARGET libjpeg)
pkg_check_modules(PNG REQUIRED IMPORTED_TARGET libpng)
pkg_check_modules(WEBP REQUIRED IMPORTED_TARGET libwebp)
pkg_check_modules(EXIF REQUIRED IMPORTED_TARGET libexif)
pkg_check_modules(FFMPEG REQUIRED IMPORTED_TARGET libavformat libavcodec libswscale libavutil)
if(REFRACT_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
if(REFRACT_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# The torch wheel (libtorch 2.x) ships its own, newer {fmt} headers in its include directory,
# which would shadow Debian's fmt 9 that spdlog is built against. A directory holding only a
# link to Debian's fmt goes first on the include path (-I /usr/include itself would be dropped
# as a system directory); Debian's libtorch has no such headers and needs nothing.
get_target_property(fmt_dirs fmt::fmt INTERFACE_INCLUDE_DIRECTORIES)
list(GET fmt_dirs 0 fmt_dir)
foreach(dir ${TORCH_INCLUDE_DIRS})
  if(EXISTS "${dir}/fmt/format.h" AND NOT dir STREQUAL fmt_dir AND NOT REFRACT_FMT_SHIM)
    set(REFRACT_FMT_SHIM ${CMAKE_BINARY_DIR}/fmt_shim)
    file(MAKE_DIRECTORY ${REFRACT_FMT_SHIM})
    file(CREATE_LINK ${fmt_dir}/fmt ${REFRACT_FMT_SHIM}/fmt SYMBOLIC)
    include_directories(BEFORE ${REFRACT_FMT_SHIM})
    message(STATUS "libtorch ships {fmt}: Debian's fmt (${fmt_dir}) goes first")
  endif()
endforeach()

# A libtorch built with CUDA (the wheel's) brings libc10_cuda; code that reports or uses CUDA
# directly (refract env's device list) compiles only then, against the toolkit's headers.
if(C10_CUDA_LIBRARY)
  set(REFRACT_WITH_CUDA ON)
  find_package(CUDAToolkit QUIET)
  message(STATUS "libtorch has CUDA (${C10_CUDA_LIBRARY}); CUDA toolkit ${CUDAToolkit_VERSION}")
  # The wheel's libtorch_cuda was built against the CUDA runtime, cuBLAS, cuDNN and NCCL of the
  # nvidia-* wheels beside it, newer than the toolkit's (/usr/local/cuda's NCCL lacks symbols it
  # uses): resolve them there at link time and load them from there at run time.
  get_filename_component(torch_lib_dir "${C10_CUDA_LIBRARY}" DIRECTORY)
  file(GLOB wheel_cuda_dirs "${torch_lib_dir}/../../nvidia/*/lib")
  if(wheel_cuda_dirs)
    list(TRANSFORM wheel_cuda_dirs REPLACE "/torch/lib/../../" "/")
    string(JOIN ":" wheel_cuda_path ${wheel_cuda_dirs})
    add_link_options("LINKER:-rpath-link,${wheel_cuda_path}" "LINKER:-rpath,${wheel_cuda_path}")
    message(STATUS "CUDA libraries of the torch wheel: ${wheel_cuda_path}")
  endif()
endif()
