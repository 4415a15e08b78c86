#include "peers/pytorch_peer.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/npy.h"
#include "ir/error.h"
#include "peers/peer.h"

extern char** environ;

namespace cardinal::peers {

namespace fs = std::filesystem;

namespace {

nlohmann::json shape_json(const Shape& s) {
    return nlohmann::json(s.dims);
}

nlohmann::json pad_json(const Padding2D& p) {
    return {p.top, p.left, p.bottom, p.right};
}

void window_json(nlohmann::json& j, const PoolWindow& w) {
    j["kernel"] = {w.kernel_h, w.kernel_w};
    j["stride"] = {w.stride_h, w.stride_w};
    j["pad"] = pad_json(w.pad);
    j["ceil_mode"] = w.ceil_mode;
}

std::string tail_of(const fs::path& p, size_t max_chars = 2000) {
    std::ifstream f(p, std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(f)), {});
    if (s.size() > max_chars) s = "..." + s.substr(s.size() - max_chars);
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

std::string env_or(const char* name, const std::string& fallback) {
    const char* v = std::getenv(name);
    return v && *v ? std::string(v) : fallback;
}

}  // namespace

void export_graph(const Graph& graph, const fs::path& dir) {
    fs::create_directories(dir);
    std::ofstream bin(dir / "weights.bin", std::ios::binary);
    int64_t offset = 0;  // in floats
    auto put = [&](nlohmann::json& tensors, const char* what, const Tensor& t) {
        bin.write(reinterpret_cast<const char*>(t.ptr()), std::streamsize(t.data.size() * 4));
        tensors[what] = {{"offset", offset}, {"shape", shape_json(t.shape)}};
        offset += int64_t(t.data.size());
    };
    nlohmann::json nodes = nlohmann::json::array();
    for (const Node& n : graph.nodes) {
        nlohmann::json j = {{"name", n.name},
                            {"op", op_name(n.op)},
                            {"inputs", n.inputs},
                            {"output", n.output},
                            {"output_shape", shape_json(graph.shape_of(n.output))}};
        nlohmann::json tensors = nlohmann::json::object();
        if (const Conv2D* c = std::get_if<Conv2D>(&n.op)) {
            j["out_channels"] = c->out_channels;
            j["kernel"] = {c->kernel_h, c->kernel_w};
            j["stride"] = {c->stride_h, c->stride_w};
            j["pad"] = pad_json(c->pad);
            j["dilation"] = {c->dilation_h, c->dilation_w};
            j["groups"] = c->groups;
            put(tensors, "weight", c->weight);
            if (c->bias) put(tensors, "bias", *c->bias);
        } else if (const BatchNorm* b = std::get_if<BatchNorm>(&n.op)) {
            j["epsilon"] = b->epsilon;
            put(tensors, "gamma", b->gamma);
            put(tensors, "beta", b->beta);
            put(tensors, "mean", b->mean);
            put(tensors, "var", b->var);
        } else if (const Clip* c = std::get_if<Clip>(&n.op)) {
            j["min"] = c->min;
            j["max"] = c->max;
        } else if (const MaxPool* m = std::get_if<MaxPool>(&n.op)) {
            window_json(j, m->window);
        } else if (const AveragePool* a = std::get_if<AveragePool>(&n.op)) {
            window_json(j, a->window);
            j["count_include_pad"] = a->count_include_pad;
        } else if (const Pad* p = std::get_if<Pad>(&n.op)) {
            j["pad"] = pad_json(p->pad);
            j["value"] = p->value;
        } else if (const Dense* d = std::get_if<Dense>(&n.op)) {
            j["out_features"] = d->out_features;
            put(tensors, "weight", d->weight);
            if (d->bias) put(tensors, "bias", *d->bias);
        }
        j["tensors"] = tensors;
        nodes.push_back(j);
    }
    bin.close();
    if (!bin) throw Error("cannot write '" + (dir / "weights.bin").string() + "'.");
    const nlohmann::json manifest = {{"model", graph.name},
                                     {"input", graph.input},
                                     {"input_shape", shape_json(graph.input_shape)},
                                     {"output", graph.output},
                                     {"output_shape", shape_json(graph.shape_of(graph.output))},
                                     {"weights", "weights.bin"},
                                     {"weights_floats", offset},
                                     {"nodes", nodes}};
    std::ofstream js(dir / "graph.json");
    js << manifest.dump(1) << "\n";
    if (!js) throw Error("cannot write '" + (dir / "graph.json").string() + "'.");
}

PytorchPeer::PytorchPeer(const Graph& graph, bool zoo, int threads, const Tensor& input)
    : output_shape_(graph.shape_of(graph.output)) {
    const std::string python = env_or("CARDINAL_PYTHON", "/usr/bin/python3");
    const std::string script =
        env_or("CARDINAL_PYTORCH_SCRIPT", std::string(CARDINAL_PEERS_DIR) + "/pytorch_bench.py");
    if (access(python.c_str(), X_OK) != 0)
        throw PeerUnavailable("no Python interpreter at " + python +
                              " (Debian's python3 with python3-torch; set CARDINAL_PYTHON)");
    if (!fs::exists(script)) throw PeerUnavailable("the PyTorch driver " + script + " is missing");

    char tmpl[] = "cardinal-pytorch-XXXXXX";
    const std::string pattern = (fs::temp_directory_path() / tmpl).string();
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) throw Error("cannot create a temporary folder for the PyTorch peer.");
    dir_ = buf.data();

    try {
        export_graph(graph, dir_);
        write_npy((dir_ / "input.npy").string(), input);
    } catch (...) {
        shutdown();
        throw;
    }

    // A peer that dies must not take cardinal down with SIGPIPE: writes then fail with EPIPE.
    std::signal(SIGPIPE, SIG_IGN);
    int in_pipe[2], out_pipe[2];
    if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0)
        throw Error("cannot create pipes for the PyTorch peer.");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
    const std::string log = (dir_ / "stderr.txt").string();
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const std::vector<std::string> argv_s = {python,      script,
                                             "--graph",   (dir_ / "graph.json").string(),
                                             "--input",   (dir_ / "input.npy").string(),
                                             "--threads", std::to_string(threads),
                                             "--source",  zoo ? "zoo" : "graph"};
    std::vector<char*> argv;
    for (const std::string& a : argv_s)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    // The environment, with the thread count also set for OpenMP before torch starts.
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e)
        if (std::strncmp(*e, "OMP_NUM_THREADS=", 16) != 0) env_s.push_back(*e);
    env_s.push_back("OMP_NUM_THREADS=" + std::to_string(threads));
    std::vector<char*> envp;
    for (const std::string& e : env_s)
        envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    const int rc = posix_spawn(&pid_, python.c_str(), &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    close(in_pipe[0]);
    close(out_pipe[1]);
    if (rc != 0) {
        close(in_pipe[1]);
        close(out_pipe[0]);
        pid_ = -1;
        throw PeerUnavailable("cannot start " + python + ": " + std::strerror(rc));
    }
    to_ = fdopen(in_pipe[1], "w");
    from_ = fdopen(out_pipe[0], "r");

    // Wait for "ready ..." (building, loading the weights, freezing and warming up).
    char* line = nullptr;
    size_t cap = 0;
    const ssize_t n = getline(&line, &cap, from_);
    std::string first = n > 0 ? std::string(line, size_t(n)) : "";
    std::free(line);
    while (!first.empty() && (first.back() == '\n' || first.back() == '\r'))
        first.pop_back();
    if (first.rfind("ready ", 0) == 0) {
        description_ = first.substr(6);
        return;
    }
    if (first.rfind("missing ", 0) == 0) {
        const std::string reason = first.substr(8);
        shutdown();
        throw PeerUnavailable(reason);
    }
    fail("did not start (" + (first.empty() ? std::string("no answer") : first) + ")");
}

PytorchPeer::~PytorchPeer() {
    shutdown();
}

void PytorchPeer::shutdown() {
    if (to_) {
        std::fputs("quit\n", to_);
        std::fflush(to_);
        std::fclose(to_);
        to_ = nullptr;
    }
    if (from_) {
        std::fclose(from_);
        from_ = nullptr;
    }
    if (pid_ > 0) {
        int status = 0;
        waitpid(pid_, &status, 0);
        pid_ = -1;
    }
    if (!dir_.empty()) {
        if (std::getenv("CARDINAL_PYTORCH_KEEP")) {
            std::fprintf(stderr, "cardinal: PyTorch peer files kept in %s\n", dir_.c_str());
        } else {
            std::error_code ec;
            fs::remove_all(dir_, ec);
        }
        dir_.clear();
    }
}

void PytorchPeer::fail(const std::string& what) {
    if (to_) {
        std::fclose(to_);
        to_ = nullptr;
    }
    int status = 0;
    if (pid_ > 0) {
        kill(pid_, SIGTERM);
        waitpid(pid_, &status, 0);
        pid_ = -1;
    }
    std::string log = dir_.empty() ? "" : tail_of(dir_ / "stderr.txt");
    shutdown();
    throw Error("the PyTorch peer " + what + (log.empty() ? "" : "; its stderr:\n" + log));
}

std::string PytorchPeer::request(const std::string& line) {
    if (!to_ || !from_) throw Error("the PyTorch peer is not running.");
    if (std::fputs((line + "\n").c_str(), to_) < 0 || std::fflush(to_) != 0)
        fail("stopped accepting commands");
    char* buf = nullptr;
    size_t cap = 0;
    const ssize_t n = getline(&buf, &cap, from_);
    std::string reply = n > 0 ? std::string(buf, size_t(n)) : "";
    std::free(buf);
    while (!reply.empty() && (reply.back() == '\n' || reply.back() == '\r'))
        reply.pop_back();
    if (reply.empty()) fail("exited during '" + line + "'");
    if (reply.rfind("error ", 0) == 0) fail("failed on '" + line + "': " + reply.substr(6));
    return reply;
}

double PytorchPeer::run() {
    const std::string r = request("run");
    if (r.rfind("t ", 0) != 0) fail("answered '" + r + "' to 'run'");
    return std::stod(r.substr(2));
}

Tensor PytorchPeer::output() {
    const std::string path = (dir_ / "output.npy").string();
    const std::string r = request("output " + path);
    if (r != "ok") fail("answered '" + r + "' to 'output'");
    Tensor t = read_npy(path);
    if (t.numel() != output_shape_.numel())
        fail("returned an output of shape " + t.shape.str() + " instead of " + output_shape_.str());
    t.shape = output_shape_;
    return t;
}

}  // namespace cardinal::peers
