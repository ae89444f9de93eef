# ctest DeployInstall.*: installs the build into a temporary prefix, builds
# examples/rig against the installed ml3_runtime (CMake package and
# pkg-config) and runs both example programs on a policy file.
#   cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -DPOLICY=... [-DLINK_FLAGS=...] [-DC_COMPILER=... -DCXX_COMPILER=...] -P deploy_install_test.cmake
file(REMOVE_RECURSE ${WORK_DIR})
set(PREFIX ${WORK_DIR}/prefix)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(OUT "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX})
foreach(f include/ml3/runtime.h include/ml3/runtime.hpp)
  if(NOT EXISTS ${PREFIX}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
file(GLOB_RECURSE pc ${PREFIX}/*/ml3_runtime.pc)
file(GLOB_RECURSE cfg ${PREFIX}/*/ml3_runtimeConfig.cmake)
if(NOT pc OR NOT cfg)
  message(FATAL_ERROR "ml3_runtime.pc or ml3_runtimeConfig.cmake not installed under ${PREFIX}")
endif()
# Nothing of the training stack is installed.
file(GLOB_RECURSE everything RELATIVE ${PREFIX} ${PREFIX}/*)
foreach(f ${everything})
  if(f MATCHES "torch|mujoco|ml3_learn|ml3_envs")
    message(FATAL_ERROR "installed more than the runtime: ${f}")
  endif()
endforeach()

# With the compilers that built the runtime where the build named them (a
# sanitizer build's runtime needs the same compiler's sanitizer library).
set(compilers "")
if(C_COMPILER)
  list(APPEND compilers -DCMAKE_C_COMPILER=${C_COMPILER})
endif()
if(CXX_COMPILER)
  list(APPEND compilers -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
endif()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/rig -B ${WORK_DIR}/build -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_PREFIX_PATH=${PREFIX} "-DCMAKE_EXE_LINKER_FLAGS=${LINK_FLAGS}" ${compilers})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build -j1)

# The C++ rig: observations on stdin, actions on stdout.
file(WRITE ${WORK_DIR}/obs.txt "0 0 0 0 0.1 0.1 0.1 0.1\n0.05 0 0.2 0 0.1 0.1 0.05 0.1\nnan 0 0 0 0 0 0 0\n")
execute_process(COMMAND ${WORK_DIR}/build/rig ${POLICY} INPUT_FILE ${WORK_DIR}/obs.txt
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "rig failed (${rc}):\n${out}\n${err}")
endif()
string(REGEX MATCHALL "[^\n]+" lines "${out}")
list(LENGTH lines n)
if(NOT n EQUAL 3 OR NOT err MATCHES "3 actions, 1 fault")
  message(FATAL_ERROR "rig: expected 3 action lines and 1 fault, got:\n${out}\n${err}")
endif()
# The C rig (C API): prints the spec and acts.
run(${WORK_DIR}/build/rig_c ${POLICY})
if(NOT OUT MATCHES "env pointmass, 8 observations, 2 actions")
  message(FATAL_ERROR "rig_c: unexpected output:\n${OUT}")
endif()
# A bad file: one error line, exit 1.
file(WRITE ${WORK_DIR}/bad.ml3p "ML3POLCY")
execute_process(COMMAND ${WORK_DIR}/build/rig_c ${WORK_DIR}/bad.ml3p RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
if(NOT rc EQUAL 1 OR NOT err MATCHES "bad.ml3p: truncated")
  message(FATAL_ERROR "rig_c on a bad file: exit ${rc}, ${err}")
endif()
# pkg-config finds the same library (when pkg-config is installed).
find_program(PKG_CONFIG pkg-config)
if(PKG_CONFIG)
  get_filename_component(pcdir ${pc} DIRECTORY)
  set(ENV{PKG_CONFIG_PATH} ${pcdir})
  run(${PKG_CONFIG} --cflags --libs ml3_runtime)
  if(NOT OUT MATCHES "-lml3_runtime")
    message(FATAL_ERROR "pkg-config: ${OUT}")
  endif()
  string(STRIP "${OUT}" flags)
  separate_arguments(flags UNIX_COMMAND "${flags}")
  run(cc ${SOURCE_DIR}/examples/rig/rig_c.c -o ${WORK_DIR}/rig_c_pkgconfig ${flags} ${LINK_FLAGS})
  run(${WORK_DIR}/rig_c_pkgconfig ${POLICY})
endif()
message(STATUS "installed runtime OK: ${PREFIX}")
