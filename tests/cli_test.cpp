// The `cardinal` binary end to end: listings, inspect (table and JSON), run, and the exit code
// and message of every kind of failure.
#include <sys/wait.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <unistd.h>

#include "io/npy.h"
#include "reference/reference.h"
#include "zoo/zoo.h"

using namespace cardinal;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {

struct Result {
    int code = -1;
    std::string out, err;
};

fs::path tmp_dir() {
    const fs::path dir = fs::path(CARDINAL_TEST_TMPDIR) / "cli";
    fs::create_directories(dir);
    return dir;
}

std::string tmp(const std::string& name) {
    return (tmp_dir() / name).string();
}

std::string slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// Runs `cardinal <args>` (args are shell words; paths here have no spaces or quotes).
Result run_cli(const std::string& args) {
    // Named per process: ctest runs several test cases of this file at once.
    const std::string id = std::to_string(getpid());
    const std::string out = tmp("stdout-" + id + ".txt"), err = tmp("stderr-" + id + ".txt");
    const std::string command =
        "'" CARDINAL_CLI_PATH "' " + args + " >'" + out + "' 2>'" + err + "'";
    const int status = std::system(command.c_str());
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    // Shown with the next assertion, so a failing exit-code check says what happened.
    UNSCOPED_INFO("cardinal " << args << "\nexit " << r.code << "\nstderr: " << r.err);
    return r;
}

// A failure prints one line on stderr: "cardinal: <sentence>.".
void check_one_sentence(const Result& r) {
    INFO(r.err);
    CHECK(r.err.rfind("cardinal: ", 0) == 0);
    CHECK(r.err.size() > 12);
    CHECK(r.err.find('\n') == r.err.size() - 1);
    CHECK(r.err[r.err.size() - 2] == '.');
}

std::string write_input(const std::string& name, Shape shape) {
    Tensor t(std::move(shape));
    for (int64_t i = 0; i < t.numel(); ++i)
        t.data[size_t(i)] = float((i * 37) % 101) / 50.0f - 1.0f;
    const std::string path = tmp(name);
    write_npy(path, t);
    return path;
}

}  // namespace

TEST_CASE("cli: no arguments and --help list the commands", "[cli]") {
    for (const std::string args : {"", "--help", "help"}) {
        const Result r = run_cli(args);
        CHECK(r.code == 0);
        CHECK_THAT(r.out, Contains("models") && Contains("inspect") && Contains("run"));
    }
    for (const std::string command : {"models", "inspect", "run"}) {
        const Result r = run_cli(command + " --help");
        CHECK(r.code == 0);
        CHECK_THAT(r.out, Contains("Usage: cardinal " + command) && Contains("--help"));
    }
}

TEST_CASE("cli: models lists every zoo model with its counts", "[cli]") {
    const Result r = run_cli("models");
    REQUIRE(r.code == 0);
    CHECK(zoo_models().size() == 8);
    for (const ZooModel& m : zoo_models())
        CHECK_THAT(r.out, Contains(m.name));
    CHECK_THAT(r.out, Contains("25,028,904") && Contains("4,230,479,872"));  // resnext50_32x4d
    CHECK_THAT(r.out, Contains("299"));                                      // xception
}

TEST_CASE("cli: inspect --json gives the real counts and every layer", "[cli]") {
    const Result r = run_cli("inspect --model resnext50_32x4d --json");
    REQUIRE(r.code == 0);
    const nlohmann::json j = nlohmann::json::parse(r.out);
    CHECK(j["model"] == "resnext50_32x4d");
    CHECK(j["batch"] == 1);
    CHECK(j["resolution"] == 224);
    CHECK(j["params"].get<int64_t>() == 25'028'904);
    CHECK(j["macs"].get<int64_t>() == 4'230'479'872);
    REQUIRE(j["layers"].is_array());
    int64_t params = 0, macs = 0;
    for (const auto& layer : j["layers"]) {
        params += layer["params"].get<int64_t>();
        macs += layer["macs"].get<int64_t>();
        CHECK(layer["name"].is_string());
        CHECK(layer["op"].is_string());
        CHECK(layer["inputs"].is_array());
        CHECK(layer["output_shape"].is_array());
    }
    CHECK(params == 25'028'904);
    CHECK(macs == 4'230'479'872);
    const auto& first = j["layers"][0];
    CHECK(first["name"] == "conv1");
    CHECK(first["op"] == "Conv2D");
    CHECK(first["output_shape"] == nlohmann::json({1, 64, 112, 112}));
    // A grouped convolution carries its groups.
    bool grouped = false;
    for (const auto& layer : j["layers"])
        if (layer["name"] == "layer1.0.conv2") grouped = layer["groups"] == 32;
    CHECK(grouped);
}

TEST_CASE("cli: inspect follows --batch and --resolution", "[cli]") {
    const Result r = run_cli("inspect --model mobilenet_v2 --batch 2 --resolution 96 --json");
    REQUIRE(r.code == 0);
    const nlohmann::json j = nlohmann::json::parse(r.out);
    CHECK(j["batch"] == 2);
    CHECK(j["resolution"] == 96);
    CHECK(j["input_shape"] == nlohmann::json({2, 3, 96, 96}));
    CHECK(j["output_shape"] == nlohmann::json({2, 1000}));
    CHECK(j["params"].get<int64_t>() == 3'504'872);
}

TEST_CASE("cli: inspect prints a layer table and totals", "[cli]") {
    const Result r = run_cli("inspect --model resnext50_32x4d");
    REQUIRE(r.code == 0);
    CHECK_THAT(r.out, Contains("layer1.0.conv2") && Contains("layer4.2.conv3") && Contains("fc"));
    CHECK_THAT(r.out, Contains("1x3x224x224") && Contains("1x1000"));
    CHECK_THAT(r.out, Contains("25,028,904") && Contains("4,230,479,872") && Contains("8.461"));
}

TEST_CASE("cli: inspect --onnx with a missing file exits 1", "[cli]") {
    const Result r = run_cli("inspect --onnx " + tmp("model.onnx"));
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Contains("model.onnx' does not exist"));
    check_one_sentence(r);
}

TEST_CASE("cli: run with the default generated engine writes the network's output", "[cli]") {
    const std::string input = write_input("x64.npy", Shape{1, 3, 64, 64});
    const std::string output = tmp("y64.npy");
    fs::remove(output);
    const Result r = run_cli("run --model resnext50_32x4d --resolution 64 --input " + input +
                             " --output " + output);
    REQUIRE(r.code == 0);
    const Tensor y = read_npy(output);
    CHECK(y.shape == Shape{1, 1000});
    const Tensor want = reference::run(build_zoo_model("resnext50_32x4d", 1, 64), read_npy(input));
    double num = 0, den = 0;
    for (size_t i = 0; i < want.data.size(); ++i) {
        num += (double(y.data[i]) - want.data[i]) * (double(y.data[i]) - want.data[i]);
        den += double(want.data[i]) * want.data[i];
    }
    CHECK(std::sqrt(num / den) <= 1e-4);
}

TEST_CASE("cli: run matches the reference in-process, seed and batch included", "[cli]") {
    const std::string input = write_input("x32.npy", Shape{2, 3, 32, 32});
    const std::string output = tmp("y32.npy");
    const Result r = run_cli(
        "run --model mobilenet_v2 --engine reference --batch 2 "
        "--resolution 32 --seed 7 --input " +
        input + " --output " + output);
    REQUIRE(r.code == 0);
    const Graph g = build_zoo_model("mobilenet_v2", 2, 32, 7);
    const Tensor expected = reference::run(g, read_npy(input));
    const Tensor y = read_npy(output);
    CHECK(y.shape == expected.shape);
    CHECK(y.data == expected.data);
}

TEST_CASE("cli: an unknown model fails with exit 1 and lists the models", "[cli]") {
    const std::string input = write_input("x_unknown.npy", Shape{1, 3, 8, 8});
    for (const std::string& args :
         {std::string("inspect --model resnet9000"),
          "run --model resnet9000 --input " + input + " --output " + tmp("y_unknown.npy")}) {
        const Result r = run_cli(args);
        CHECK(r.code == 1);
        CHECK_THAT(r.err, Contains("resnet9000"));
        for (const ZooModel& m : zoo_models())
            CHECK_THAT(r.err, Contains(m.name));
        check_one_sentence(r);
    }
}

TEST_CASE("cli: usage errors exit with 2", "[cli]") {
    const std::string io = " --input " + tmp("x_unused.npy") + " --output " + tmp("y_unused.npy");
    for (const std::string args : {
             "frobnicate",                                   // unknown command
             "--frobnicate",                                 // unknown option
             "inspect",                                      // missing --model
             "inspect --model",                              // missing value
             "inspect --model resnet50 --frobnicate",        // unknown option
             "inspect --model resnet50 extra",               // stray argument
             "inspect --model resnet50 --batch two",         // bad value
             "inspect --model resnet50 --batch 0",           // out of range
             "inspect --model resnet50 --resolution -5",     // out of range
             "inspect --model resnet50 --onnx model.onnx",   // both sources
             "run --model resnet50 --input x.npy",           // missing --output
             "run --model resnet50 --output y.npy",          // missing --input
             "generate --model resnet50 --winograd maybe",   // bad value
             "bench --model resnet50 --compare-winograd 1",  // bad value
             "bench --model resnet50 --runs-per-round 0",    // out of range
         }) {
        const Result r = run_cli(args);
        CHECK(r.code == 2);
        check_one_sentence(r);
    }
    const Result seed = run_cli("run --model resnet50 --seed -1" + io);
    CHECK(seed.code == 2);
    CHECK_THAT(seed.err, Contains("--seed"));
    const Result unknown = run_cli("frobnicate");
    CHECK_THAT(unknown.err, Contains("frobnicate") && Contains("models"));
    const Result missing = run_cli("run --model resnet50 --output y.npy");
    CHECK_THAT(missing.err, Contains("--input"));
}

TEST_CASE("cli: generate --winograd off lowers every conv direct", "[cli]") {
    // ResNet-50 at 64x64: its first stage's 3x3 convs run at 16x16 (16 tiles of 4x4).
    for (const std::string choice : {"on", "off"}) {
        const std::string dir = tmp("winograd_" + choice);
        fs::remove_all(dir);
        const Result r = run_cli("generate --model resnet50 --resolution 64 --target x86-64-avx2 "
                                 "--sources-only --winograd " + choice + " --out " + dir);
        REQUIRE(r.code == 0);
        std::ifstream f(dir + "/resnet50.cpp");
        const std::string source((std::istreambuf_iterator<char>(f)), {});
        INFO("--winograd " << choice);
        const bool winograd = source.find("cardinal_winograd_conv2d") != std::string::npos;
        CHECK(winograd == (choice == "on"));
        CHECK(source.find("cardinal_conv2d") != std::string::npos);
    }
}

TEST_CASE("cli: run --engine accepts only the engines that exist", "[cli]") {
    const std::string input = write_input("x_engine.npy", Shape{1, 3, 32, 32});
    const std::string output = tmp("y_engine.npy");
    fs::remove(output);
    const Result r = run_cli("run --model mobilenet_v2 --resolution 32 --engine nonsense --input " +
                             input + " --output " + output);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("nonsense") && Contains("reference"));
    check_one_sentence(r);
    CHECK_FALSE(fs::exists(output));
}

TEST_CASE("cli: run rejects bad inputs with exit 1 and writes nothing", "[cli]") {
    const std::string output = tmp("y_bad.npy");
    fs::remove(output);
    auto run = [&](const std::string& input, const std::string& extra = "") {
        const Result r = run_cli("run --model mobilenet_v2 --resolution 32 " + extra + "--input " +
                                 input + " --output " + output);
        CHECK(r.code == 1);
        check_one_sentence(r);
        CHECK_FALSE(fs::exists(output));
        return r;
    };

    SECTION("not a .npy file") {
        const std::string input = tmp("not_npy.npy");
        std::ofstream(input) << "1,2,3\n";
        CHECK_THAT(run(input).err, Contains("not a .npy file"));
    }
    SECTION("missing input") {
        CHECK_THAT(run(tmp("does_not_exist.npy")).err, Contains("does_not_exist.npy"));
    }
    SECTION("float64 input") {
        // A float64 [1] array: header then 8 bytes.
        std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }";
        while ((10 + header.size() + 1) % 64)
            header += ' ';
        header += '\n';
        std::string file("\x93NUMPY\x01\x00", 8);
        file += static_cast<char>(header.size());
        file += '\0';
        file += header + std::string(8, '\0');
        const std::string input = tmp("float64.npy");
        std::ofstream(input, std::ios::binary) << file;
        CHECK_THAT(run(input).err, Contains("float64"));
    }
    SECTION("resolution mismatch") {
        const std::string input = write_input("x_wrong_res.npy", Shape{1, 3, 48, 48});
        CHECK_THAT(run(input).err, Contains("1x3x48x48") && Contains("1x3x32x32"));
    }
    SECTION("batch mismatch") {
        const std::string input = write_input("x_wrong_batch.npy", Shape{2, 3, 32, 32});
        CHECK_THAT(run(input).err, Contains("2x3x32x32") && Contains("--batch"));
    }
    SECTION("rank mismatch") {
        const std::string input = write_input("x_wrong_rank.npy", Shape{3, 32, 32});
        run(input);
    }
    SECTION("resolution too small for the network") {
        const std::string input = write_input("x_tiny.npy", Shape{1, 3, 2, 2});
        const Result r =
            run_cli("run --model xception --resolution 2 --input " + input + " --output " + output);
        CHECK(r.code == 1);
        check_one_sentence(r);
        CHECK_FALSE(fs::exists(output));
    }
    SECTION("output folder missing") {
        const std::string input = write_input("x_ok.npy", Shape{1, 3, 32, 32});
        const Result r = run_cli("run --model mobilenet_v2 --resolution 32 --input " + input +
                                 " --output " + tmp("no_such_folder/y.npy"));
        CHECK(r.code == 1);
        CHECK_THAT(r.err, Contains("does not exist"));
        CHECK_FALSE(fs::exists(tmp("no_such_folder")));
    }
}
