# Finds NCCL (nccl.h and libnccl) when FRESCO_NCCL is ON and the CUDA toolkit was found
# (nccl.h includes cuda_runtime.h). Sets FRESCO_HAVE_NCCL and FRESCO_NCCL_VERSION, defines the
# imported target Fresco::nccl, and FRESCO_NCCL_STATUS (what happened, for the summary). Not
# finding it is not an error: the build goes on without NCCL and says so. Hints:
# -DNCCL_ROOT=<prefix> or the NCCL_ROOT / NCCL_HOME environment variables (cluster modules
# usually set one), else the CUDA toolkit's and the system's directories.
set(FRESCO_HAVE_NCCL OFF)
set(FRESCO_NCCL_VERSION "")
set(FRESCO_NCCL_STATUS "off (FRESCO_NCCL=OFF)")
if(NOT FRESCO_NCCL)
  return()
endif()
set(FRESCO_NCCL_STATUS "not found")
if(NOT FRESCO_HAVE_CUDA)
  set(FRESCO_NCCL_STATUS "no CUDA toolkit")
  message(STATUS "Fresco: NCCL needs the CUDA toolkit, which was not found; building without NCCL")
  return()
endif()

set(_nccl_hints ${NCCL_ROOT} $ENV{NCCL_ROOT} $ENV{NCCL_HOME} ${CUDAToolkit_LIBRARY_ROOT})
find_path(NCCL_INCLUDE_DIR nccl.h
  HINTS ${_nccl_hints} ${CUDAToolkit_INCLUDE_DIRS}
  PATH_SUFFIXES include)
find_library(NCCL_LIBRARY NAMES nccl
  HINTS ${_nccl_hints} ${CUDAToolkit_LIBRARY_DIR}
  PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu)
if(NOT NCCL_INCLUDE_DIR OR NOT NCCL_LIBRARY)
  message(STATUS "Fresco: NCCL not found (nccl.h, libnccl); building without NCCL "
                 "(set NCCL_ROOT to its prefix, or -DFRESCO_NCCL=OFF to silence this)")
  return()
endif()

# NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH from the header.
file(STRINGS ${NCCL_INCLUDE_DIR}/nccl.h _nccl_defines REGEX "^#define NCCL_(MAJOR|MINOR|PATCH) +[0-9]+")
foreach(_part MAJOR MINOR PATCH)
  string(REGEX MATCH "NCCL_${_part} +([0-9]+)" _m "${_nccl_defines}")
  set(_nccl_${_part} "${CMAKE_MATCH_1}")
endforeach()
set(FRESCO_NCCL_VERSION "${_nccl_MAJOR}.${_nccl_MINOR}.${_nccl_PATCH}")

add_library(Fresco::nccl UNKNOWN IMPORTED)
set_target_properties(Fresco::nccl PROPERTIES
  IMPORTED_LOCATION ${NCCL_LIBRARY}
  INTERFACE_INCLUDE_DIRECTORIES ${NCCL_INCLUDE_DIR})
target_link_libraries(Fresco::nccl INTERFACE CUDA::cudart)
set(FRESCO_HAVE_NCCL ON)
set(FRESCO_NCCL_STATUS "NCCL ${FRESCO_NCCL_VERSION} (${NCCL_LIBRARY})")
message(STATUS "Fresco: NCCL ${FRESCO_NCCL_VERSION} (${NCCL_LIBRARY})")
