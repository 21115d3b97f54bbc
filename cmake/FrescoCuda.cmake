# Detects a CUDA toolkit and builds the CUDA part of Fresco (cuda/) when FRESCO_CUDA is ON.
# A machine with nvcc but no GPU (CI) still compiles everything; GPU tests skip at run time.
set(FRESCO_HAVE_CUDA OFF)
if(NOT FRESCO_CUDA)
  return()
endif()

# nvcc is often not on PATH on Debian/Ubuntu machines with a toolkit under /usr/local/cuda.
if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(STATUS "Fresco: no CUDA compiler found, building the CPU backend only")
  return()
endif()

# Portable default: Ampere and Hopper cubins plus PTX for newer GPUs. On the H100/H200 host
# configure with -DCMAKE_CUDA_ARCHITECTURES=90a.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "80-real;90-real;90-virtual")
endif()
enable_language(CUDA)
set(CMAKE_CUDA_STANDARD 17)  # CMake 3.25 knows no CUDA20 flag for nvcc
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
find_package(CUDAToolkit REQUIRED)

include(${PROJECT_SOURCE_DIR}/cuda/sources.cmake)  # FRESCO_CUDA_*_SOURCES, FRESCO_CUDA_LIBS
# Kernels with their POD launchers and the library wrappers (streams, cuBLASLt, cuDNN); the
# CudaBackend class itself is part of fresco_backend (C++20).
add_library(fresco_cuda ${FRESCO_CUDA_CORE_SOURCES})
target_include_directories(fresco_cuda PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(fresco_cuda PUBLIC fresco_core ${FRESCO_CUDA_LIBS})
set(FRESCO_HAVE_CUDA ON)
message(STATUS "Fresco: CUDA ${CUDAToolkit_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")
