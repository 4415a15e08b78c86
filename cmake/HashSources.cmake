# Run as a script (cmake -DSOURCES=a;b;c -DOUT=file.h -P HashSources.cmake): writes OUT with the
# SHA-256 of the Halide generators' sources, so that the object cache (generate.cpp) never reuses
# a kernel compiled by an older version of its generator. OUT is rewritten only when the digest
# changes, so an unchanged tree rebuilds nothing.
set(all "")
foreach(f IN LISTS SOURCES)
  file(SHA256 "${f}" h)
  string(APPEND all "${h}")
endforeach()
string(SHA256 digest "${all}")
set(text "// Written by cmake/HashSources.cmake: the SHA-256 of generator/halide/*.\n#pragma once\n#define CARDINAL_GENERATOR_SOURCES_SHA256 \"${digest}\"\n")
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
