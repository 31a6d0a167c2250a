# ccache, with the sloppiness a precompiled header needs to get cache hits. CCACHE_BASEDIR makes
# the source tree's absolute paths relative in the cache key, so a fresh clone (CI) or a git
# worktree in another directory reuses the objects of an earlier build. 10G holds both libtorch
# builds (Debian 1.13 and the wheel's 2.x).
find_program(CCACHE_PROGRAM ccache)
if(CCACHE_PROGRAM)
  set(CMAKE_CXX_COMPILER_LAUNCHER
      ${CMAKE_COMMAND} -E env CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      CCACHE_BASEDIR=${CMAKE_SOURCE_DIR} CCACHE_MAXSIZE=10G ${CCACHE_PROGRAM})
  set(CMAKE_C_COMPILER_LAUNCHER ${CMAKE_CXX_COMPILER_LAUNCHER})
endif()
