# Finds what the RMA data planes need and decides TWINSTREAM_WITH_FABRIC / _MPI.
#
# Both planes prefer the MPICH wheel (`pip install mpich`) of the Python environment the
# build runs in: its libmpi, and the libfabric it bundles. Linking that libfabric (not the
# system's) matters: a process that imports mpi4py and twinstream must load one libfabric
# only. Debian's libfabric-dev headers (1.17) compile against it (libfabric keeps its ABI).
#
# Sets: TWINSTREAM_FABRIC_LIBRARY, TWINSTREAM_FABRIC_INCLUDE_DIR, TWINSTREAM_MPI_LIBRARY,
# TWINSTREAM_MPI_INCLUDE_DIR, TWINSTREAM_RMA_RPATH (directories the library loads from).

# The Python prefix holding the MPICH wheel: given, or that of the interpreter driving the
# build (scikit-build-core passes it), or of an active virtual environment, or ./.venv.
if(NOT TWINSTREAM_MPICH_PREFIX)
  set(_ts_python "")
  if(Python_EXECUTABLE)
    set(_ts_python "${Python_EXECUTABLE}")
  elseif(DEFINED ENV{VIRTUAL_ENV} AND EXISTS "$ENV{VIRTUAL_ENV}/bin/python")
    set(_ts_python "$ENV{VIRTUAL_ENV}/bin/python")
  elseif(EXISTS "${PROJECT_SOURCE_DIR}/.venv/bin/python")
    set(_ts_python "${PROJECT_SOURCE_DIR}/.venv/bin/python")
  endif()
  if(_ts_python)
    execute_process(COMMAND "${_ts_python}" -c "import sys; print(sys.prefix)"
                    OUTPUT_VARIABLE _ts_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
                    RESULT_VARIABLE _ts_rc ERROR_QUIET)
    if(_ts_rc EQUAL 0 AND EXISTS "${_ts_prefix}/lib/libmpi.so.12")
      set(TWINSTREAM_MPICH_PREFIX "${_ts_prefix}")
    endif()
  endif()
endif()
set(TWINSTREAM_MPICH_PREFIX "${TWINSTREAM_MPICH_PREFIX}" CACHE PATH
    "Prefix of the MPICH wheel (a Python environment with `pip install mpich`)")

set(TWINSTREAM_RMA_RPATH "")

# ---- libfabric
set(TWINSTREAM_FABRIC_LIBRARY "" CACHE FILEPATH "libfabric the fabric plane links")
if(NOT TWINSTREAM_FABRIC_LIBRARY)
  if(TWINSTREAM_MPICH_PREFIX AND EXISTS "${TWINSTREAM_MPICH_PREFIX}/lib/mpich/libfabric.so.1")
    set(TWINSTREAM_FABRIC_LIBRARY "${TWINSTREAM_MPICH_PREFIX}/lib/mpich/libfabric.so.1"
        CACHE FILEPATH "" FORCE)
  else()
    find_library(_ts_fabric NAMES fabric)
    if(_ts_fabric)
      set(TWINSTREAM_FABRIC_LIBRARY "${_ts_fabric}" CACHE FILEPATH "" FORCE)
    endif()
  endif()
endif()
find_path(TWINSTREAM_FABRIC_INCLUDE_DIR rdma/fabric.h)

if(TWINSTREAM_WITH_FABRIC STREQUAL "AUTO")
  if(TWINSTREAM_FABRIC_LIBRARY AND TWINSTREAM_FABRIC_INCLUDE_DIR)
    set(TWINSTREAM_WITH_FABRIC ON)
  else()
    set(TWINSTREAM_WITH_FABRIC OFF)
    message(STATUS "twinstream: fabric plane off (libfabric or its headers not found; "
                   "pip install mpich and apt install libfabric-dev)")
  endif()
elseif(TWINSTREAM_WITH_FABRIC AND NOT (TWINSTREAM_FABRIC_LIBRARY AND TWINSTREAM_FABRIC_INCLUDE_DIR))
  message(FATAL_ERROR "TWINSTREAM_WITH_FABRIC=ON but libfabric was not found: pip install "
                      "mpich (its libfabric) and apt install libfabric-dev (headers), or set "
                      "TWINSTREAM_FABRIC_LIBRARY and TWINSTREAM_FABRIC_INCLUDE_DIR")
endif()
if(TWINSTREAM_WITH_FABRIC)
  get_filename_component(_ts_dir "${TWINSTREAM_FABRIC_LIBRARY}" DIRECTORY)
  list(APPEND TWINSTREAM_RMA_RPATH "${_ts_dir}")
  message(STATUS "twinstream: fabric plane links ${TWINSTREAM_FABRIC_LIBRARY}")
endif()

# ---- MPI
set(TWINSTREAM_MPI_LIBRARY "" CACHE FILEPATH "libmpi the mpi plane links")
set(TWINSTREAM_MPI_INCLUDE_DIR "" CACHE PATH "directory of mpi.h for the mpi plane")
if(NOT TWINSTREAM_MPI_LIBRARY AND TWINSTREAM_MPICH_PREFIX)
  set(TWINSTREAM_MPI_LIBRARY "${TWINSTREAM_MPICH_PREFIX}/lib/libmpi.so.12" CACHE FILEPATH "" FORCE)
  set(TWINSTREAM_MPI_INCLUDE_DIR "${TWINSTREAM_MPICH_PREFIX}/include" CACHE PATH "" FORCE)
endif()
if(TWINSTREAM_WITH_MPI STREQUAL "AUTO")
  if(TWINSTREAM_MPI_LIBRARY AND EXISTS "${TWINSTREAM_MPI_INCLUDE_DIR}/mpi.h")
    set(TWINSTREAM_WITH_MPI ON)
  else()
    set(TWINSTREAM_WITH_MPI OFF)
    message(STATUS "twinstream: mpi plane off (no MPICH wheel found; pip install mpich)")
  endif()
elseif(TWINSTREAM_WITH_MPI AND NOT TWINSTREAM_MPI_LIBRARY)
  message(FATAL_ERROR "TWINSTREAM_WITH_MPI=ON but no MPI was found: pip install mpich into "
                      "the build's Python environment, or set TWINSTREAM_MPICH_PREFIX")
endif()
if(TWINSTREAM_WITH_MPI)
  get_filename_component(_ts_dir "${TWINSTREAM_MPI_LIBRARY}" DIRECTORY)
  list(APPEND TWINSTREAM_RMA_RPATH "${_ts_dir}")
  message(STATUS "twinstream: mpi plane links ${TWINSTREAM_MPI_LIBRARY}")
endif()
