# Run as a script (cmake -DSOURCES=a;b;c -DOUT=file.h -DNAME=MACRO -DWHAT=text -P
# HashSources.cmake): writes OUT defining MACRO as the SHA-256 of SOURCES, so that caches keyed
# by it (the object cache of generate.cpp: the Halide generators' sources; the networks `run` and
# `bench` build: also the runtime copied into them) never reuse what an older version built.
# OUT is rewritten only when the digest changes, so an unchanged tree rebuilds nothing.
set(all "")
foreach(f IN LISTS SOURCES)
  file(SHA256 "${f}" h)
  string(APPEND all "${h}")
endforeach()
string(SHA256 digest "${all}")
set(text "// Written by cmake/HashSources.cmake: the SHA-256 of ${WHAT}.\n#pragma once\n#define ${NAME} \"${digest}\"\n")
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
