// ARM64 for real: networks generated on this x86 machine for arm-64-linux, cross-built with the
// repository's CMake toolchain file (aarch64-linux-gnu-g++) and run under qemu-aarch64; their
// outputs must match the reference computed here.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "block_graphs.h"
#include "generated_test_util.h"

using namespace cardinal;
using namespace cardinal::test;
namespace fs = std::filesystem;

namespace {

std::string quote(const std::string& s) { return "'" + s + "'"; }

int run(const std::string& cmd, const std::string& log) {
    return std::system((cmd + " > " + quote(log) + " 2>&1").c_str());
}

std::string read_text(const std::string& path) {
    std::ifstream f(path);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

void check_on_arm64(const Graph& g, const std::string& tag) {
    GenerateOptions o;
    o.out_dir = test_dir(tag + "/net");
    fs::remove_all(test_dir(tag));
    o.targets = {resolve_target("arm64")};
    o.cache_dir = CARDINAL_TEST_CACHE_DIR;
    o.quiet = true;
    const GenerateResult r = generate_network(g, o);

    const std::string build = test_dir(tag + "/build"), log = test_dir(tag + "/log.txt");
    const std::string src = std::string(CARDINAL_SOURCE_DIR);
    const std::string configure = "cmake -S " + quote(src + "/tests/arm64") + " -B " +
                                  quote(build) + " -DCMAKE_TOOLCHAIN_FILE=" +
                                  quote(src + "/cmake/aarch64-linux-gnu.cmake") +
                                  " -DNETWORK_DIR=" + quote(o.out_dir) +
                                  " -DNETWORK_NAME=" + r.name + " -DCMAKE_BUILD_TYPE=Release";
    INFO(read_text(log));
    REQUIRE(run(configure, log) == 0);
    REQUIRE(run("cmake --build " + quote(build), log) == 0);

    const Tensor input = random_input(g.input_shape, 11);
    const std::string in_path = test_dir(tag + "/input.bin"), out_path = test_dir(tag + "/output.bin");
    std::ofstream(in_path, std::ios::binary)
        .write(reinterpret_cast<const char*>(input.ptr()), input.numel() * 4);
    const std::string cmd = "qemu-aarch64 -L /usr/aarch64-linux-gnu " + quote(build + "/driver") +
                            " " + quote(o.out_dir + "/" + r.name + ".weights") + " " +
                            quote(in_path) + " " + quote(out_path);
    REQUIRE(run(cmd, log) == 0);
    CHECK_THAT(read_text(log), Catch::Contains("arm-64-linux"));

    const Tensor want = reference::run(g, input);
    std::vector<float> got(want.data.size());
    std::ifstream f(out_path, std::ios::binary);
    f.read(reinterpret_cast<char*>(got.data()), std::streamsize(got.size() * 4));
    REQUIRE(f.gcount() == std::streamsize(got.size() * 4));
    CHECK(relative_l2(got, want.data) <= 1e-5);
}

}  // namespace

TEST_CASE("arm64: a small network with odd shapes runs under qemu and matches the reference") {
    check_on_arm64(odd_shapes_graph(), "arm64_odd");
}

TEST_CASE("arm64: a full ResNeXt bottleneck block runs under qemu and matches the reference") {
    check_on_arm64(resnext_block_graph(), "arm64_resnext_block");
}

TEST_CASE("arm64: an Xception middle-flow block runs under qemu and matches the reference") {
    check_on_arm64(xception_middle_block_graph(), "arm64_xception_block");
}
