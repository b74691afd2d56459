# Decides whether the CUDA half of the profiler is built: ORRERY_PROFILER_CUDA is ON when
# ORRERY_WITH_CUDA is AUTO or ON and nvcc, the CUDA toolkit, CUPTI, cuBLASLt and NCCL
# are all found. AUTO says why the profiler is skipped otherwise; ON makes that an
# error. MPI (multi-node bootstrap) is optional on top.
set(ORRERY_PROFILER_CUDA OFF)
if(NOT ORRERY_WITH_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "ORRERY_WITH_CUDA must be AUTO, ON or OFF, not '${ORRERY_WITH_CUDA}'")
endif()

function(_orrery_cuda_missing why)
  if(ORRERY_WITH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "ORRERY_WITH_CUDA=ON but ${why}")
  endif()
  message(STATUS "profiler skipped: ${why} (orrery-profile is not built; everything else is)")
endfunction()

if(ORRERY_WITH_CUDA STREQUAL "OFF")
  message(STATUS "profiler skipped: ORRERY_WITH_CUDA=OFF (orrery-profile is not built; everything else is)")
  return()
endif()

include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  _orrery_cuda_missing("no CUDA compiler (nvcc) was found")
  return()
endif()
find_package(CUDAToolkit QUIET)
if(NOT CUDAToolkit_FOUND)
  _orrery_cuda_missing("the CUDA toolkit was not found")
  return()
endif()
if(NOT TARGET CUDA::cupti OR NOT TARGET CUDA::cublasLt)
  _orrery_cuda_missing("CUPTI or cuBLASLt was not found in the CUDA toolkit")
  return()
endif()
find_path(ORRERY_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ENV NCCL_HOME
          PATH_SUFFIXES include)
find_library(ORRERY_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} ENV NCCL_HOME
             PATH_SUFFIXES lib lib64)
if(NOT ORRERY_NCCL_INCLUDE_DIR OR NOT ORRERY_NCCL_LIBRARY)
  _orrery_cuda_missing("NCCL (nccl.h, libnccl) was not found; set NCCL_HOME")
  return()
endif()

# No GPU is needed to build: name the architectures instead of "native".
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "80;90" CACHE STRING "GPU architectures for orrery-profile")
endif()
enable_language(CUDA)
set(ORRERY_PROFILER_CUDA ON)
message(STATUS "profiler: building orrery-profile with CUDA ${CUDAToolkit_VERSION}, "
               "architectures ${CMAKE_CUDA_ARCHITECTURES}")

find_package(MPI QUIET COMPONENTS CXX)  # the C API, through the C++ compiler
if(MPI_CXX_FOUND)
  set(ORRERY_PROFILER_MPI ON)
  message(STATUS "profiler: MPI found, --mpi (multi-node collectives) built")
else()
  set(ORRERY_PROFILER_MPI OFF)
  message(STATUS "profiler: MPI not found, --mpi (multi-node collectives) not built")
endif()
