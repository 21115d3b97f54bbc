# The CUDA backend's sources and libraries, for a build that has enabled CUDA and found the
# toolkit (cmake/FrescoCuda.cmake: enable_language(CUDA), find_package(CUDAToolkit)).
#
#   include(cuda/sources.cmake)
#   FRESCO_CUDA_CORE_SOURCES     kernels with their POD launchers (.cu: CUDA, C++17) and the
#                                library wrappers (.cpp: streams/events/graphs, device buffers,
#                                cuBLASLt, cuDNN SDPA; C++20). They use src/core only
#                                (error.hpp, exec.hpp): link fresco_core and FRESCO_CUDA_LIBS.
#   FRESCO_CUDA_BACKEND_SOURCES  the CudaBackend class (C++20; src/backend/backend.hpp), i.e. a
#                                part of the backend layer, on top of the core sources
#   FRESCO_CUDA_SOURCES          both
#   FRESCO_CUDA_LIBS             Fresco::cudnn CUDA::cudart CUDA::cublasLt
#
# cuDNN is looked for beside the CUDA toolkit and in the system directories (the GPU host has
# its own cuDNN 9.14 under /usr/include/x86_64-linux-gnu); set CUDNN_ROOT to choose another.
# The header next to the library found wins, so the backend compiles against the cuDNN it runs.
set(_fresco_cuda_dir ${CMAKE_CURRENT_LIST_DIR})

set(FRESCO_CUDA_CORE_SOURCES
  ${_fresco_cuda_dir}/device_info.cu
  ${_fresco_cuda_dir}/elementwise.cu
  ${_fresco_cuda_dir}/norms.cu
  ${_fresco_cuda_dir}/attention.cu
  ${_fresco_cuda_dir}/image_ops.cu
  ${_fresco_cuda_dir}/decoder_kernels.cu
  ${_fresco_cuda_dir}/gemm_fallback.cu
  ${_fresco_cuda_dir}/random.cu
  ${_fresco_cuda_dir}/quantize.cu
  ${_fresco_cuda_dir}/stamp_log.cu
  ${_fresco_cuda_dir}/cuda_stream.cpp
  ${_fresco_cuda_dir}/device_buffer.cpp
  ${_fresco_cuda_dir}/cublaslt.cpp
  ${_fresco_cuda_dir}/cudnn_sdpa.cpp
  ${_fresco_cuda_dir}/cudnn_sdpa_fp8.cpp
  ${_fresco_cuda_dir}/conv_cudnn.cpp
  ${_fresco_cuda_dir}/wide_attention.cpp
)
set(FRESCO_CUDA_BACKEND_SOURCES
  ${_fresco_cuda_dir}/cuda_backend.cpp
)
set(FRESCO_CUDA_SOURCES ${FRESCO_CUDA_CORE_SOURCES} ${FRESCO_CUDA_BACKEND_SOURCES})

if(NOT TARGET Fresco::cudnn)
  find_library(FRESCO_CUDNN_LIBRARY NAMES cudnn libcudnn.so.9
    HINTS $ENV{CUDNN_ROOT} ${CUDNN_ROOT} ${CUDAToolkit_LIBRARY_DIR}
    PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu)
  if(NOT FRESCO_CUDNN_LIBRARY)
    message(FATAL_ERROR "Fresco: the CUDA backend needs cuDNN (libcudnn); set CUDNN_ROOT")
  endif()
  get_filename_component(_fresco_cudnn_libdir ${FRESCO_CUDNN_LIBRARY} DIRECTORY)
  find_path(FRESCO_CUDNN_INCLUDE_DIR cudnn.h
    HINTS $ENV{CUDNN_ROOT} ${CUDNN_ROOT} ${_fresco_cudnn_libdir}/../include
          ${_fresco_cudnn_libdir}/../../include/x86_64-linux-gnu ${_fresco_cudnn_libdir}/../../include
          ${CUDAToolkit_INCLUDE_DIRS}
    PATH_SUFFIXES include)
  if(NOT FRESCO_CUDNN_INCLUDE_DIR)
    message(FATAL_ERROR "Fresco: cudnn.h not found (cuDNN library ${FRESCO_CUDNN_LIBRARY}); set CUDNN_ROOT")
  endif()
  add_library(Fresco::cudnn INTERFACE IMPORTED)
  set_target_properties(Fresco::cudnn PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES ${FRESCO_CUDNN_INCLUDE_DIR}
    INTERFACE_LINK_LIBRARIES ${FRESCO_CUDNN_LIBRARY})
  message(STATUS "Fresco: cuDNN ${FRESCO_CUDNN_LIBRARY} (headers ${FRESCO_CUDNN_INCLUDE_DIR})")
endif()

# cuDNN first: its include directory then precedes the toolkit's, which may hold another
# cuDNN's headers.
set(FRESCO_CUDA_LIBS Fresco::cudnn CUDA::cudart CUDA::cublasLt)
