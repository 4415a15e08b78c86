#include <unistd.h>
// ONNX import against the real thing: torchvision networks and a custom one exported by PyTorch
// at test time (tests/onnx/export_torchvision.py, through Debian's /usr/bin/python3), imported,
// generated for this CPU and run on PyTorch's own input: relative L2 <= 1e-4 and the same top-1
// as PyTorch's output. Hand-built models (tests/onnx/make_models.py) cover the op forms PyTorch
// does not export; bad files must be refused with a clear cardinal::Error.
#include <sys/wait.h>
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "generated_test_util.h"
#include "io/npy.h"
#include "ir/error.h"
#include "onnx/onnx_import.h"
#include "reference/reference.h"
#include "zoo/zoo.h"

using namespace cardinal;
using namespace cardinal::test;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {

std::string slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// Runs tests/onnx/SCRIPT with Debian's Python (the one that sees python3-torch); its output
// goes to a log shown if it fails.
void python(const std::string& script, const std::string& args, const std::string& tag) {
    const std::string log = test_dir("logs/" + tag + ".log");
    const std::string command = "/usr/bin/python3 '" CARDINAL_SOURCE_DIR "/tests/onnx/" + script +
                                "' " + args + " >'" + log + "' 2>&1";
    const int status = std::system(command.c_str());
    INFO(command << "\n" << slurp(log));
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
}

struct Exported {
    std::string onnx;
    Tensor input, output;  // PyTorch's input and output
};

// Exports `model` (a torchvision name or "oddnet") with seeded random weights.
Exported export_model(const std::string& model, const std::string& tag, const std::string& args) {
    const std::string dir = test_dir("export/" + tag);
    fs::create_directories(dir);
    Exported e;
    e.onnx = dir + "/" + model + ".onnx";
    const std::string in = dir + "/input.npy", out = dir + "/output.npy";
    python("export_torchvision.py",
           model + " '" + e.onnx + "' --input-npy '" + in + "' --output-npy '" + out + "' " + args,
           tag);
    e.input = read_npy(in);
    e.output = read_npy(out);
    return e;
}

// Generates `graph` for this CPU, runs it on `input` and compares with `want`.
void check_generated(const Graph& graph, const Tensor& input, const Tensor& want,
                     const std::string& tag) {
    REQUIRE(input.shape == graph.input_shape);
    REQUIRE(want.shape == graph.shape_of(graph.output));
    auto net = generate_and_load(graph, "generated/" + tag);
    const std::vector<float> got = run_generated(*net, input);
    REQUIRE(got.size() == want.data.size());
    const double err = relative_l2(got, want.data);
    const size_t batch = static_cast<size_t>(want.shape[0]);
    std::printf("%-40s generated vs PyTorch: relative L2 %.3g\n", tag.c_str(), err);
    INFO(tag << ": relative L2 " << err);
    CHECK(err <= 1e-4);
    CHECK(top1(got, batch) == top1(want.data, batch));
}

void check_torchvision(const std::string& model, const std::string& args = "") {
    const Exported e = export_model(model, model, args);
    const Graph g = import_onnx(e.onnx, static_cast<int>(e.input.shape[0]));
    CHECK(g.name == model);
    check_generated(g, e.input, e.output, model);
}

// The layers a comparison of two networks looks at: convs, BatchNorms and dense layers, with
// their shapes and attributes.
std::vector<std::string> parametric_layers(const Graph& g) {
    std::vector<std::string> out;
    for (const Node& n : g.nodes) {
        std::ostringstream s;
        s << n.name << " " << op_name(n.op) << " " << g.shape_of(n.inputs.at(0)).str() << " -> "
          << g.shape_of(n.output).str();
        if (auto* c = std::get_if<Conv2D>(&n.op))
            s << " k" << c->kernel_h << "x" << c->kernel_w << " s" << c->stride_h << "x"
              << c->stride_w << " p" << c->pad.top << "," << c->pad.left << "," << c->pad.bottom
              << "," << c->pad.right << " d" << c->dilation_h << "x" << c->dilation_w << " g"
              << c->groups << " w" << c->weight.shape.str() << (c->bias ? " bias" : "");
        else if (auto* d = std::get_if<Dense>(&n.op))
            s << " w" << d->weight.shape.str() << (d->bias ? " bias" : "");
        else if (!std::holds_alternative<BatchNorm>(n.op))
            continue;
        out.push_back(s.str());
    }
    return out;
}

std::string ops_dir() {
    static const std::string dir = [] {
        const std::string d = test_dir("ops");
        python("make_models.py", "ops '" + d + "'", "make_ops");
        return d;
    }();
    return dir;
}

std::string bad_dir() {
    static const std::string dir = [] {
        const std::string d = test_dir("bad");
        python("make_models.py", "bad '" + d + "'", "make_bad");
        return d;
    }();
    return dir;
}

const char* const kOpsModels[] = {"conv_autopad",   "clip_constants", "dense_forms",
                                  "pool_pad_forms", "concat_bias_bn", "legacy_opset9"};

// Runs the `cardinal` binary; returns its exit code, stdout and stderr.
struct CliResult {
    int code = -1;
    std::string out, err;
};
CliResult run_cli(const std::string& args) {
    // Named per process: ctest runs several test cases at once.
    const std::string id = std::to_string(getpid());
    const std::string out = test_dir("cli/stdout-" + id + ".txt"),
                      err = test_dir("cli/stderr-" + id + ".txt");
    const std::string command =
        "'" CARDINAL_CLI_PATH "' " + args + " >'" + out + "' 2>'" + err + "'";
    const int status = std::system(command.c_str());
    CliResult r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    UNSCOPED_INFO("cardinal " << args << "\nexit " << r.code << "\nstderr: " << r.err);
    return r;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// torchvision and a custom network, exported by PyTorch

TEST_CASE("onnx torchvision resnet50 with BatchNorm folded by the exporter matches PyTorch",
          "[onnx][pytorch]") {
    // torch.onnx.export's default (TrainingMode.EVAL) folds BatchNorm into the convs.
    check_torchvision("resnet50", "--fold-bn");
}

TEST_CASE("onnx torchvision resnext50_32x4d matches PyTorch", "[onnx][pytorch]") {
    check_torchvision("resnext50_32x4d");
}

TEST_CASE("onnx torchvision mobilenet_v2 matches PyTorch", "[onnx][pytorch]") {
    check_torchvision("mobilenet_v2");
}

TEST_CASE("onnx torchvision googlenet matches PyTorch", "[onnx][pytorch]") {
    check_torchvision("googlenet");
}

TEST_CASE("onnx torchvision inception_v3 at 299 matches PyTorch", "[onnx][pytorch]") {
    check_torchvision("inception_v3");
}

TEST_CASE("onnx custom network with odd shapes at batch 2 matches PyTorch in opsets 11 to 17",
          "[onnx][pytorch]") {
    for (int opset = 11; opset <= 17; ++opset) {
        // Opset 11 also checks a fixed batch dimension; the others export a symbolic one.
        const std::string tag = "oddnet_opset" + std::to_string(opset);
        const Exported e = export_model(
            "oddnet", tag,
            "--batch 2 --opset " + std::to_string(opset) + (opset == 11 ? " --fixed-batch" : ""));
        const Graph g = import_onnx(e.onnx, 2);
        // Groups of 5 and 7 channels, dilation 2, stride 2 on 15x15, a residual add, ReLU6.
        bool grouped_odd = false, dilated = false, residual = false, relu6 = false;
        for (const Node& n : g.nodes) {
            if (auto* c = std::get_if<Conv2D>(&n.op)) {
                const int64_t in_per_group = c->weight.shape[1];
                if (c->groups > 1 && c->groups < c->out_channels && in_per_group % 2 == 1)
                    grouped_odd = true;
                if (c->dilation_h == 2) dilated = true;
            }
            if (std::holds_alternative<Add>(n.op)) residual = true;
            if (auto* c = std::get_if<Clip>(&n.op)) relu6 = relu6 || (c->min == 0 && c->max == 6);
        }
        CHECK(grouped_odd);
        CHECK(dilated);
        CHECK(residual);
        CHECK(relu6);
        check_generated(g, e.input, e.output, tag);
    }
}

TEST_CASE(
    "onnx torchvision resnext50_32x4d has the zoo's layers and with the zoo's structure "
    "gives PyTorch's output",
    "[onnx][pytorch]") {
    const Exported e = export_model("resnext50_32x4d", "resnext50_32x4d_zoo", "");
    const Graph imported = import_onnx(e.onnx, 1);
    Graph zoo = build_zoo_model("resnext50_32x4d", 1, 224);
    const std::vector<std::string> want = parametric_layers(zoo), got = parametric_layers(imported);
    CHECK(got.size() == want.size());
    for (size_t i = 0; i < std::min(got.size(), want.size()); ++i)
        CHECK(got[i] == want[i]);
    CHECK(count_params(imported) == count_params(zoo));
    CHECK(count_macs(imported) == count_macs(zoo));
    CHECK(count_bn_statistics(imported) == count_bn_statistics(zoo));

    // The imported graph itself, run by the reference, gives PyTorch's output.
    const Tensor direct = reference::run(imported, e.input);
    const double direct_err = relative_l2(direct.data, e.output.data);
    std::printf("%-40s imported graph (reference) vs PyTorch: relative L2 %.3g\n",
                "resnext50_32x4d", direct_err);
    CHECK(direct_err <= 1e-4);
    CHECK(top1(direct.data, 1) == top1(e.output.data, 1));

    // The zoo's graph with the imported weights, run by the reference, gives PyTorch's output.
    std::map<std::string, const Node*> by_name;
    for (const Node& n : imported.nodes)
        by_name[n.name] = &n;
    int copied = 0;
    for (Node& n : zoo.nodes) {
        if (!std::holds_alternative<Conv2D>(n.op) && !std::holds_alternative<BatchNorm>(n.op) &&
            !std::holds_alternative<Dense>(n.op))
            continue;
        REQUIRE(by_name.count(n.name));
        n.op = by_name.at(n.name)->op;
        ++copied;
    }
    CHECK(copied == 53 + 53 + 1);
    infer_shapes(zoo);
    const Tensor out = reference::run(zoo, e.input);
    const double err = relative_l2(out.data, e.output.data);
    std::printf("%-40s zoo graph + imported weights (reference) vs PyTorch: relative L2 %.3g\n",
                "resnext50_32x4d", err);
    CHECK(err <= 1e-4);
    CHECK(top1(out.data, 1) == top1(e.output.data, 1));
}

// ---------------------------------------------------------------------------------------------
// Hand-built models: every op form

TEST_CASE("onnx hand-built models of every supported op form match PyTorch", "[onnx]") {
    for (const char* model : kOpsModels) {
        const std::string base = ops_dir() + "/" + model;
        const Tensor input = read_npy(base + ".input.npy");
        const Tensor want = read_npy(base + ".output.npy");
        const Graph g = import_onnx(base + ".onnx", static_cast<int>(input.shape[0]));
        // The reference runs exactly the imported graph: checks the import's semantics alone.
        const Tensor ref = reference::run(g, input);
        REQUIRE(ref.shape == want.shape);
        const double ref_err = relative_l2(ref.data, want.data);
        std::printf("%-40s reference vs PyTorch: relative L2 %.3g\n", model, ref_err);
        INFO(model);
        CHECK(ref_err <= 1e-5);
        check_generated(g, input, want, model);
    }
}

TEST_CASE("onnx import names layers after the nodes and folds constant subgraphs", "[onnx]") {
    const Graph g = import_onnx(ops_dir() + "/dense_forms.onnx", 3);
    CHECK(g.input_shape == Shape{3, 4, 3, 3});  // the symbolic batch takes the asked one
    std::vector<std::string> names;
    for (const Node& n : g.nodes)
        names.push_back(n.name + ":" + op_name(n.op));
    // Shape/Gather/Unsqueeze/Concat are folded into the Reshape, which flattens; the MatMul's
    // Add becomes its bias.
    CHECK(names == std::vector<std::string>{"flatten:Flatten", "gemm_plain:Dense",
                                            "gemm_transposed:Dense", "matmul:Dense",
                                            "softmax:Softmax"});
    CHECK(std::get<Dense>(g.nodes[3].op).bias.has_value());
    CHECK(g.name == "dense_forms");

    // A node without a name is named after its weight ("head.conv.weight").
    const Graph c = import_onnx(ops_dir() + "/conv_autopad.onnx", 1);
    names.clear();
    for (const Node& n : c.nodes)
        names.push_back(n.name);
    CHECK(names == std::vector<std::string>{"same_upper", "same_lower", "head.conv", "pool_same"});
}

// ---------------------------------------------------------------------------------------------
// Bad input

TEST_CASE("onnx import refuses unsupported ops naming the types and nodes and the supported list",
          "[onnx][errors]") {
    REQUIRE_THROWS_AS(import_onnx(bad_dir() + "/unsupported_ops.onnx", 1), Error);
    REQUIRE_THROWS_WITH(import_onnx(bad_dir() + "/unsupported_ops.onnx", 1),
                        Contains("does not support") &&
                            Contains("Sin (nodes 'sine_1', 'sine_2')") &&
                            Contains("LSTM (node 'lstm')") && Contains("Supported: Conv") &&
                            Contains("BatchNormalization") && Contains("Softmax"));
}

TEST_CASE("onnx import refuses an empty file", "[onnx][errors]") {
    REQUIRE_THROWS_WITH(import_onnx(bad_dir() + "/empty.onnx", 1), Contains("is empty"));
}

TEST_CASE("onnx import refuses a file that is not ONNX", "[onnx][errors]") {
    REQUIRE_THROWS_WITH(import_onnx(bad_dir() + "/not_onnx.onnx", 1),
                        Contains("not a valid ONNX model"));
    REQUIRE_THROWS_WITH(import_onnx(bad_dir() + "/no_such_file.onnx", 1),
                        Contains("does not exist"));
}

TEST_CASE("onnx import refuses a truncated file", "[onnx][errors]") {
    // Every proper prefix of a valid model: refused with an Error (most cannot be parsed; a cut
    // at a field boundary leaves a model missing its graph, nodes, initializers or output).
    const std::string bytes = slurp(ops_dir() + "/conv_autopad.onnx");
    REQUIRE(bytes.size() > 1000);
    const std::string path = test_dir("truncated.onnx");
    {
        std::ofstream f(path, std::ios::binary);
        f.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
    }
    REQUIRE_THROWS_WITH(import_onnx(path, 1),
                        Contains("not a valid ONNX model") && Contains("truncated"));
    int refused = 0;
    for (size_t n = 1; n < bytes.size(); n += 7) {
        try {
            (void)import_onnx_bytes(bytes.substr(0, n), 1, "truncated");
        } catch (const Error&) {
            ++refused;
            continue;
        }
        FAIL("a prefix of " << n << " of " << bytes.size() << " bytes was imported");
    }
    CHECK(refused > 0);
}

TEST_CASE("onnx import refuses a conv weight that contradicts its group", "[onnx][errors]") {
    REQUIRE_THROWS_WITH(import_onnx(bad_dir() + "/group_mismatch.onnx", 1),
                        Contains("'conv' (Conv)") && Contains("4x6x3x3") &&
                            Contains("contradicts group=2") && Contains("6 channels"));
}

TEST_CASE("onnx import refuses a missing initializer", "[onnx][errors]") {
    REQUIRE_THROWS_WITH(import_onnx(bad_dir() + "/missing_initializer.onnx", 1),
                        Contains("missing initializer") && Contains("'conv' (Conv) reads 'w'"));
    REQUIRE_THROWS_WITH(import_onnx(bad_dir() + "/weight_as_input.onnx", 1),
                        Contains("2 inputs without initializers") && Contains("'w'"));
}

TEST_CASE("onnx import refuses a wrong input rank", "[onnx][errors]") {
    REQUIRE_THROWS_WITH(import_onnx(bad_dir() + "/wrong_rank.onnx", 1),
                        Contains("rank 3") && Contains("1x3x16") && Contains("rank 4"));
}

TEST_CASE("onnx import refuses other unsupported forms clearly", "[onnx][errors]") {
    REQUIRE_THROWS_WITH(import_onnx(bad_dir() + "/fixed_batch.onnx", 2),
                        Contains("fixed batch size of 1") && Contains("batch 2"));
    CHECK_NOTHROW(import_onnx(bad_dir() + "/fixed_batch.onnx", 1));
    REQUIRE_THROWS_WITH(import_onnx(bad_dir() + "/symbolic_height.onnx", 1),
                        Contains("symbolic height ('H')"));
    REQUIRE_THROWS_WITH(import_onnx(bad_dir() + "/reflect_pad.onnx", 1),
                        Contains("'reflect' (Pad)") && Contains("mode 'reflect'"));
    REQUIRE_THROWS_WITH(import_onnx(bad_dir() + "/old_opset.onnx", 1),
                        Contains("opset 6") && Contains("7 to 17"));
    REQUIRE_THROWS_WITH(import_onnx(ops_dir() + "/conv_autopad.onnx", 0),
                        Contains("batch must be at least 1"));
}

// ---------------------------------------------------------------------------------------------
// The command line

TEST_CASE("onnx cli inspect --onnx lists the imported layers", "[onnx][cli]") {
    const CliResult r = run_cli("inspect --onnx '" + ops_dir() + "/concat_bias_bn.onnx'");
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Contains("branch_a") && Contains("branch_b") && Contains("concat") &&
                          Contains("bn"));
    const CliResult b = run_cli("inspect --onnx '" + ops_dir() + "/dense_forms.onnx' --batch 4");
    CHECK(b.code == 0);
    CHECK_THAT(b.out, Contains("4x4x3x3"));
}

TEST_CASE("onnx cli exits 1 with one sentence for a bad file and writes nothing", "[onnx][cli]") {
    const std::string out = test_dir("cli/out");
    fs::remove_all(out);
    for (const std::string model : {"unsupported_ops", "empty", "group_mismatch", "wrong_rank",
                                    "missing_initializer", "not_onnx"}) {
        const CliResult r =
            run_cli("generate --onnx '" + bad_dir() + "/" + model + ".onnx' --out '" + out + "'");
        CHECK(r.code == 1);
        CHECK(r.err.rfind("cardinal: cannot import '", 0) == 0);
        CHECK(r.err.find('\n') == r.err.size() - 1);
        CHECK(!fs::exists(out));
    }
}
