# Cross toolchain for AArch64 Linux from an x86-64 Debian host (packages g++-aarch64-linux-gnu,
# qemu-user). Programs built with it run on this host through qemu, which CMake/ctest use as the
# emulator:
#   cmake -S <project> -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=<cardinal>/cmake/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# binfmt_misc is not mounted here: call qemu explicitly, with the target's sysroot.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/usr/aarch64-linux-gnu)
