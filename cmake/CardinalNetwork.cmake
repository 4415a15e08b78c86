# cardinal_add_network(<target> MODEL <zoo name> | ONNX <file>
#                      [TARGETS <preset or Halide target>...] [SCHEDULES <file>|none]
#                      [BATCH <n>] [RESOLUTION <r>])
#
# Runs `cardinal generate` at build time and defines <target>, a static library holding the
# generated network (NAME.cpp, the runtime, and libNAME.a with the compiled layer kernels).
# Link it and include "<NAME>.h". The weights file's path is given to dependents as the
# compile definition <TARGET>_WEIGHTS_PATH (upper-cased target name) and as the target
# property CARDINAL_WEIGHTS.
#
# CARDINAL_EXECUTABLE names the generator: the `cardinal` target when built in this project,
# else set it (or have `cardinal` on PATH).
include_guard(GLOBAL)

function(cardinal_add_network target)
  cmake_parse_arguments(ARG "" "MODEL;ONNX;SCHEDULES;BATCH;RESOLUTION" "TARGETS" ${ARGN})
  if(NOT ARG_MODEL AND NOT ARG_ONNX)
    message(FATAL_ERROR "cardinal_add_network(${target}): give MODEL or ONNX")
  endif()
  if(TARGET cardinal)
    set(generator $<TARGET_FILE:cardinal>)
    set(generator_dep cardinal)
  elseif(CARDINAL_EXECUTABLE)
    set(generator ${CARDINAL_EXECUTABLE})
    set(generator_dep ${CARDINAL_EXECUTABLE})
  else()
    find_program(generator cardinal REQUIRED)
    set(generator_dep ${generator})
  endif()

  set(out ${CMAKE_CURRENT_BINARY_DIR}/${target}.cardinal)
  set(args generate --out ${out} --name ${target})
  set(deps ${generator_dep})
  if(ARG_MODEL)
    list(APPEND args --model ${ARG_MODEL})
  else()
    get_filename_component(onnx ${ARG_ONNX} ABSOLUTE)
    list(APPEND args --onnx ${onnx})
    list(APPEND deps ${onnx})
  endif()
  if(ARG_TARGETS)
    string(JOIN "," targets ${ARG_TARGETS})
    list(APPEND args --target ${targets})
  endif()
  if(ARG_SCHEDULES)
    list(APPEND args --schedules ${ARG_SCHEDULES})
    if(NOT ARG_SCHEDULES STREQUAL "none")
      list(APPEND deps ${ARG_SCHEDULES})
    endif()
  endif()
  if(ARG_BATCH)
    list(APPEND args --batch ${ARG_BATCH})
  endif()
  if(ARG_RESOLUTION)
    list(APPEND args --resolution ${ARG_RESOLUTION})
  endif()

  set(outputs ${out}/${target}.h ${out}/${target}.cpp ${out}/lib${target}.a
              ${out}/${target}.weights ${out}/cardinal_runtime.cpp)
  add_custom_command(
    OUTPUT ${outputs}
    COMMAND ${generator} ${args}
    DEPENDS ${deps}
    COMMENT "cardinal: generating ${target}"
    VERBATIM)
  add_custom_target(${target}_generate DEPENDS ${outputs})

  find_package(Threads REQUIRED)
  add_library(${target} STATIC ${out}/${target}.cpp ${out}/cardinal_runtime.cpp)
  add_dependencies(${target} ${target}_generate)
  target_include_directories(${target} PUBLIC ${out})
  target_link_libraries(${target} PUBLIC ${out}/lib${target}.a Threads::Threads ${CMAKE_DL_LIBS})
  # Generated code is compiled without the project's sanitizer or warning flags: it is
  # machine-written and its kernels are not instrumented anyway.
  set_target_properties(${target} PROPERTIES CARDINAL_WEIGHTS ${out}/${target}.weights
                                             COMPILE_OPTIONS "" LINK_OPTIONS "")
  string(TOUPPER ${target} upper)
  target_compile_definitions(${target} PUBLIC ${upper}_WEIGHTS_PATH="${out}/${target}.weights")
endfunction()
