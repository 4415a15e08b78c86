// The peers of `cardinal bench`: the oneDNN engine and the PyTorch peer compute the same network
// as the reference (small resolutions, logits where the network ends in a softmax), and
// `cardinal bench --peers` runs all engines, writes them into its JSON and refuses unknown peers.
#include <sys/wait.h>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "block_graphs.h"
#include "cardinal_runtime.h"
#include "generated_test_util.h"
#include "io/npy.h"
#include "peers/onednn_engine.h"
#include "peers/peer.h"
#include "peers/pytorch_peer.h"
#include "reference/reference.h"
#include "zoo/zoo.h"

using namespace cardinal;
using namespace cardinal::test;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

struct Result {
    int code = -1;
    std::string out, err;
};

// Runs `[env] cardinal <args>`; its output lands in the test folder `tag`.
Result run_cli(const std::string& args, const std::string& tag, const std::string& env = "") {
    const std::string dir = test_dir("cli/" + tag);
    fs::create_directories(dir);
    const std::string out = dir + "/stdout.txt", err = dir + "/stderr.txt";
    const std::string command =
        env + " '" CARDINAL_CLI_PATH "' " + args + " >'" + out + "' 2>'" + err + "'";
    const int status = std::system(command.c_str());
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    UNSCOPED_INFO("cardinal " << args << "\nexit " << r.code << "\nstdout: " << r.out
                              << "\nstderr: " << r.err);
    return r;
}

// The op forms the peers build node by node (oneDNN always; PyTorch for ONNX imports): a
// constant asymmetric Pad, a grouped conv after it, a ceil-mode max pool with asymmetric padding,
// an average pool counting its padding, a Concat, ReLU6, a zero Pad in front of a depthwise conv,
// a residual Add of two convs, a dense head. Batch 2, odd sizes.
Graph peer_ops_graph() {
    GraphBuilder b("peer_ops", Shape{2, 6, 15, 13}, 41);
    auto x = b.conv("c1", b.input(), ConvSpec::square(16, 3, 1, 1));
    x = b.batch_norm("bn1", x);
    x = b.relu("r1", x);
    x = b.pad("pad", x, Padding2D{1, 0, 2, 1}, 0.5f);
    x = b.conv("grouped", x, ConvSpec::square(20, 3, 1, 0, 4));
    x = b.max_pool("maxpool", x, PoolWindow{3, 3, 2, 2, {0, 1, 1, 0}, true});
    auto a = b.average_pool("avgpool", x, PoolWindow{3, 3, 1, 1, {1, 1, 1, 1}, false}, true);
    auto c = b.conv("branch", x, ConvSpec::square(12, 1));
    x = b.concat("concat", {a, c});
    x = b.clip("relu6", x, 0.0f, 6.0f);
    auto y = b.conv("left", x, ConvSpec::square(32, 1));
    auto z = b.pad("zero_pad", x, Padding2D{1, 1, 1, 1});  // becomes the conv's padding
    z = b.conv("right", z, ConvSpec::square(32, 3, 1, 0, 32));
    z = b.batch_norm("right_bn", z);
    x = b.add("add", y, z);
    x = b.global_average_pool("gap", x);
    x = b.flatten("flatten", x);
    x = b.dense("fc", x, 10);
    return std::move(b).finish(x);
}

Graph zoo(const std::string& name, int resolution, int batch = 1) {
    return without_final_softmax(build_zoo_model(name, batch, resolution));
}

void check_onednn(const Graph& g, int threads = 2) {
    const Tensor input = random_input(g.input_shape, 5);
    const Tensor want = reference::run(g, input);
    peers::OnednnEngine engine(g, threads);
    std::vector<float> got(want.data.size(), std::nanf(""));
    engine.run(input.ptr(), got.data());
    const double err = relative_l2(got, want.data);
    INFO(g.name << ": oneDNN vs reference, relative L2 " << err);
    CHECK(err <= 1e-4);
    // Every step is accounted for and the per-step timing path gives the same result.
    std::vector<double> seconds(size_t(engine.num_steps()), -1);
    std::vector<float> again(want.data.size(), std::nanf(""));
    engine.run(input.ptr(), again.data(), seconds.data());
    CHECK(again == got);
    for (double s : seconds)
        CHECK(s >= 0);
    int64_t macs = 0;
    for (int s = 0; s < engine.num_steps(); ++s)
        macs += engine.step(s).macs;
    CHECK(macs == count_macs(g));
}

void check_pytorch(const Graph& g, bool zoo_model, int threads = 1) {
    const Tensor input = random_input(g.input_shape, 6);
    const Tensor want = reference::run(g, input);
    peers::PytorchPeer peer(g, zoo_model, threads, input);
    INFO(peer.description());
    CHECK(peer.run() > 0);
    const Tensor got = peer.output();
    REQUIRE(got.shape == want.shape);
    const double err = relative_l2(got.data, want.data);
    INFO(g.name << ": PyTorch vs reference, relative L2 " << err);
    CHECK(err <= 1e-4);
}

}  // namespace

TEST_CASE("peers: oneDNN agrees with the reference on resnext50_32x4d at 64", "[peers][onednn]") {
    check_onednn(zoo("resnext50_32x4d", 64));
}

TEST_CASE("peers: oneDNN agrees with the reference on mobilenet_v2 at 64", "[peers][onednn]") {
    check_onednn(zoo("mobilenet_v2", 64));
}

TEST_CASE("peers: oneDNN agrees with the reference on xception at 71", "[peers][onednn]") {
    check_onednn(zoo("xception", 71));
}

TEST_CASE("peers: oneDNN agrees with the reference on odd shapes at batch 2 and 1 thread",
          "[peers][onednn]") {
    check_onednn(odd_shapes_graph(), 1);
    check_onednn(peer_ops_graph(), 1);
    check_onednn(zoo("resnet50", 48, 2));
}

TEST_CASE("peers: PyTorch agrees with the reference on resnext50_32x4d at 64", "[peers][pytorch]") {
    check_pytorch(zoo("resnext50_32x4d", 64), true);
}

TEST_CASE("peers: PyTorch agrees with the reference on mobilenet_v2 at 64", "[peers][pytorch]") {
    check_pytorch(zoo("mobilenet_v2", 64), true);
}

TEST_CASE("peers: PyTorch Xception agrees with the reference at 71 and 75", "[peers][pytorch]") {
    check_pytorch(zoo("xception", 71), true);
    // 75: the 'same' max pools pad asymmetrically at other blocks than at 71.
    check_pytorch(zoo("xception", 75), true);
}

TEST_CASE("peers: PyTorch built from the graph agrees with the reference on every op form",
          "[peers][pytorch]") {
    check_pytorch(peer_ops_graph(), false, 2);
    // The zoo's ResNeXt through the node-by-node module too (what an ONNX import gets).
    check_pytorch(zoo("resnext50_32x4d", 64), false);
}

TEST_CASE("peers: PyTorch falls back to jit.freeze where optimize_for_inference is wrong",
          "[peers][pytorch]") {
    // odd_shapes adds a ReLU output (24 channels) to a conv of it: PyTorch 1.13's oneDNN path
    // gets that wrong where it blocks channels by 16 (AVX-512 CPUs), the driver notices and
    // runs jit.freeze alone, still exact. With 8-channel blocks (AVX2) 24 channels come out
    // right and either mode may stand; the output must be exact in both.
    const Graph g = odd_shapes_graph();
    const Tensor input = random_input(g.input_shape, 6);
    const Tensor want = reference::run(g, input);
    peers::PytorchPeer peer(g, false, 1, input);
    if (rt::missing_cpu_features(resolve_target("x86-64-avx512")).empty()) {
        CHECK_THAT(peer.description(), Catch::Contains("jit.freeze only"));
    } else {
        WARN("no AVX-512 here, the fallback need not happen: " << peer.description());
        CHECK_THAT(peer.description(), Catch::Contains("jit.freeze"));
    }
    peer.run();
    CHECK(relative_l2(peer.output().data, want.data) <= 1e-4);
}

TEST_CASE("peers: the weights exchange holds every tensor of the graph", "[peers]") {
    const Graph g = build_zoo_model("mobilenet_v2", 1, 32);
    const fs::path dir = test_dir("exchange");
    fs::remove_all(dir);
    peers::export_graph(g, dir);
    const nlohmann::json j = nlohmann::json::parse(slurp(dir / "graph.json"));
    CHECK(j["model"] == "mobilenet_v2");
    CHECK(j["nodes"].size() == g.nodes.size());
    int64_t floats = 0;
    for (const Node& n : g.nodes)
        floats += count_node_params(n);
    floats += count_bn_statistics(g);
    CHECK(j["weights_floats"].get<int64_t>() == floats);
    CHECK(int64_t(fs::file_size(dir / "weights.bin")) == 4 * floats);
    // The first conv's weights are where the manifest says.
    const auto& first = j["nodes"][0];
    CHECK(first["name"] == "features.0.0");
    CHECK(first["tensors"]["weight"]["offset"] == 0);
    const std::string bin = slurp(dir / "weights.bin");
    const Conv2D& c = std::get<Conv2D>(g.nodes[0].op);
    CHECK(std::memcmp(bin.data(), c.weight.ptr(), c.weight.data.size() * 4) == 0);
}

TEST_CASE("peers: bench with every peer runs and its JSON has all four engines", "[peers][cli]") {
    const std::string json = test_dir("cli/bench.json");
    const Result r = run_cli(
        "bench --model mobilenet_v2 --resolution 64 --peers "
        "reference,onednn,pytorch --runs 3 --runs-per-round 2 --threads 2 --json '" +
            json + "'",
        "bench_all");
    REQUIRE(r.code == 0);
    const nlohmann::json j = nlohmann::json::parse(slurp(json));
    CHECK(j["model"] == "mobilenet_v2");
    CHECK(j["threads"] == 2);
    CHECK(j["batch"] == 1);
    CHECK(j["runs_per_round"] == 2);
    std::set<std::string> engines;
    for (const auto& e : j["results"]) {
        engines.insert(e["engine"].get<std::string>());
        // Rounds of 2 timed runs (a last round of 1): only timed runs are reported, the
        // reference's --reference-runs (2) of them.
        CHECK(e["times_ms"].size() == (e["engine"] == "reference" ? 2u : 3u));
        CHECK(e["median_ms"].get<double>() > 0);
        CHECK(e["min_ms"].get<double>() <= e["median_ms"].get<double>());
        CHECK(e["max_ms"].get<double>() >= e["median_ms"].get<double>());
        CHECK(e["gflops"].get<double>() > 0);
        CHECK(e["peak_fraction"].get<double>() > 0);
    }
    CHECK(engines == std::set<std::string>{"generated", "reference", "onednn", "pytorch"});
    CHECK(j["missing"].empty());
    CHECK(j["agreement"].size() == 6);
    for (const auto& a : j["agreement"]) {
        INFO(a.dump());
        CHECK(a["relative_l2"].get<double>() <= 1e-4);
    }
    CHECK_THAT(r.out,
               Catch::Contains("generated / onednn") && Catch::Contains("pytorch vs reference"));
}

TEST_CASE("peers: bench says when a saturated softmax makes the outputs' agreement vacuous",
          "[peers][cli]") {
    // Xception's softmax saturates with the zoo's random weights: one-hot outputs, equal in every
    // engine. MobileNetV2 ends at the logits.
    for (const auto& [model, saturated] : {std::pair{"xception", true}, {"mobilenet_v2", false}}) {
        const std::string json = test_dir(std::string("cli/saturated_") + model + ".json");
        const Result r = run_cli(std::string("bench --model ") + model +
                                     " --resolution 71 --engine reference --peers onednn "
                                     "--runs 1 --warmup 0 --json '" +
                                     json + "'",
                                 std::string("bench_saturated_") + model);
        REQUIRE(r.code == 0);
        const nlohmann::json j = nlohmann::json::parse(slurp(json));
        CHECK(j["outputs_saturated"] == saturated);
        CHECK((r.out.find("saturated softmax") != std::string::npos) == saturated);
    }
}

TEST_CASE("peers: bench on an ONNX file runs every peer and they agree", "[peers][cli][onnx]") {
    const std::string dir = test_dir("onnx_export");
    fs::create_directories(dir);
    const std::string onnx = dir + "/oddnet.onnx", log = dir + "/export.log";
    const std::string command = "/usr/bin/python3 '" CARDINAL_SOURCE_DIR
                                "/tests/onnx/export_torchvision.py' oddnet '" +
                                onnx + "' >'" + log + "' 2>&1";
    const int status = std::system(command.c_str());
    INFO(slurp(log));
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    const std::string json = dir + "/bench.json";
    const Result r =
        run_cli("bench --onnx '" + onnx + "' --peers reference,onednn,pytorch --runs 2 --json '" +
                    json + "'",
                "bench_onnx");
    REQUIRE(r.code == 0);
    const nlohmann::json j = nlohmann::json::parse(slurp(json));
    CHECK(j["results"].size() == 4);
    CHECK(j["missing"].empty());
    for (const auto& a : j["agreement"]) {
        INFO(a.dump());
        CHECK(a["relative_l2"].get<double>() <= 1e-4);
    }
}

TEST_CASE("peers: an unknown peer is a usage error", "[peers][cli]") {
    const Result r = run_cli("bench --model mobilenet_v2 --peers reference,tensorflow", "unknown");
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains("tensorflow") && Catch::Contains("onednn"));
}

TEST_CASE("peers: a missing PyTorch is reported not skipped", "[peers][cli]") {
    const std::string json = test_dir("cli/missing.json");
    const Result r = run_cli(
        "bench --model mobilenet_v2 --resolution 32 --peers pytorch --runs 1 "
        "--warmup 0 --json '" +
            json + "'",
        "missing", "CARDINAL_PYTHON=/nonexistent/python3");
    REQUIRE(r.code == 0);
    CHECK_THAT(r.out,
               Catch::Contains("pytorch: MISSING") && Catch::Contains("/nonexistent/python3"));
    const nlohmann::json j = nlohmann::json::parse(slurp(json));
    REQUIRE(j["missing"].size() == 1);
    CHECK(j["missing"][0]["engine"] == "pytorch");
    CHECK(j["results"].size() == 1);  // generated alone
}
