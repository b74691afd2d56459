# Decides whether the Python module `orrery` (python/) is built: ORRERY_PYTHON is ON when
# ORRERY_WITH_PYTHON is AUTO or ON and a Python 3 interpreter, its headers (python3-dev)
# and pybind11 (pybind11-dev) are all found. AUTO says why the module is skipped
# otherwise; ON makes that an error. ORRERY_PYTEST_PYTHON is the interpreter that runs
# the pytest suite: the one the module is built for, or else another of the same
# version on PATH that has pytest and PyYAML (python3-pytest, python3-yaml); empty
# when none has them.
set(ORRERY_PYTHON OFF)
set(ORRERY_PYTEST_PYTHON "")
if(NOT ORRERY_WITH_PYTHON MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "ORRERY_WITH_PYTHON must be AUTO, ON or OFF, not '${ORRERY_WITH_PYTHON}'")
endif()

function(_orrery_python_missing why)
  if(ORRERY_WITH_PYTHON STREQUAL "ON")
    message(FATAL_ERROR "ORRERY_WITH_PYTHON=ON but ${why}")
  endif()
  message(STATUS "python module skipped: ${why} (everything else is built)")
endfunction()

if(ORRERY_WITH_PYTHON STREQUAL "OFF")
  message(STATUS "python module skipped: ORRERY_WITH_PYTHON=OFF (everything else is built)")
  return()
endif()

find_package(Python3 COMPONENTS Interpreter Development.Module QUIET)
if(NOT Python3_Interpreter_FOUND OR NOT Python3_Development.Module_FOUND)
  _orrery_python_missing("no Python 3 interpreter with its headers was found (install python3-dev)")
  return()
endif()
# Found after Python3, pybind11 builds for that interpreter.
find_package(pybind11 CONFIG QUIET)
if(NOT pybind11_FOUND)
  _orrery_python_missing("pybind11 was not found (install pybind11-dev)")
  return()
endif()
set(ORRERY_PYTHON ON)
message(STATUS "python module: building orrery for Python ${Python3_VERSION} "
               "(${Python3_EXECUTABLE}) with pybind11 ${pybind11_VERSION}")

# The module loads in any interpreter of the same version (one ABI), so the suite may run
# under another one on PATH when this one lacks pytest or PyYAML (a pyenv interpreter before the
# system's, say).
set(_candidates "${Python3_EXECUTABLE}")
string(REPLACE ":" ";" _path "$ENV{PATH}")
foreach(_dir IN LISTS _path)
  foreach(_name python${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR} python3)
    if(EXISTS "${_dir}/${_name}")
      list(APPEND _candidates "${_dir}/${_name}")
    endif()
  endforeach()
endforeach()
foreach(_py IN LISTS _candidates)
  execute_process(COMMAND "${_py}" -c "import sys, pytest, yaml; print('%d.%d' % sys.version_info[:2])"
                  RESULT_VARIABLE _rc OUTPUT_VARIABLE _version ERROR_QUIET
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(_rc EQUAL 0 AND _version STREQUAL "${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}")
    set(ORRERY_PYTEST_PYTHON "${_py}")
    break()
  endif()
endforeach()
if(ORRERY_PYTEST_PYTHON)
  message(STATUS "python module: pytest suite runs under ${ORRERY_PYTEST_PYTHON}")
elseif(ORRERY_WITH_PYTHON STREQUAL "ON")
  message(FATAL_ERROR "ORRERY_WITH_PYTHON=ON but no Python ${Python3_VERSION_MAJOR}."
                      "${Python3_VERSION_MINOR} on PATH has pytest and PyYAML (install python3-pytest python3-yaml)")
else()
  message(STATUS "python module: its pytest suite is not registered: no Python "
                 "${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR} on PATH has pytest and PyYAML "
                 "(install python3-pytest python3-yaml)")
endif()
