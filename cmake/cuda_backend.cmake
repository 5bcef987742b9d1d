# CUDA backend: a static library of cuda/*.cu linked into mambart_core. cudart is linked statically so the package
# imports on machines with no GPU or driver (cuda_device_available() is then false). cuBLAS is not linked: it is
# loaded at run time when present (cuda/cublas_loader.cu).
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

file(GLOB MAMBART_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/cuda/*.cu ${CMAKE_CURRENT_SOURCE_DIR}/cuda/*.cpp)
add_library(mambart_cuda STATIC ${MAMBART_CUDA_SOURCES})
set_target_properties(mambart_cuda PROPERTIES
  CUDA_ARCHITECTURES "${MAMBART_CUDA_ARCHS}"
  CUDA_STANDARD 17
  CUDA_STANDARD_REQUIRED ON
  POSITION_INDEPENDENT_CODE ON
  CUDA_RUNTIME_LIBRARY Static)
target_include_directories(mambart_cuda
  PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/cuda
  PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/cpp/src)
target_compile_options(mambart_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:-lineinfo --expt-relaxed-constexpr>)
target_link_libraries(mambart_cuda PUBLIC CUDA::cudart_static ${CMAKE_DL_LIBS})

target_link_libraries(mambart_core PUBLIC mambart_cuda)
target_compile_definitions(mambart_core PUBLIC MAMBART_WITH_CUDA=1)
