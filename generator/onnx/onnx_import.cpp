#include "onnx/onnx_import.h"

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <unordered_map>

#include "ir/error.h"

namespace cardinal {

namespace {

static_assert(std::endian::native == std::endian::little,
              "ONNX raw_data is little-endian; this importer copies it as is");

using onnx::AttributeProto;
using onnx::GraphProto;
using onnx::ModelProto;
using onnx::NodeProto;
using onnx::TensorProto;
using onnx::ValueInfoProto;

constexpr int kMinOpset = 7;
constexpr int kMaxOpset = 17;
// Limits that keep a hostile file from asking for absurd amounts of memory or overflowing int64
// arithmetic; real networks are far below them.
constexpr int64_t kMaxDimension = int64_t(1) << 24;           // any tensor dimension
constexpr int64_t kMaxConstantElements = int64_t(1) << 31;    // one initializer
constexpr int64_t kFoldingBudget = int64_t(1) << 20;          // values created by folding, at least
constexpr int64_t kMaxActivationElements = int64_t(1) << 36;  // one activation tensor
constexpr int64_t kMaxWindowAttribute = 1 << 16;              // strides, pads, dilations
constexpr size_t kMaxListedNodes = 4;

// ---------------------------------------------------------------------------------------------
// Text helpers

// Printable, single-line, bounded: names in a hostile file may hold anything.
std::string printable(const std::string& s, size_t max = 120) {
    std::string out;
    for (unsigned char c : s) {
        if (out.size() >= max) {
            out += "...";
            break;
        }
        out += (c >= 32 && c < 127) ? static_cast<char>(c) : '?';
    }
    return out;
}

// ONNX's own messages span several lines: make them one.
std::string one_line(const std::string& s) {
    std::string out;
    bool space = false;
    for (unsigned char c : s) {
        if (std::isspace(c)) {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += (c >= 32 && c < 127) ? static_cast<char>(c) : '?';
        if (out.size() > 600) {
            out += "...";
            break;
        }
    }
    while (!out.empty() && (out.back() == '.' || out.back() == ' '))
        out.pop_back();
    return out;
}

std::string dims_str(const std::vector<int64_t>& dims) {
    if (dims.empty()) return "a scalar";
    std::string s;
    for (size_t i = 0; i < dims.size(); ++i) {
        if (i) s += 'x';
        s += std::to_string(dims[i]);
    }
    return s;
}

// 'text', printable. (Built in steps: GCC 12 warns falsely (-Wrestrict) on "literal" + string.)
std::string quoted(const std::string& s, size_t max = 120) {
    std::string q = "'";
    q += printable(s, max);
    q += '\'';
    return q;
}

std::string lower(const std::string& s) {
    std::string out = s;
    for (char& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i)
        out += (i ? sep : "") + v[i];
    return out;
}

// A layer name: letters, digits, '_', '.', '-' only (names reach generated C++ comments).
std::string sanitize(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
        if (out.size() >= 200) break;
        out += (std::isalnum(c) || c == '_' || c == '.' || c == '-') ? static_cast<char>(c) : '_';
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Op lists

const std::vector<std::string> kLayerOps = {
    "Conv",    "BatchNormalization", "Relu",    "Clip",    "Add",  "MaxPool", "AveragePool",
    "Pad",     "GlobalAveragePool",  "Flatten", "Reshape", "Gemm", "MatMul",  "Concat",
    "Softmax", "Identity",           "Dropout", "Constant"};

const std::vector<std::string> kConstantOps = {
    "Constant",  "Identity", "Dropout", "Flatten",   "Reshape", "Concat",
    "Add",       "Sub",      "Mul",     "Div",       "Shape",   "Gather",
    "Unsqueeze", "Squeeze",  "Slice",   "Transpose", "Cast",    "ConstantOfShape"};

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

std::string supported_list() {
    std::vector<std::string> extra;
    for (const std::string& op : kConstantOps)
        if (!contains(kLayerOps, op)) extra.push_back(op);
    return join(kLayerOps, ", ") + " (and, folded on constants only: " + join(extra, ", ") + ")";
}

// ---------------------------------------------------------------------------------------------
// Constants

bool is_float_type(int32_t t) {
    return t == TensorProto::FLOAT || t == TensorProto::DOUBLE;
}

bool is_int_type(int32_t t) {
    switch (t) {
        case TensorProto::INT8:
        case TensorProto::INT16:
        case TensorProto::INT32:
        case TensorProto::INT64:
        case TensorProto::UINT8:
        case TensorProto::UINT16:
        case TensorProto::UINT32:
        case TensorProto::UINT64:
        case TensorProto::BOOL:
            return true;
        default:
            return false;
    }
}

std::string type_name(int32_t t) {
    if (TensorProto::DataType_IsValid(t))
        return TensorProto::DataType_Name(static_cast<TensorProto::DataType>(t));
    return "type " + std::to_string(t);
}

// The element count of `dims`, checked: no negative dimension, no overflow, at most `limit`.
int64_t checked_numel(const std::vector<int64_t>& dims, int64_t limit, const std::string& what) {
    int64_t n = 1;
    for (int64_t d : dims) {
        if (d < 0) throw Error(what + " has a negative dimension (" + std::to_string(d) + ")");
        if (d > kMaxDimension)
            throw Error(what + " has a dimension of " + std::to_string(d) +
                        ", more than cardinal accepts (" + std::to_string(kMaxDimension) + ")");
        if (d != 0 && n > limit / d)
            throw Error(what + " would hold more than " + std::to_string(limit) + " values");
        n *= d;
    }
    if (n > limit) throw Error(what + " would hold more than " + std::to_string(limit) + " values");
    return n;
}

// A constant tensor: floating-point types are held as float32, integer and bool types as int64.
struct Const {
    int32_t dtype = TensorProto::FLOAT;
    std::vector<int64_t> dims;
    std::vector<float> f;
    std::vector<int64_t> i;

    bool is_float() const { return is_float_type(dtype); }
    int64_t size() const { return static_cast<int64_t>(is_float() ? f.size() : i.size()); }
    double at(size_t k) const { return is_float() ? double(f[k]) : double(i[k]); }
    float as_float(size_t k) const { return is_float() ? f[k] : static_cast<float>(i[k]); }
};

float to_float(double d) {
    if (std::isnan(d)) return std::numeric_limits<float>::quiet_NaN();
    if (d > double(std::numeric_limits<float>::max()))
        return std::numeric_limits<float>::infinity();
    if (d < -double(std::numeric_limits<float>::max()))
        return -std::numeric_limits<float>::infinity();
    return static_cast<float>(d);
}

template <class T>
void copy_raw(const std::string& raw, int64_t n, std::vector<T>& out, const std::string& what) {
    if (raw.size() != static_cast<size_t>(n) * sizeof(T))
        throw Error(what + " holds " + std::to_string(raw.size()) + " bytes of data, expected " +
                    std::to_string(n * int64_t(sizeof(T))) + " for its " + std::to_string(n) +
                    " values");
    out.resize(static_cast<size_t>(n));
    if (n) std::memcpy(out.data(), raw.data(), raw.size());
}

template <class Field>
void expect_count(const Field& field, int64_t n, const std::string& what) {
    if (static_cast<int64_t>(field.size()) != n)
        throw Error(what + " holds " + std::to_string(field.size()) + " values, expected " +
                    std::to_string(n));
}

Const read_tensor(const TensorProto& t, const std::string& what) {
    if (t.data_location() == TensorProto::EXTERNAL)
        throw Error(what + " keeps its data in an external file, which cardinal does not read");
    if (t.has_segment()) throw Error(what + " is segmented, which cardinal does not read");
    Const c;
    c.dtype = t.data_type();
    c.dims.assign(t.dims().begin(), t.dims().end());
    const int64_t n = checked_numel(c.dims, kMaxConstantElements, what);
    const bool raw = t.has_raw_data();
    auto ints_from_raw = [&](auto sample) {
        using T = decltype(sample);
        std::vector<T> v;
        copy_raw(t.raw_data(), n, v, what);
        c.i.assign(v.begin(), v.end());
    };
    switch (c.dtype) {
        case TensorProto::FLOAT:
            if (raw) {
                copy_raw(t.raw_data(), n, c.f, what);
            } else {
                expect_count(t.float_data(), n, what);
                c.f.assign(t.float_data().begin(), t.float_data().end());
            }
            break;
        case TensorProto::DOUBLE:
            if (raw) {
                std::vector<double> v;
                copy_raw(t.raw_data(), n, v, what);
                for (double d : v)
                    c.f.push_back(to_float(d));
            } else {
                expect_count(t.double_data(), n, what);
                for (double d : t.double_data())
                    c.f.push_back(to_float(d));
            }
            break;
        case TensorProto::INT64:
            if (raw) {
                copy_raw(t.raw_data(), n, c.i, what);
            } else {
                expect_count(t.int64_data(), n, what);
                c.i.assign(t.int64_data().begin(), t.int64_data().end());
            }
            break;
        case TensorProto::UINT32:
        case TensorProto::UINT64:
            if (raw) {
                if (c.dtype == TensorProto::UINT32)
                    ints_from_raw(uint32_t{});
                else
                    ints_from_raw(int64_t{});
            } else {
                expect_count(t.uint64_data(), n, what);
                for (uint64_t v : t.uint64_data())
                    c.i.push_back(static_cast<int64_t>(v));
            }
            break;
        case TensorProto::INT32:
        case TensorProto::INT16:
        case TensorProto::INT8:
        case TensorProto::UINT16:
        case TensorProto::UINT8:
        case TensorProto::BOOL:
            if (raw) {
                switch (c.dtype) {
                    case TensorProto::INT32:
                        ints_from_raw(int32_t{});
                        break;
                    case TensorProto::INT16:
                        ints_from_raw(int16_t{});
                        break;
                    case TensorProto::INT8:
                        ints_from_raw(int8_t{});
                        break;
                    case TensorProto::UINT16:
                        ints_from_raw(uint16_t{});
                        break;
                    default:
                        ints_from_raw(uint8_t{});
                        break;
                }
            } else {
                expect_count(t.int32_data(), n, what);
                c.i.assign(t.int32_data().begin(), t.int32_data().end());
            }
            if (c.dtype == TensorProto::BOOL)
                for (int64_t& v : c.i)
                    v = v != 0;
            break;
        default:
            throw Error(what + " has data type " + type_name(c.dtype) +
                        ", which cardinal does not support (float, double and integers only)");
    }
    return c;
}

// A cardinal weight tensor from a constant (converted to float32).
Tensor to_weight(const Const& c) {
    Tensor t;
    t.shape = Shape(c.dims);
    if (c.is_float()) {
        t.data = c.f;
    } else {
        t.data.reserve(c.i.size());
        for (int64_t v : c.i)
            t.data.push_back(static_cast<float>(v));
    }
    return t;
}

std::vector<int64_t> strides_of(const std::vector<int64_t>& dims) {
    std::vector<int64_t> s(dims.size(), 1);
    for (size_t k = dims.size(); k-- > 1;)
        s[k - 1] = s[k] * dims[k];
    return s;
}

// out[index] = in[base + sum_k index_k * stride_k] over the output's dims: transposes, slices
// and broadcasts are all this.
template <class T>
std::vector<T> gather_strided(const std::vector<T>& in, const std::vector<int64_t>& out_dims,
                              const std::vector<int64_t>& strides, int64_t base) {
    int64_t n = 1;
    for (int64_t d : out_dims)
        n *= d;
    std::vector<T> out(static_cast<size_t>(n));
    if (n == 0) return out;
    const size_t rank = out_dims.size();
    std::vector<int64_t> idx(rank, 0);
    int64_t offset = base;
    for (int64_t k = 0; k < n; ++k) {
        out[static_cast<size_t>(k)] = in[static_cast<size_t>(offset)];
        for (size_t a = rank; a-- > 0;) {
            if (++idx[a] < out_dims[a]) {
                offset += strides[a];
                break;
            }
            offset -= strides[a] * (out_dims[a] - 1);
            idx[a] = 0;
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Layer names from node names

bool is_op_component(const std::string& comp, const std::string& op_type) {
    if (comp == op_type) return true;
    if (comp.size() <= op_type.size() + 1 || comp.compare(0, op_type.size(), op_type) != 0 ||
        comp[op_type.size()] != '_')
        return false;
    return std::all_of(comp.begin() + static_cast<long>(op_type.size()) + 1, comp.end(),
                       [](unsigned char c) { return std::isdigit(c); });
}

struct ScopedName {
    bool torch_style = false;
    std::string scope;   // "/layer1/layer1.0/conv1"
    std::string module;  // "layer1.0.conv1"
    std::string op;      // "Conv", "Relu_1"
};

// PyTorch (>= 1.13) names nodes "/<scope>/<OpType>[_N]", each scope component being the module's
// attribute name, prefixed by its parent's for children of containers ("layer1/layer1.0").
ScopedName parse_scoped(const std::string& name, const std::string& op_type) {
    ScopedName s;
    if (name.size() < 2 || name[0] != '/') return s;
    std::vector<std::string> comps;
    std::stringstream ss(name.substr(1));
    for (std::string c; std::getline(ss, c, '/');)
        comps.push_back(c);
    if (comps.empty() || !is_op_component(comps.back(), op_type)) return s;
    for (size_t i = 0; i + 1 < comps.size(); ++i)
        if (comps[i].empty()) return s;
    s.torch_style = true;
    s.op = comps.back();
    comps.pop_back();
    std::string prev;
    for (const std::string& c : comps) {
        s.scope += "/" + c;
        if (!prev.empty() && c.size() > prev.size() + 1 && c.compare(0, prev.size(), prev) == 0 &&
            c[prev.size()] == '.')
            s.module += c.substr(prev.size());
        else
            s.module += (s.module.empty() ? "" : ".") + c;
        prev = c;
    }
    return s;
}

// The candidate layer names of every node, best first.
std::vector<std::vector<std::string>> candidate_names(const GraphProto& g) {
    std::vector<ScopedName> scoped;
    std::set<std::string> scopes;
    for (const NodeProto& n : g.node()) {
        scoped.push_back(parse_scoped(n.name(), n.op_type()));
        if (scoped.back().torch_style) scopes.insert(scoped.back().scope);
    }
    auto is_leaf = [&](const std::string& scope) {
        auto it = scopes.upper_bound(scope + "/");
        if (it != scopes.end() && it->compare(0, scope.size() + 1, scope + "/") == 0) return false;
        return !scopes.count(scope + "/");
    };
    std::vector<std::vector<std::string>> out;
    for (int k = 0; k < g.node_size(); ++k) {
        const NodeProto& n = g.node(k);
        const ScopedName& s = scoped[static_cast<size_t>(k)];
        std::vector<std::string> c;
        if (s.torch_style) {
            const std::string op = sanitize(lower(s.op));
            const std::string module = sanitize(s.module);
            if (module.empty()) {
                c.push_back(op);
            } else {
                if (is_leaf(s.scope)) c.push_back(module);
                c.push_back(module + "." + op);
            }
        } else {
            // Older exporters name nodes "Conv_12" but parameters "layer1.0.conv1.weight".
            const std::string weight = n.input_size() > 1 ? n.input(1) : "";
            const std::string suffix = ".weight";
            if ((n.op_type() == "Conv" || n.op_type() == "BatchNormalization" ||
                 n.op_type() == "Gemm" || n.op_type() == "MatMul") &&
                weight.size() > suffix.size() &&
                weight.compare(weight.size() - suffix.size(), suffix.size(), suffix) == 0)
                c.push_back(sanitize(weight.substr(0, weight.size() - suffix.size())));
            if (!sanitize(n.name()).empty()) c.push_back(sanitize(n.name()));
        }
        if (c.empty()) {
            c.push_back(sanitize(lower(n.op_type())));
        }
        if (c.back().empty()) c.back() = "node";
        out.push_back(std::move(c));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// The importer

struct Value {
    std::shared_ptr<const Const> c;  // set: a constant
    std::string tensor;              // otherwise: the IR tensor holding it
    Shape shape;
    bool is_const() const { return c != nullptr; }
};

class Importer {
  public:
    Importer(const ModelProto& model, int batch, std::string name)
        : model_(model), g_(model.graph()), batch_(batch), name_(std::move(name)) {}

    Graph run();

  private:
    // Checks.
    void check_opset();
    void check_ops_and_definitions();
    void run_onnx_checker();
    void run_onnx_shape_inference();
    void define_inputs();

    // Conversion.
    void convert(int index);
    void fold(const NodeProto& n);
    void add_layer(const NodeProto& n, Op op, std::vector<std::string> inputs);
    void alias(const NodeProto& n, const Value& v);
    void set_const(const NodeProto& n, Const c, size_t output = 0);

    void conv(const NodeProto& n);
    void batch_norm(const NodeProto& n);
    void clip(const NodeProto& n);
    void add(const NodeProto& n);
    void pool(const NodeProto& n, bool max);
    void pad(const NodeProto& n);
    void flatten_or_reshape(const NodeProto& n);
    void gemm(const NodeProto& n, bool matmul);
    void concat(const NodeProto& n);
    void softmax(const NodeProto& n);

    // Node helpers.
    [[noreturn]] void fail(const NodeProto& n, const std::string& what) const;
    std::string node_label(const NodeProto& n) const;
    bool has_input(const NodeProto& n, int k) const {
        return k < n.input_size() && !n.input(k).empty();
    }
    const Value& input(const NodeProto& n, int k) const;
    const Value& activation(const NodeProto& n, int k) const;
    const Const& constant(const NodeProto& n, int k, const std::string& what) const;
    void expect_rank(const NodeProto& n, const Value& v, size_t rank) const;
    const AttributeProto* attr(const NodeProto& n, const std::string& name,
                               AttributeProto::AttributeType type) const;
    int64_t attr_int(const NodeProto& n, const std::string& name, int64_t def) const;
    float attr_float(const NodeProto& n, const std::string& name, float def) const;
    std::string attr_string(const NodeProto& n, const std::string& name,
                            const std::string& def) const;
    std::optional<std::vector<int64_t>> attr_ints(const NodeProto& n,
                                                  const std::string& name) const;
    std::vector<int64_t> ints_of(const NodeProto& n, const Const& c, const std::string& what) const;
    int64_t axis(const NodeProto& n, int64_t a, size_t rank) const;
    bool output_used(const NodeProto& n, int k) const;

    // Spatial windows.
    struct Window {
        int kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w;
        Padding2D pad;
    };
    Window window(const NodeProto& n, const Shape& x, int64_t kernel_h, int64_t kernel_w) const;

    // Constant folding.
    Const fold_binary(const NodeProto& n, const Const& a, const Const& b) const;
    Const fold_reshape(const NodeProto& n, const Const& data, const Const& shape) const;
    std::vector<int64_t> reshape_target(const NodeProto& n, const std::vector<int64_t>& in,
                                        const Const& shape) const;
    void charge(const NodeProto& n, int64_t elements);

    const ModelProto& model_;
    const GraphProto& g_;
    const int batch_;
    const std::string name_;
    int opset_ = 0;

    Graph graph_;
    std::unordered_map<std::string, Value> values_;
    std::unordered_map<std::string, int> uses_;  // ONNX value name -> readers (+1 if output)
    std::vector<std::vector<std::string>> candidates_;
    std::set<std::string> used_names_;
    std::map<std::string, size_t> dense_of_value_;  // ONNX value -> index of its Dense node
    int current_ = 0;                               // index of the node being converted
    int64_t folded_ = 0;                            // elements created by constant folding
    int64_t budget_ = kFoldingBudget;               // its limit: 4x the initializers, or more
};

std::string Importer::node_label(const NodeProto& n) const {
    std::string label =
        n.name().empty() ? quoted("#" + std::to_string(current_)) : quoted(n.name());
    label += " (";
    label += printable(n.op_type(), 40);
    label += ')';
    return label;
}

void Importer::fail(const NodeProto& n, const std::string& what) const {
    throw Error("node " + node_label(n) + ": " + what);
}

const Value& Importer::input(const NodeProto& n, int k) const {
    if (!has_input(n, k)) fail(n, "input " + std::to_string(k) + " is missing");
    auto it = values_.find(n.input(k));
    if (it == values_.end())
        fail(n, "input '" + printable(n.input(k)) + "' is not defined");  // checked up front
    return it->second;
}

const Value& Importer::activation(const NodeProto& n, int k) const {
    const Value& v = input(n, k);
    if (v.is_const())
        fail(n, "input '" + printable(n.input(k)) +
                    "' is a constant; cardinal needs it to be computed from the network input "
                    "(constant subgraphs are folded only through " +
                    join(kConstantOps, ", ") + ")");
    return v;
}

const Const& Importer::constant(const NodeProto& n, int k, const std::string& what) const {
    const Value& v = input(n, k);
    if (!v.is_const())
        fail(n, "its " + what + " '" + printable(n.input(k)) +
                    "' is computed from the network input; cardinal needs it to be a constant "
                    "(an initializer or a constant subgraph)");
    return *v.c;
}

void Importer::expect_rank(const NodeProto& n, const Value& v, size_t rank) const {
    if (v.shape.rank() != rank)
        fail(n, "expects a rank-" + std::to_string(rank) + " input, got shape " + v.shape.str() +
                    " (rank " + std::to_string(v.shape.rank()) + ")");
}

const AttributeProto* Importer::attr(const NodeProto& n, const std::string& name,
                                     AttributeProto::AttributeType type) const {
    for (const AttributeProto& a : n.attribute()) {
        if (a.name() != name) continue;
        if (a.type() != type)
            fail(n, "attribute '" + name + "' has type " +
                        (AttributeProto::AttributeType_IsValid(a.type())
                             ? AttributeProto::AttributeType_Name(a.type())
                             : std::to_string(a.type())) +
                        ", expected " + AttributeProto::AttributeType_Name(type));
        return &a;
    }
    return nullptr;
}

int64_t Importer::attr_int(const NodeProto& n, const std::string& name, int64_t def) const {
    const AttributeProto* a = attr(n, name, AttributeProto::INT);
    return a ? a->i() : def;
}

float Importer::attr_float(const NodeProto& n, const std::string& name, float def) const {
    const AttributeProto* a = attr(n, name, AttributeProto::FLOAT);
    return a ? a->f() : def;
}

std::string Importer::attr_string(const NodeProto& n, const std::string& name,
                                  const std::string& def) const {
    const AttributeProto* a = attr(n, name, AttributeProto::STRING);
    return a ? a->s() : def;
}

std::optional<std::vector<int64_t>> Importer::attr_ints(const NodeProto& n,
                                                        const std::string& name) const {
    const AttributeProto* a = attr(n, name, AttributeProto::INTS);
    if (!a) return std::nullopt;
    return std::vector<int64_t>(a->ints().begin(), a->ints().end());
}

std::vector<int64_t> Importer::ints_of(const NodeProto& n, const Const& c,
                                       const std::string& what) const {
    if (c.is_float()) fail(n, "its " + what + " must be integers, got " + type_name(c.dtype));
    return c.i;
}

int64_t Importer::axis(const NodeProto& n, int64_t a, size_t rank) const {
    const int64_t r = static_cast<int64_t>(rank);
    if (a < -r || a >= r)
        fail(n, "axis " + std::to_string(a) + " is out of range for rank " + std::to_string(r));
    return a < 0 ? a + r : a;
}

bool Importer::output_used(const NodeProto& n, int k) const {
    if (k >= n.output_size() || n.output(k).empty()) return false;
    auto it = uses_.find(n.output(k));
    return it != uses_.end() && it->second > 0;
}

void Importer::charge(const NodeProto& n, int64_t elements) {
    folded_ += elements;
    if (elements > budget_ || folded_ > budget_)
        fail(n, "constant folding would create more than " + std::to_string(budget_) + " values");
}

// ---------------------------------------------------------------------------------------------
// Checks before conversion

void Importer::check_opset() {
    bool found = false;
    for (const auto& o : model_.opset_import()) {
        if (o.domain().empty() || o.domain() == "ai.onnx") {
            opset_ = static_cast<int>(std::clamp<int64_t>(o.version(), -1, 1 << 20));
            found = true;
        }
    }
    if (!found)
        throw Error(
            "the model imports no version of the standard ONNX operator set (opset_import "
            "has no entry for the default domain)");
    if (opset_ < kMinOpset || opset_ > kMaxOpset)
        throw Error("the model uses ONNX opset " + std::to_string(opset_) +
                    "; cardinal imports opsets " + std::to_string(kMinOpset) + " to " +
                    std::to_string(kMaxOpset) + " (re-export with e.g. opset_version=14)");
}

// Every op is supported and every input is defined before it is read, with clear messages for
// what the ONNX checker would report more obscurely.
void Importer::check_ops_and_definitions() {
    if (g_.node_size() == 0) throw Error("the model's graph has no nodes");
    std::set<std::string> defined, constant;
    for (const TensorProto& t : g_.initializer()) {
        defined.insert(t.name());
        constant.insert(t.name());
    }
    for (const ValueInfoProto& v : g_.input())
        defined.insert(v.name());

    // op type -> node labels, in order of first appearance.
    std::vector<std::pair<std::string, std::vector<std::string>>> unsupported;
    auto report = [&](const NodeProto& n, int k) {
        std::string type = printable(n.op_type(), 60);
        if (!n.domain().empty() && n.domain() != "ai.onnx")
            type = printable(n.domain(), 60) + "::" + type;
        auto it = std::find_if(unsupported.begin(), unsupported.end(),
                               [&](const auto& p) { return p.first == type; });
        if (it == unsupported.end()) {
            unsupported.push_back({type, {}});
            it = unsupported.end() - 1;
        }
        it->second.push_back(
            "'" + printable(n.name().empty() ? "#" + std::to_string(k) : n.name(), 80) + "'");
    };
    std::vector<std::string> undefined;
    for (int k = 0; k < g_.node_size(); ++k) {
        const NodeProto& n = g_.node(k);
        const bool std_domain = n.domain().empty() || n.domain() == "ai.onnx";
        bool all_const = true;
        for (const std::string& in : n.input()) {
            if (in.empty()) continue;
            if (!defined.count(in)) {
                if (undefined.size() < kMaxListedNodes)
                    undefined.push_back(
                        "node " + quoted(n.name().empty() ? "#" + std::to_string(k) : n.name()) +
                        " (" + printable(n.op_type(), 40) + ") reads " + quoted(in));
                else if (undefined.size() == kMaxListedNodes)
                    undefined.push_back("...");
            }
            if (!constant.count(in)) all_const = false;
        }
        const std::string& op = n.op_type();
        bool ok = std_domain && (contains(kLayerOps, op) || contains(kConstantOps, op));
        // Ops cardinal only folds need constant inputs (Shape only needs a known shape).
        if (ok && !contains(kLayerOps, op) && !all_const && op != "Shape") ok = false;
        if (!ok) report(n, k);
        const bool produces_const =
            ok && contains(kConstantOps, op) && (all_const || op == "Shape");
        for (const std::string& out : n.output()) {
            if (out.empty()) continue;
            defined.insert(out);
            if (produces_const) constant.insert(out);
            uses_[out];
        }
        for (const std::string& in : n.input())
            if (!in.empty()) ++uses_[in];
    }
    for (const ValueInfoProto& v : g_.output())
        ++uses_[v.name()];

    if (!unsupported.empty()) {
        std::vector<std::string> parts;
        for (const auto& [type, nodes] : unsupported) {
            if (parts.size() == 2 * kMaxListedNodes) {
                parts.push_back("and " + std::to_string(unsupported.size() - parts.size()) +
                                " more op types");
                break;
            }
            std::vector<std::string> shown(
                nodes.begin(),
                nodes.begin() + static_cast<long>(std::min(nodes.size(), kMaxListedNodes)));
            if (nodes.size() > kMaxListedNodes)
                shown.push_back("and " + std::to_string(nodes.size() - kMaxListedNodes) + " more");
            const bool only_folded = contains(kConstantOps, type) && !contains(kLayerOps, type);
            parts.push_back(type + (only_folded ? " on non-constant inputs" : "") + " (node" +
                            (nodes.size() > 1 ? "s " : " ") + join(shown, ", ") + ")");
        }
        throw Error("the model uses ONNX ops cardinal does not support: " + join(parts, "; ") +
                    ". Supported: " + supported_list());
    }
    if (!undefined.empty())
        throw Error(
            "some node inputs are neither initializers, graph inputs nor outputs of "
            "earlier nodes (a missing initializer, or nodes out of order): " +
            join(undefined, "; "));
    for (const ValueInfoProto& v : g_.output())
        if (!defined.count(v.name()))
            throw Error("the graph output '" + printable(v.name()) + "' is never computed");
}

void Importer::run_onnx_checker() {
    try {
        onnx::checker::check_model(model_);
    } catch (const std::exception& e) {
        throw Error("the ONNX checker rejects the model: " + one_line(e.what()));
    }
}

void Importer::run_onnx_shape_inference() {
    // Shape inference with the batch fixed, strict: a model whose declared shapes and types
    // contradict its ops is refused here rather than mis-imported.
    ModelProto copy = model_;
    for (ValueInfoProto& v : *copy.mutable_graph()->mutable_input()) {
        if (!values_.count(v.name()) || values_.at(v.name()).is_const()) continue;
        auto* shape = v.mutable_type()->mutable_tensor_type()->mutable_shape();
        if (shape->dim_size() > 0) shape->mutable_dim(0)->set_dim_value(batch_);
    }
    try {
        onnx::ShapeInferenceOptions options(/*check_type=*/true, /*strict_mode=*/1,
                                            /*data_prop=*/false);
        onnx::shape_inference::InferShapes(copy, onnx::OpSchemaRegistry::Instance(), options);
    } catch (const std::exception& e) {
        throw Error("ONNX shape inference rejects the model: " + one_line(e.what()));
    }
    // The declared output shape must agree with what cardinal computes.
    const ValueInfoProto& out = copy.graph().output(0);
    const Value& v = values_.at(out.name());
    if (!out.type().tensor_type().has_shape()) return;
    const auto& dims = out.type().tensor_type().shape().dim();
    bool mismatch = dims.size() != static_cast<int>(v.shape.rank());
    for (int k = 0; !mismatch && k < dims.size(); ++k)
        if (dims[k].has_dim_value() && dims[k].dim_value() != v.shape[static_cast<size_t>(k)])
            mismatch = true;
    if (mismatch) {
        std::vector<std::string> d;
        for (const auto& dim : dims)
            d.push_back(dim.has_dim_value() ? std::to_string(dim.dim_value())
                                            : printable(dim.dim_param(), 20));
        throw Error("the model declares its output '" + printable(out.name()) + "' as " +
                    (d.empty() ? "a scalar" : join(d, "x")) + ", but its layers compute " +
                    v.shape.str());
    }
}

void Importer::define_inputs() {
    std::set<std::string> initializers;
    for (int k = 0; k < g_.initializer_size(); ++k) {
        const TensorProto& t = g_.initializer(k);
        const std::string what = "initializer '" + printable(t.name()) + "'";
        if (t.name().empty()) throw Error("an initializer has no name");
        if (!initializers.insert(t.name()).second)
            throw Error("two initializers are named '" + printable(t.name()) + "'");
        values_[t.name()].c = std::make_shared<const Const>(read_tensor(t, what));
        budget_ += 4 * values_[t.name()].c->size();
    }
    std::vector<const ValueInfoProto*> data;
    for (const ValueInfoProto& v : g_.input())
        if (!initializers.count(v.name())) data.push_back(&v);
    if (data.size() != 1) {
        std::vector<std::string> names;
        for (const ValueInfoProto* v : data)
            names.push_back(quoted(v->name()));
        throw Error(data.empty()
                        ? std::string("the graph has no input without an initializer: cardinal "
                                      "needs one NCHW image input")
                        : "the graph has " + std::to_string(data.size()) +
                              " inputs without initializers (" + join(names, ", ") +
                              "); cardinal needs exactly one, the NCHW image input (are "
                              "initializers missing for the others?)");
    }
    const ValueInfoProto& in = *data[0];
    const std::string label = "the input '" + printable(in.name()) + "'";
    if (!in.type().has_tensor_type())
        throw Error(label + " is not a tensor; cardinal needs a float NCHW tensor");
    const auto& tt = in.type().tensor_type();
    if (tt.elem_type() != TensorProto::FLOAT)
        throw Error(label + " has element type " + type_name(tt.elem_type()) +
                    "; cardinal needs float (FLOAT32)");
    if (!tt.has_shape())
        throw Error(label + " has no declared shape; cardinal needs a rank-4 NCHW shape");
    const auto& dims = tt.shape().dim();
    if (dims.size() != 4) {
        std::vector<std::string> d;
        for (const auto& dim : dims)
            d.push_back(dim.has_dim_value() ? std::to_string(dim.dim_value())
                                            : printable(dim.dim_param(), 20));
        throw Error(label + " has rank " + std::to_string(dims.size()) + " (shape " +
                    (d.empty() ? "a scalar" : join(d, "x")) +
                    "); cardinal needs an NCHW image input of rank 4");
    }
    Shape shape;
    static const char* const kAxes[] = {"batch", "channels", "height", "width"};
    for (int k = 0; k < 4; ++k) {
        const auto& dim = dims[k];
        if (!dim.has_dim_value()) {
            if (k == 0) {
                shape.dims.push_back(batch_);
                continue;
            }
            throw Error(label + " has a symbolic " + kAxes[k] + " ('" +
                        printable(dim.dim_param(), 40) +
                        "'); cardinal needs fixed channels, height and width (export with a "
                        "fixed input size)");
        }
        const int64_t d = dim.dim_value();
        if (d < 1 || d > kMaxDimension)
            throw Error(label + " has " + kAxes[k] + " " + std::to_string(d) +
                        ", outside the range cardinal accepts (1 to " +
                        std::to_string(kMaxDimension) + ")");
        if (k == 0 && d != batch_)
            throw Error(label + " has a fixed batch size of " + std::to_string(d) + ", but batch " +
                        std::to_string(batch_) + " was asked for: use batch " + std::to_string(d) +
                        ", or export the model with a symbolic batch dimension "
                        "(torch.onnx.export(..., dynamic_axes={'input': {0: 'batch'}}))");
        shape.dims.push_back(d);
    }
    if (shape.numel() > kMaxActivationElements)
        throw Error(label + " has shape " + shape.str() + ", too large for cardinal");
    graph_.input = sanitize(in.name());
    if (graph_.input.empty()) graph_.input = "input";
    used_names_.insert(graph_.input);
    graph_.input_shape = shape;
    Value v;
    v.tensor = graph_.input;
    v.shape = shape;
    values_[in.name()] = v;
}

// ---------------------------------------------------------------------------------------------
// Conversion

void Importer::add_layer(const NodeProto& n, Op op, std::vector<std::string> inputs) {
    std::string name;
    for (const std::string& c : candidates_[static_cast<size_t>(current_)])
        if (!used_names_.count(c)) {
            name = c;
            break;
        }
    if (name.empty()) {
        const std::string& base = candidates_[static_cast<size_t>(current_)].front();
        for (int k = 1; name.empty(); ++k)
            if (!used_names_.count(base + "_" + std::to_string(k)))
                name = base + "_" + std::to_string(k);
    }
    used_names_.insert(name);
    Node node{name, std::move(op), std::move(inputs), name};
    std::vector<Shape> in;
    for (const std::string& t : node.inputs)
        in.push_back(graph_.shapes.at(t));
    Shape out;
    try {
        out = infer_node_shape(node, in);
    } catch (const Error& e) {
        fail(n, e.what());
    }
    for (int64_t d : out.dims)
        if (d < 1 || d > kMaxDimension)
            fail(n, "its output shape " + out.str() + " has a dimension cardinal cannot handle");
    if (checked_numel(out.dims, std::numeric_limits<int64_t>::max(), "the output") >
        kMaxActivationElements)
        fail(n, "its output " + out.str() + " is too large");
    graph_.shapes[name] = out;
    if (n.output_size() < 1 || n.output(0).empty()) fail(n, "has no output");
    if (std::holds_alternative<Dense>(node.op)) dense_of_value_[n.output(0)] = graph_.nodes.size();
    graph_.nodes.push_back(std::move(node));
    Value v;
    v.tensor = name;
    v.shape = out;
    values_[n.output(0)] = v;
}

void Importer::alias(const NodeProto& n, const Value& v) {
    if (n.output_size() < 1 || n.output(0).empty()) fail(n, "has no output");
    Value copy = v;  // v may live in values_, which the assignment can rehash
    values_[n.output(0)] = std::move(copy);
}

void Importer::set_const(const NodeProto& n, Const c, size_t output) {
    if (static_cast<int>(output) >= n.output_size()) fail(n, "has no output");
    if (c.size() != checked_numel(c.dims, kMaxConstantElements, "the result of " + node_label(n)))
        fail(n, "internal error: folded value size does not match its shape");
    values_[n.output(static_cast<int>(output))].c = std::make_shared<const Const>(std::move(c));
}

void Importer::convert(int index) {
    current_ = index;
    const NodeProto& n = g_.node(index);
    const std::string& op = n.op_type();

    // Constant folding: every input constant (Shape only needs a known shape).
    bool all_const = true;
    for (int k = 0; k < n.input_size(); ++k)
        if (has_input(n, k) && !input(n, k).is_const()) all_const = false;
    if (op == "Constant" || (contains(kConstantOps, op) && (all_const || op == "Shape"))) {
        fold(n);
        return;
    }
    if (all_const)
        fail(n, "computes on constants only, and cardinal folds constants only through " +
                    join(kConstantOps, ", "));

    if (op == "Conv") return conv(n);
    if (op == "BatchNormalization") return batch_norm(n);
    if (op == "Relu") return add_layer(n, Relu{}, {activation(n, 0).tensor});
    if (op == "Clip") return clip(n);
    if (op == "Add") return add(n);
    if (op == "MaxPool") return pool(n, true);
    if (op == "AveragePool") return pool(n, false);
    if (op == "Pad") return pad(n);
    if (op == "GlobalAveragePool") {
        const Value& x = activation(n, 0);
        expect_rank(n, x, 4);
        return add_layer(n, GlobalAveragePool{}, {x.tensor});
    }
    if (op == "Flatten" || op == "Reshape") return flatten_or_reshape(n);
    if (op == "Gemm") return gemm(n, false);
    if (op == "MatMul") return gemm(n, true);
    if (op == "Concat") return concat(n);
    if (op == "Softmax") return softmax(n);
    if (op == "Identity") return alias(n, activation(n, 0));
    if (op == "Dropout") {
        if (attr_int(n, "training_mode", 0) != 0) fail(n, "training mode is not supported");
        if (has_input(n, 2)) {
            const Const& t = constant(n, 2, "training_mode");
            if (t.size() != 1 || t.at(0) != 0) fail(n, "training mode is not supported");
        }
        if (output_used(n, 1)) fail(n, "its mask output is used, which cardinal does not support");
        return alias(n, activation(n, 0));
    }
    fail(n, "is not supported");  // check_ops_and_definitions() lets nothing else through
}

// The window attributes of Conv and the pools (2-D only), with auto_pad resolved.
Importer::Window Importer::window(const NodeProto& n, const Shape& x, int64_t kernel_h,
                                  int64_t kernel_w) const {
    auto list = [&](const std::string& name, size_t count, int64_t def, int64_t lo) {
        std::vector<int64_t> v = attr_ints(n, name).value_or(std::vector<int64_t>(count, def));
        if (v.size() != count)
            fail(n, "attribute '" + name + "' has " + std::to_string(v.size()) +
                        " values, expected " + std::to_string(count) +
                        " (cardinal supports 2-D windows only)");
        for (int64_t e : v)
            if (e < lo || e > kMaxWindowAttribute)
                fail(n, "attribute '" + name + "' holds " + std::to_string(e) +
                            ", outside the range cardinal accepts (" + std::to_string(lo) + " to " +
                            std::to_string(kMaxWindowAttribute) + ")");
        return v;
    };
    if (kernel_h < 1 || kernel_w < 1 || kernel_h > kMaxDimension || kernel_w > kMaxDimension)
        fail(n, "has an invalid kernel size");
    Window w{};
    w.kernel_h = static_cast<int>(kernel_h);
    w.kernel_w = static_cast<int>(kernel_w);
    const auto strides = list("strides", 2, 1, 1);
    const auto dilations = list("dilations", 2, 1, 1);
    w.stride_h = static_cast<int>(strides[0]);
    w.stride_w = static_cast<int>(strides[1]);
    w.dilation_h = static_cast<int>(dilations[0]);
    w.dilation_w = static_cast<int>(dilations[1]);
    const std::string auto_pad = attr_string(n, "auto_pad", "NOTSET");
    if (auto_pad == "NOTSET") {
        const auto pads = list("pads", 4, 0, 0);
        w.pad = {static_cast<int>(pads[0]), static_cast<int>(pads[1]), static_cast<int>(pads[2]),
                 static_cast<int>(pads[3])};
    } else if (auto_pad == "VALID") {
        w.pad = {};
    } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
        // Output = ceil(input / stride); the extra padding goes at the end (UPPER) or the
        // beginning (LOWER).
        auto same = [&](int64_t in, int64_t k, int64_t s, int64_t d, int& before, int& after) {
            const int64_t out = (in + s - 1) / s;
            const int64_t total = std::max<int64_t>(0, (out - 1) * s + (k - 1) * d + 1 - in);
            const int64_t small = total / 2, large = total - small;
            before = static_cast<int>(auto_pad == "SAME_UPPER" ? small : large);
            after = static_cast<int>(auto_pad == "SAME_UPPER" ? large : small);
        };
        same(x[2], kernel_h, w.stride_h, w.dilation_h, w.pad.top, w.pad.bottom);
        same(x[3], kernel_w, w.stride_w, w.dilation_w, w.pad.left, w.pad.right);
    } else {
        fail(n, "auto_pad '" + printable(auto_pad, 30) + "' is not one of NOTSET, VALID, " +
                    "SAME_UPPER, SAME_LOWER");
    }
    return w;
}

void Importer::conv(const NodeProto& n) {
    const Value& x = activation(n, 0);
    expect_rank(n, x, 4);
    const Const& w = constant(n, 1, "weight");
    if (w.dims.size() != 4)
        fail(n, "its weight has shape " + dims_str(w.dims) +
                    "; cardinal supports 2-D convolutions only (a rank-4 OIHW weight)");
    const int64_t group = attr_int(n, "group", 1);
    const int64_t cin = x.shape[1], cout = w.dims[0];
    if (group < 1 || group > cin)
        fail(n, "group " + std::to_string(group) + " is invalid for an input with " +
                    std::to_string(cin) + " channels");
    if (cin % group != 0 || w.dims[1] * group != cin || cout % group != 0 || cout == 0)
        fail(n, "its weight shape " + dims_str(w.dims) + " contradicts group=" +
                    std::to_string(group) + " for an input with " + std::to_string(cin) +
                    " channels: the weight must be [out_channels, " + std::to_string(cin) +
                    " / group, kh, kw] with out_channels divisible by the group (" +
                    (cin % group == 0 ? "[k*" + std::to_string(group) + ", " +
                                            std::to_string(cin / group) + ", kh, kw]"
                                      : "and the input channels are not divisible by it") +
                    ")");
    if (auto ks = attr_ints(n, "kernel_shape"))
        if (*ks != std::vector<int64_t>{w.dims[2], w.dims[3]})
            fail(n, "kernel_shape " + dims_str(*ks) + " contradicts its weight's shape " +
                        dims_str(w.dims));
    const Window win = window(n, x.shape, w.dims[2], w.dims[3]);
    Conv2D c;
    c.out_channels = static_cast<int>(cout);
    c.kernel_h = win.kernel_h;
    c.kernel_w = win.kernel_w;
    c.stride_h = win.stride_h;
    c.stride_w = win.stride_w;
    c.dilation_h = win.dilation_h;
    c.dilation_w = win.dilation_w;
    c.pad = win.pad;
    c.groups = static_cast<int>(group);
    c.weight = to_weight(w);
    if (has_input(n, 2)) {
        const Const& b = constant(n, 2, "bias");
        if (b.size() != cout || b.dims.size() != 1)
            fail(n,
                 "its bias has shape " + dims_str(b.dims) + ", expected " + std::to_string(cout));
        c.bias = to_weight(b);
    }
    add_layer(n, std::move(c), {x.tensor});
}

void Importer::batch_norm(const NodeProto& n) {
    const Value& x = activation(n, 0);
    if (x.shape.rank() != 4 && x.shape.rank() != 2)
        fail(n, "expects an NCHW or NC input, got shape " + x.shape.str());
    if (attr_int(n, "training_mode", 0) != 0)
        fail(n, "training mode is not supported (export the model in eval mode)");
    if (attr_int(n, "spatial", 1) != 1) fail(n, "spatial=0 is not supported");
    for (int k = 1; k < n.output_size(); ++k)
        if (output_used(n, k))
            fail(n,
                 "its training outputs (running statistics) are used; cardinal imports "
                 "inference BatchNorm only");
    const int64_t ch = x.shape[1];
    static const char* const kNames[] = {"", "scale", "bias", "mean", "var"};
    Tensor t[5];
    for (int k = 1; k <= 4; ++k) {
        const Const& c = constant(n, k, kNames[k]);
        if (c.size() != ch || c.dims.size() != 1)
            fail(n, std::string("its ") + kNames[k] + " has shape " + dims_str(c.dims) +
                        ", expected " + std::to_string(ch) + " (the input's channels)");
        t[k] = to_weight(c);
    }
    BatchNorm b;
    b.gamma = std::move(t[1]);
    b.beta = std::move(t[2]);
    b.mean = std::move(t[3]);
    b.var = std::move(t[4]);
    b.epsilon = attr_float(n, "epsilon", 1e-5f);
    if (!(b.epsilon >= 0)) fail(n, "epsilon must not be negative");
    add_layer(n, std::move(b), {x.tensor});
}

void Importer::clip(const NodeProto& n) {
    const Value& x = activation(n, 0);
    constexpr float kInf = std::numeric_limits<float>::infinity();
    float lo = -kInf, hi = kInf;
    if (opset_ < 11) {
        lo = attr_float(n, "min", -kInf);
        hi = attr_float(n, "max", kInf);
    } else {
        auto bound = [&](int k, const char* what, float def) {
            if (!has_input(n, k)) return def;
            const Const& c = constant(n, k, what);
            if (c.size() != 1) fail(n, std::string("its ") + what + " must be a scalar");
            return c.as_float(0);
        };
        lo = bound(1, "min", -kInf);
        hi = bound(2, "max", kInf);
    }
    // ONNX Clip-6's defaults are +-FLT_MAX: unbounded for every finite input.
    if (lo <= -std::numeric_limits<float>::max()) lo = -kInf;
    if (hi >= std::numeric_limits<float>::max()) hi = kInf;
    if (std::isnan(lo) || std::isnan(hi) || lo > hi)
        fail(n, "min " + std::to_string(lo) + " is not at most max " + std::to_string(hi));
    if (lo == 0 && hi == kInf) return add_layer(n, Relu{}, {x.tensor});
    // A missing bound is +-FLT_MAX rather than infinity (the same for every finite input):
    // generated kernels take the bounds as numeric parameters.
    lo = std::max(lo, std::numeric_limits<float>::lowest());
    hi = std::min(hi, std::numeric_limits<float>::max());
    add_layer(n, Clip{lo, hi}, {x.tensor});
}

void Importer::add(const NodeProto& n) {
    const bool c0 = input(n, 0).is_const(), c1 = input(n, 1).is_const();
    if (!c0 && !c1) {
        const Value& a = activation(n, 0);
        const Value& b = activation(n, 1);
        if (a.shape != b.shape)
            fail(n, "adds tensors of shapes " + a.shape.str() + " and " + b.shape.str() +
                        "; cardinal adds tensors of the same shape only (no broadcasting)");
        return add_layer(n, Add{}, {a.tensor, b.tensor});
    }
    // An activation plus a constant: a bias.
    const Value& x = activation(n, c0 ? 1 : 0);
    const Const& c = constant(n, c0 ? 0 : 1, "addend");
    const int64_t ch = x.shape[1];
    auto bias_values = [&](size_t rank) -> std::optional<std::vector<float>> {
        // Broadcastable to [1, C, 1, 1] (rank 4) or [1, C] (rank 2), C or 1 values.
        if (c.dims.size() > rank) return std::nullopt;
        const size_t lead = rank - c.dims.size();
        for (size_t k = 0; k < c.dims.size(); ++k)
            if (c.dims[k] != 1 && !(lead + k == 1 && c.dims[k] == ch)) return std::nullopt;
        std::vector<float> v(static_cast<size_t>(ch));
        for (int64_t k = 0; k < ch; ++k)
            v[static_cast<size_t>(k)] = c.as_float(c.size() == 1 ? 0 : size_t(k));
        return v;
    };
    if (x.shape.rank() == 2) {
        auto v = bias_values(2);
        const std::string& xname = n.input(c0 ? 1 : 0);
        auto it = dense_of_value_.find(xname);
        if (v && it != dense_of_value_.end() && uses_[xname] == 1) {
            // MatMul + Add: fold into the dense layer's bias.
            Dense& d = std::get<Dense>(graph_.nodes[it->second].op);
            if (!d.bias) d.bias = Tensor(Shape{ch}, 0.0f);
            for (int64_t k = 0; k < ch; ++k)
                d.bias->data[size_t(k)] += (*v)[size_t(k)];
            return alias(n, x);
        }
        fail(n, "adds a constant of shape " + dims_str(c.dims) + " to a " + x.shape.str() +
                    " tensor; cardinal supports this only as the bias of a MatMul/Gemm");
    }
    if (x.shape.rank() == 4) {
        if (auto v = bias_values(4)) {
            // A per-channel shift: a 1x1 depthwise convolution with unit weights.
            Conv2D conv;
            conv.out_channels = static_cast<int>(ch);
            conv.groups = static_cast<int>(ch);
            conv.weight = Tensor(Shape{ch, 1, 1, 1}, 1.0f);
            conv.bias = Tensor(Shape{ch}, std::move(*v));
            return add_layer(n, std::move(conv), {x.tensor});
        }
    }
    fail(n, "adds a constant of shape " + dims_str(c.dims) + " to a " + x.shape.str() +
                " tensor; cardinal supports per-channel constants only");
}

void Importer::pool(const NodeProto& n, bool max) {
    const Value& x = activation(n, 0);
    expect_rank(n, x, 4);
    const auto ks = attr_ints(n, "kernel_shape");
    if (!ks || ks->size() != 2)
        fail(n, "needs a 2-D kernel_shape (cardinal supports 2-D pooling only)");
    if (output_used(n, 1)) fail(n, "its Indices output is used, which cardinal does not support");
    if (attr_int(n, "storage_order", 0) != 0) fail(n, "storage_order=1 is not supported");
    const Window w = window(n, x.shape, (*ks)[0], (*ks)[1]);
    if (w.dilation_h != 1 || w.dilation_w != 1) fail(n, "dilated pooling is not supported");
    PoolWindow p;
    p.kernel_h = w.kernel_h;
    p.kernel_w = w.kernel_w;
    p.stride_h = w.stride_h;
    p.stride_w = w.stride_w;
    p.pad = w.pad;
    p.ceil_mode = attr_int(n, "ceil_mode", 0) != 0;
    if (max) return add_layer(n, MaxPool{p}, {x.tensor});
    add_layer(n, AveragePool{p, attr_int(n, "count_include_pad", 0) != 0}, {x.tensor});
}

void Importer::pad(const NodeProto& n) {
    const Value& x = activation(n, 0);
    expect_rank(n, x, 4);
    const std::string mode = attr_string(n, "mode", "constant");
    if (mode != "constant")
        fail(n, "mode '" + printable(mode, 30) + "' is not supported (constant padding only)");
    std::vector<int64_t> pads;
    float value = 0.0f;
    if (opset_ < 11) {
        pads = attr_ints(n, "pads").value_or(std::vector<int64_t>{});
        value = attr_float(n, "value", 0.0f);
    } else {
        pads = ints_of(n, constant(n, 1, "pads"), "pads");
        if (has_input(n, 2)) {
            const Const& v = constant(n, 2, "constant_value");
            if (v.size() != 1) fail(n, "its constant_value must be a scalar");
            value = v.as_float(0);
        }
        if (has_input(n, 3)) fail(n, "the axes input is not supported");
    }
    if (pads.size() != 8)
        fail(n, "has " + std::to_string(pads.size()) + " pads; expected 8 for an NCHW input");
    for (int64_t p : pads)
        if (p < 0 || p > kMaxWindowAttribute)
            fail(n, "pads " + dims_str(pads) + " are not supported (no cropping, at most " +
                        std::to_string(kMaxWindowAttribute) + ")");
    if (pads[0] || pads[1] || pads[4] || pads[5])
        fail(n, "pads the batch or channel axis; cardinal pads height and width only");
    Pad p;
    p.pad = {static_cast<int>(pads[2]), static_cast<int>(pads[3]), static_cast<int>(pads[6]),
             static_cast<int>(pads[7])};
    p.value = value;
    if (!p.pad.any()) return alias(n, x);
    add_layer(n, p, {x.tensor});
}

std::vector<int64_t> Importer::reshape_target(const NodeProto& n, const std::vector<int64_t>& in,
                                              const Const& shape) const {
    const std::vector<int64_t> s = ints_of(n, shape, "shape");
    if (shape.dims.size() != 1) fail(n, "its shape must be a 1-D tensor");
    const bool allowzero = attr_int(n, "allowzero", 0) != 0;
    int64_t total = 1;
    for (int64_t d : in)
        total *= d;
    std::vector<int64_t> out;
    int infer = -1;
    int64_t known = 1;
    for (size_t k = 0; k < s.size(); ++k) {
        int64_t d = s[k];
        if (d == 0 && !allowzero) {
            if (k >= in.size()) fail(n, "its shape copies a dimension the input does not have");
            d = in[k];
        }
        if (d == -1) {
            if (infer >= 0) fail(n, "its shape has more than one -1");
            infer = static_cast<int>(k);
            out.push_back(1);
            continue;
        }
        if (d < 0 || d > kMaxDimension)
            fail(n, "its shape " + dims_str(s) + " has an invalid dimension");
        if (d != 0 && known > kMaxConstantElements / d) fail(n, "its shape is too large");
        known *= d;
        out.push_back(d);
    }
    if (infer >= 0) {
        if (known == 0 || total % known != 0)
            fail(n, "cannot reshape " + dims_str(in) + " to " + dims_str(s));
        out[static_cast<size_t>(infer)] = total / known;
    } else if (known != total) {
        fail(n, "cannot reshape " + dims_str(in) + " (" + std::to_string(total) + " values) to " +
                    dims_str(out));
    }
    return out;
}

void Importer::flatten_or_reshape(const NodeProto& n) {
    const Value& x = activation(n, 0);
    std::vector<int64_t> target;
    if (n.op_type() == "Flatten") {
        const int64_t a =
            axis(n, attr_int(n, "axis", 1), x.shape.rank() + 1);  // axis may equal rank
        int64_t outer = 1, inner = 1;
        for (size_t k = 0; k < x.shape.rank(); ++k)
            (static_cast<int64_t>(k) < a ? outer : inner) *= x.shape[k];
        target = {outer, inner};
    } else {
        target = reshape_target(n, x.shape.dims, constant(n, 1, "shape"));
    }
    if (target == x.shape.dims) return alias(n, x);
    if (target.size() == 2 && target[0] == x.shape[0] && x.shape.rank() == 4)
        return add_layer(n, Flatten{}, {x.tensor});
    fail(n, "reshapes " + x.shape.str() + " to " + dims_str(target) +
                "; cardinal supports only flattening NCHW to N x (C*H*W)");
}

void Importer::gemm(const NodeProto& n, bool matmul) {
    const Value& a = activation(n, 0);
    if (a.shape.rank() != 2)
        fail(n, "expects a rank-2 input (batch x features), got " + a.shape.str() +
                    (matmul ? "; cardinal supports MatMul only as a fully connected layer" : ""));
    const Const& b = constant(n, 1, "weight (B)");
    if (b.dims.size() != 2) fail(n, "its weight has shape " + dims_str(b.dims) + "; expected 2-D");
    bool trans_b = false;
    float alpha = 1, beta = 1;
    if (!matmul) {
        if (attr_int(n, "transA", 0) != 0) fail(n, "transA=1 is not supported");
        trans_b = attr_int(n, "transB", 0) != 0;
        alpha = attr_float(n, "alpha", 1.0f);
        beta = attr_float(n, "beta", 1.0f);
    }
    // Dense weights are [out, in]: B^T, or B itself with transB.
    const int64_t in = trans_b ? b.dims[1] : b.dims[0], out = trans_b ? b.dims[0] : b.dims[1];
    if (in != a.shape[1])
        fail(n, "its weight has shape " + dims_str(b.dims) + (trans_b ? " (transposed)" : "") +
                    ", which does not match the " + std::to_string(a.shape[1]) + " input features");
    Dense d;
    d.out_features = static_cast<int>(out);
    d.weight = Tensor(Shape{out, in});
    const Tensor bw = to_weight(b);
    for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i)
            d.weight.data[size_t(o * in + i)] =
                alpha * bw.data[size_t(trans_b ? o * in + i : i * out + o)];
    if (!matmul && has_input(n, 2)) {
        const Const& c = constant(n, 2, "bias (C)");
        // C broadcasts to [batch, out]: cardinal takes one bias per output.
        const bool scalar = c.size() == 1;
        bool ok = scalar || c.size() == out;
        if (ok && !scalar && !(c.dims.size() == 1 || (c.dims.size() == 2 && c.dims[0] == 1)))
            ok = false;
        if (!ok)
            fail(n, "its bias C has shape " + dims_str(c.dims) + "; cardinal supports a bias of " +
                        std::to_string(out) + " values (or one)");
        d.bias = Tensor(Shape{out});
        for (int64_t o = 0; o < out; ++o)
            d.bias->data[size_t(o)] = beta * c.as_float(scalar ? 0 : size_t(o));
    }
    add_layer(n, std::move(d), {a.tensor});
}

void Importer::concat(const NodeProto& n) {
    const AttributeProto* a = attr(n, "axis", AttributeProto::INT);
    if (!a) fail(n, "has no axis attribute");
    std::vector<std::string> inputs;
    size_t rank = 0;
    for (int k = 0; k < n.input_size(); ++k) {
        const Value& v = activation(n, k);
        rank = v.shape.rank();
        inputs.push_back(v.tensor);
    }
    if (inputs.empty()) fail(n, "has no inputs");
    if (axis(n, a->i(), rank) != 1 || rank != 4)
        fail(n, "concatenates along axis " + std::to_string(a->i()) + " of rank-" +
                    std::to_string(rank) + " tensors; cardinal concatenates NCHW channels only");
    if (inputs.size() == 1) return alias(n, activation(n, 0));
    add_layer(n, Concat{}, std::move(inputs));
}

void Importer::softmax(const NodeProto& n) {
    const Value& x = activation(n, 0);
    const int64_t a = axis(n, attr_int(n, "axis", opset_ >= 13 ? -1 : 1), x.shape.rank());
    if (x.shape.rank() != 2 || a != 1)
        fail(n, "is over axis " + std::to_string(a) + " of a " + x.shape.str() +
                    " tensor; cardinal supports softmax over the features of an N x C tensor");
    add_layer(n, Softmax{}, {x.tensor});
}

// ---------------------------------------------------------------------------------------------
// Constant folding

Const Importer::fold_binary(const NodeProto& n, const Const& a, const Const& b) const {
    const std::string& op = n.op_type();
    // Numpy broadcasting.
    const size_t rank = std::max(a.dims.size(), b.dims.size());
    std::vector<int64_t> out(rank), sa(rank, 0), sb(rank, 0);
    const auto st_a = strides_of(a.dims), st_b = strides_of(b.dims);
    for (size_t k = 0; k < rank; ++k) {
        const int64_t ka = static_cast<int64_t>(k + a.dims.size()) - static_cast<int64_t>(rank);
        const int64_t kb = static_cast<int64_t>(k + b.dims.size()) - static_cast<int64_t>(rank);
        const int64_t da = ka >= 0 ? a.dims[size_t(ka)] : 1;
        const int64_t db = kb >= 0 ? b.dims[size_t(kb)] : 1;
        if (da != db && da != 1 && db != 1)
            fail(n, "cannot broadcast " + dims_str(a.dims) + " with " + dims_str(b.dims));
        out[k] = da == 1 ? db : da;
        if (ka >= 0 && da != 1) sa[k] = st_a[size_t(ka)];
        if (kb >= 0 && db != 1) sb[k] = st_b[size_t(kb)];
    }
    checked_numel(out, budget_, "the result of node " + node_label(n));
    Const c;
    c.dims = out;
    if (a.is_float() != b.is_float())
        fail(n, "mixes " + type_name(a.dtype) + " and " + type_name(b.dtype));
    c.dtype = a.dtype;
    if (a.is_float()) {
        const auto x = gather_strided(a.f, out, sa, 0), y = gather_strided(b.f, out, sb, 0);
        c.f.resize(x.size());
        for (size_t k = 0; k < x.size(); ++k)
            c.f[k] = op == "Add"   ? x[k] + y[k]
                     : op == "Sub" ? x[k] - y[k]
                     : op == "Mul" ? x[k] * y[k]
                                   : x[k] / y[k];
    } else {
        const auto x = gather_strided(a.i, out, sa, 0), y = gather_strided(b.i, out, sb, 0);
        c.i.resize(x.size());
        for (size_t k = 0; k < x.size(); ++k) {
            // Wrapping arithmetic: no undefined behaviour on overflow.
            const uint64_t ux = static_cast<uint64_t>(x[k]), uy = static_cast<uint64_t>(y[k]);
            if (op == "Add") {
                c.i[k] = static_cast<int64_t>(ux + uy);
            } else if (op == "Sub") {
                c.i[k] = static_cast<int64_t>(ux - uy);
            } else if (op == "Mul") {
                c.i[k] = static_cast<int64_t>(ux * uy);
            } else {
                if (y[k] == 0) fail(n, "divides an integer by zero");
                if (y[k] == -1)
                    c.i[k] = static_cast<int64_t>(0 - ux);
                else
                    c.i[k] = x[k] / y[k];
            }
        }
    }
    return c;
}

Const Importer::fold_reshape(const NodeProto& n, const Const& data, const Const& shape) const {
    Const c = data;
    c.dims = reshape_target(n, data.dims, shape);
    return c;
}

void Importer::fold(const NodeProto& n) {
    const std::string& op = n.op_type();
    auto in = [&](int k) -> const Const& { return constant(n, k, "input"); };

    if (op == "Constant") {
        Const c;
        int count = 0;
        for (const AttributeProto& a : n.attribute()) {
            ++count;
            if (a.name() == "value" && a.type() == AttributeProto::TENSOR) {
                c = read_tensor(a.t(), "the value of node " + node_label(n));
            } else if (a.name() == "value_float" && a.type() == AttributeProto::FLOAT) {
                c.dtype = TensorProto::FLOAT;
                c.f = {a.f()};
            } else if (a.name() == "value_floats" && a.type() == AttributeProto::FLOATS) {
                c.dtype = TensorProto::FLOAT;
                c.f.assign(a.floats().begin(), a.floats().end());
                c.dims = {static_cast<int64_t>(c.f.size())};
            } else if (a.name() == "value_int" && a.type() == AttributeProto::INT) {
                c.dtype = TensorProto::INT64;
                c.i = {a.i()};
            } else if (a.name() == "value_ints" && a.type() == AttributeProto::INTS) {
                c.dtype = TensorProto::INT64;
                c.i.assign(a.ints().begin(), a.ints().end());
                c.dims = {static_cast<int64_t>(c.i.size())};
            } else {
                fail(n, "attribute '" + printable(a.name(), 40) +
                            "' is not supported (numeric constants only)");
            }
        }
        if (count != 1) fail(n, "needs exactly one value attribute");
        charge(n, c.size());
        return set_const(n, std::move(c));
    }
    if (op == "Identity" || op == "Dropout") {
        if (op == "Dropout" && output_used(n, 1))
            fail(n, "its mask output is used, which cardinal does not support");
        Value v = input(n, 0);
        return alias(n, v);
    }
    if (op == "Shape") {
        const Value& v = input(n, 0);
        std::vector<int64_t> dims = v.is_const() ? v.c->dims : v.shape.dims;
        const int64_t r = static_cast<int64_t>(dims.size());
        int64_t start = attr_int(n, "start", 0), end = attr_int(n, "end", r);
        if (start < 0) start += r;
        if (end < 0) end += r;
        start = std::clamp<int64_t>(start, 0, r);
        end = std::clamp<int64_t>(end, 0, r);
        Const c;
        c.dtype = TensorProto::INT64;
        if (start < end) c.i.assign(dims.begin() + start, dims.begin() + end);
        c.dims = {static_cast<int64_t>(c.i.size())};
        charge(n, c.size());
        return set_const(n, std::move(c));
    }
    if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
        Const c = fold_binary(n, in(0), in(1));
        charge(n, c.size());
        return set_const(n, std::move(c));
    }
    if (op == "Reshape") {
        Const c = fold_reshape(n, in(0), in(1));
        charge(n, c.size());
        return set_const(n, std::move(c));
    }
    if (op == "Flatten") {
        Const c = in(0);
        const int64_t a = axis(n, attr_int(n, "axis", 1), c.dims.size() + 1);
        int64_t outer = 1, inner = 1;
        for (size_t k = 0; k < c.dims.size(); ++k)
            (static_cast<int64_t>(k) < a ? outer : inner) *= c.dims[k];
        c.dims = {outer, inner};
        charge(n, c.size());
        return set_const(n, std::move(c));
    }
    if (op == "Cast") {
        const AttributeProto* to = attr(n, "to", AttributeProto::INT);
        if (!to) fail(n, "has no 'to' attribute");
        const int32_t t = static_cast<int32_t>(std::clamp<int64_t>(to->i(), -1, 1 << 20));
        const Const& x = in(0);
        Const c;
        c.dtype = t;
        c.dims = x.dims;
        if (is_float_type(t)) {
            if (x.is_float())
                c.f = x.f;
            else
                for (int64_t v : x.i)
                    c.f.push_back(static_cast<float>(v));
        } else if (is_int_type(t)) {
            if (x.is_float()) {
                for (float v : x.f) {
                    if (t == TensorProto::BOOL) {
                        c.i.push_back(v != 0);
                        continue;
                    }
                    if (!(std::fabs(v) < 9.2e18f))
                        fail(n, "casts " + std::to_string(v) + " to an integer");
                    c.i.push_back(static_cast<int64_t>(v));
                }
            } else {
                c.i = x.i;
                if (t == TensorProto::BOOL)
                    for (int64_t& v : c.i)
                        v = v != 0;
            }
        } else {
            fail(n, "casts to " + type_name(t) + ", which cardinal does not support");
        }
        charge(n, c.size());
        return set_const(n, std::move(c));
    }
    if (op == "ConstantOfShape") {
        const std::vector<int64_t> dims = ints_of(n, in(0), "shape");
        if (in(0).dims.size() != 1) fail(n, "its shape input must be 1-D");
        const int64_t count = checked_numel(dims, budget_, "the result of " + node_label(n));
        Const c;
        c.dims = dims;
        c.dtype = TensorProto::FLOAT;
        Const v;
        v.f = {0.0f};
        if (const AttributeProto* a = attr(n, "value", AttributeProto::TENSOR)) {
            v = read_tensor(a->t(), "the value of node " + node_label(n));
            if (v.size() != 1) fail(n, "its value must hold one element");
        }
        c.dtype = v.dtype;
        charge(n, count);
        if (c.is_float())
            c.f.assign(static_cast<size_t>(count), v.f[0]);
        else
            c.i.assign(static_cast<size_t>(count), v.i[0]);
        return set_const(n, std::move(c));
    }
    if (op == "Concat") {
        const AttributeProto* a = attr(n, "axis", AttributeProto::INT);
        if (!a) fail(n, "has no axis attribute");
        if (n.input_size() == 0) fail(n, "has no inputs");
        const Const& first = in(0);
        const int64_t ax = axis(n, a->i(), first.dims.size());
        Const c;
        c.dtype = first.dtype;
        c.dims = first.dims;
        c.dims[size_t(ax)] = 0;
        for (int k = 0; k < n.input_size(); ++k) {
            const Const& x = in(k);
            bool ok = x.dims.size() == first.dims.size() && x.is_float() == first.is_float();
            for (size_t d = 0; ok && d < x.dims.size(); ++d)
                if (static_cast<int64_t>(d) != ax && x.dims[d] != first.dims[d]) ok = false;
            if (!ok) fail(n, "concatenates incompatible constants");
            c.dims[size_t(ax)] += x.dims[size_t(ax)];
            if (c.dims[size_t(ax)] > budget_) fail(n, "its result is too large");
        }
        const int64_t total = checked_numel(c.dims, budget_, "the result of " + node_label(n));
        charge(n, total);
        int64_t outer = 1;
        for (int64_t d = 0; d < ax; ++d)
            outer *= c.dims[size_t(d)];
        for (int64_t o = 0; o < outer; ++o)
            for (int k = 0; k < n.input_size(); ++k) {
                const Const& x = in(k);
                const int64_t chunk = outer ? x.size() / outer : 0;
                if (c.is_float())
                    c.f.insert(c.f.end(), x.f.begin() + o * chunk, x.f.begin() + (o + 1) * chunk);
                else
                    c.i.insert(c.i.end(), x.i.begin() + o * chunk, x.i.begin() + (o + 1) * chunk);
            }
        return set_const(n, std::move(c));
    }
    if (op == "Gather") {
        const Const& data = in(0);
        const Const& idx = in(1);
        if (data.dims.empty()) fail(n, "gathers from a scalar");
        const int64_t ax = axis(n, attr_int(n, "axis", 0), data.dims.size());
        const std::vector<int64_t> indices = ints_of(n, idx, "indices");
        const int64_t extent = data.dims[size_t(ax)];
        std::vector<int64_t> out(data.dims.begin(), data.dims.begin() + ax);
        out.insert(out.end(), idx.dims.begin(), idx.dims.end());
        out.insert(out.end(), data.dims.begin() + ax + 1, data.dims.end());
        const int64_t total = checked_numel(out, budget_, "the result of " + node_label(n));
        charge(n, total);
        int64_t outer = 1, inner = 1;
        for (int64_t d = 0; d < ax; ++d)
            outer *= data.dims[size_t(d)];
        for (size_t d = size_t(ax) + 1; d < data.dims.size(); ++d)
            inner *= data.dims[d];
        Const c;
        c.dtype = data.dtype;
        c.dims = out;
        for (int64_t o = 0; o < outer; ++o)
            for (int64_t i : indices) {
                if (i < -extent || i >= extent)
                    fail(n, "index " + std::to_string(i) + " is out of range");
                const int64_t j = i < 0 ? i + extent : i;
                const size_t from = size_t((o * extent + j) * inner);
                if (c.is_float())
                    c.f.insert(c.f.end(), data.f.begin() + long(from),
                               data.f.begin() + long(from + size_t(inner)));
                else
                    c.i.insert(c.i.end(), data.i.begin() + long(from),
                               data.i.begin() + long(from + size_t(inner)));
            }
        return set_const(n, std::move(c));
    }
    if (op == "Unsqueeze" || op == "Squeeze") {
        Const c = in(0);
        std::optional<std::vector<int64_t>> axes;
        if (opset_ >= 13) {
            if (has_input(n, 1)) axes = ints_of(n, in(1), "axes");
        } else {
            axes = attr_ints(n, "axes");
        }
        if (op == "Unsqueeze") {
            if (!axes) fail(n, "has no axes");
            const size_t rank = c.dims.size() + axes->size();
            std::vector<bool> inserted(rank, false);
            for (int64_t a : *axes) {
                const int64_t k = axis(n, a, rank);
                if (inserted[size_t(k)]) fail(n, "repeats an axis");
                inserted[size_t(k)] = true;
            }
            std::vector<int64_t> dims;
            size_t from = 0;
            for (size_t k = 0; k < rank; ++k)
                dims.push_back(inserted[k] ? 1 : c.dims[from++]);
            c.dims = dims;
        } else {
            std::vector<bool> removed(c.dims.size(), false);
            if (axes) {
                for (int64_t a : *axes) {
                    const int64_t k = axis(n, a, c.dims.size());
                    if (c.dims[size_t(k)] != 1) fail(n, "squeezes an axis whose size is not 1");
                    removed[size_t(k)] = true;
                }
            } else {
                for (size_t k = 0; k < c.dims.size(); ++k)
                    removed[k] = c.dims[k] == 1;
            }
            std::vector<int64_t> dims;
            for (size_t k = 0; k < c.dims.size(); ++k)
                if (!removed[k]) dims.push_back(c.dims[k]);
            c.dims = dims;
        }
        charge(n, c.size());
        return set_const(n, std::move(c));
    }
    if (op == "Transpose") {
        const Const& x = in(0);
        const size_t rank = x.dims.size();
        std::vector<int64_t> perm = attr_ints(n, "perm").value_or(std::vector<int64_t>{});
        if (perm.empty())
            for (size_t k = rank; k-- > 0;)
                perm.push_back(static_cast<int64_t>(k));
        if (perm.size() != rank) fail(n, "its perm does not match the input's rank");
        std::vector<bool> seen(rank, false);
        const auto st = strides_of(x.dims);
        std::vector<int64_t> dims, strides;
        for (int64_t p : perm) {
            if (p < 0 || p >= static_cast<int64_t>(rank) || seen[size_t(p)])
                fail(n, "its perm is not a permutation");
            seen[size_t(p)] = true;
            dims.push_back(x.dims[size_t(p)]);
            strides.push_back(st[size_t(p)]);
        }
        Const c;
        c.dtype = x.dtype;
        c.dims = dims;
        charge(n, x.size());
        if (x.is_float())
            c.f = gather_strided(x.f, dims, strides, 0);
        else
            c.i = gather_strided(x.i, dims, strides, 0);
        return set_const(n, std::move(c));
    }
    if (op == "Slice") {
        const Const& x = in(0);
        const size_t rank = x.dims.size();
        std::vector<int64_t> starts, ends, axes, steps;
        if (opset_ < 10) {
            starts = attr_ints(n, "starts").value_or(std::vector<int64_t>{});
            ends = attr_ints(n, "ends").value_or(std::vector<int64_t>{});
            axes = attr_ints(n, "axes").value_or(std::vector<int64_t>{});
        } else {
            starts = ints_of(n, in(1), "starts");
            ends = ints_of(n, in(2), "ends");
            if (has_input(n, 3)) axes = ints_of(n, in(3), "axes");
            if (has_input(n, 4)) steps = ints_of(n, in(4), "steps");
        }
        if (axes.empty())
            for (size_t k = 0; k < starts.size(); ++k)
                axes.push_back(static_cast<int64_t>(k));
        if (steps.empty()) steps.assign(starts.size(), 1);
        if (ends.size() != starts.size() || axes.size() != starts.size() ||
            steps.size() != starts.size())
            fail(n, "its starts, ends, axes and steps differ in length");
        std::vector<int64_t> begin(rank, 0), step(rank, 1), dims = x.dims;
        std::vector<bool> seen(rank, false);
        for (size_t k = 0; k < starts.size(); ++k) {
            const size_t a = size_t(axis(n, axes[k], rank));
            if (seen[a]) fail(n, "repeats an axis");
            seen[a] = true;
            const int64_t d = x.dims[a], s = steps[k];
            if (s == 0) fail(n, "has a step of 0");
            if (s < -kMaxDimension || s > kMaxDimension) fail(n, "has an invalid step");
            auto clamp_index = [&](int64_t v, int64_t lo, int64_t hi) {
                if (v < 0) v = v < -d ? -1 : v + d;  // avoid overflow with INT64_MIN
                return std::clamp(v, lo, hi);
            };
            int64_t b, e;
            if (s > 0) {
                b = clamp_index(starts[k], 0, d);
                e = clamp_index(ends[k], 0, d);
            } else {
                b = clamp_index(starts[k], -1, d - 1);
                e = clamp_index(ends[k], -1, d - 1);
            }
            const int64_t count =
                s > 0 ? (e > b ? (e - b + s - 1) / s : 0) : (b > e ? (b - e - s - 1) / (-s) : 0);
            begin[a] = b;
            step[a] = s;
            dims[a] = count;
        }
        const auto st = strides_of(x.dims);
        std::vector<int64_t> strides(rank);
        int64_t base = 0;
        bool empty = false;
        for (size_t a = 0; a < rank; ++a) {
            strides[a] = st[a] * step[a];
            if (dims[a] == 0) empty = true;
            base += begin[a] * st[a];
        }
        Const c;
        c.dtype = x.dtype;
        c.dims = dims;
        const int64_t total = checked_numel(dims, budget_, "the result");
        charge(n, total);
        if (!empty) {
            if (x.is_float())
                c.f = gather_strided(x.f, dims, strides, base);
            else
                c.i = gather_strided(x.i, dims, strides, base);
        }
        return set_const(n, std::move(c));
    }
    fail(n, "cannot be folded");
}

Graph Importer::run() {
    if (batch_ < 1 || batch_ > kMaxDimension)
        throw Error("batch must be at least 1, got " + std::to_string(batch_));
    if (!model_.has_graph()) throw Error("the model has no graph");
    check_opset();
    check_ops_and_definitions();
    run_onnx_checker();
    if (g_.output_size() != 1)
        throw Error("the graph has " + std::to_string(g_.output_size()) +
                    " outputs; cardinal needs exactly one");
    define_inputs();
    candidates_ = candidate_names(g_);
    graph_.name = name_;
    graph_.shapes[graph_.input] = graph_.input_shape;
    for (int k = 0; k < g_.node_size(); ++k)
        convert(k);

    const std::string& out = g_.output(0).name();
    const Value& v = values_.at(out);
    if (v.is_const())
        throw Error("the graph output '" + printable(out) + "' does not depend on the input");
    if (graph_.nodes.empty() || v.tensor == graph_.input)
        throw Error("the graph output '" + printable(out) + "' is the input itself: no layers");
    graph_.output = v.tensor;
    // Layers the output does not depend on are dropped.
    std::set<std::string> needed = {graph_.output};
    std::vector<Node> kept;
    for (size_t k = graph_.nodes.size(); k-- > 0;) {
        Node& node = graph_.nodes[k];
        if (!needed.count(node.output)) continue;
        for (const std::string& t : node.inputs)
            needed.insert(t);
        kept.push_back(std::move(node));
    }
    std::reverse(kept.begin(), kept.end());
    graph_.nodes = std::move(kept);
    infer_shapes(graph_);

    run_onnx_shape_inference();
    return std::move(graph_);
}

}  // namespace

const std::vector<std::string>& onnx_layer_ops() {
    return kLayerOps;
}
const std::vector<std::string>& onnx_constant_ops() {
    return kConstantOps;
}

Graph import_onnx_bytes(const std::string& bytes, int batch, const std::string& name) {
    if (bytes.empty()) throw Error("the file is empty; an ONNX model was expected");
    if (bytes.size() > size_t(std::numeric_limits<int>::max()))
        throw Error(
            "the file is larger than 2 GB; protobuf cannot parse it (cardinal does not "
            "read ONNX external data)");
    ModelProto model;
    if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
        throw Error(
            "the file is not a valid ONNX model: it cannot be parsed as an ONNX "
            "ModelProto (truncated, corrupted, or not ONNX at all)");
    if (!model.has_graph() && model.opset_import_size() == 0)
        throw Error(
            "the file is not a valid ONNX model: it holds no graph and no opset (not an "
            "ONNX file?)");
    return Importer(model, batch, name).run();
}

Graph import_onnx(const std::string& path, int batch) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::exists(path, ec)) throw Error("ONNX file '" + path + "' does not exist");
    if (fs::is_directory(path, ec)) throw Error("'" + path + "' is a directory, not an ONNX file");
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error("cannot open ONNX file '" + path + "'");
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (f.bad()) throw Error("cannot read ONNX file '" + path + "'");
    std::string name = fs::path(path).stem().string();
    if (name.empty()) name = "onnx_model";
    try {
        return import_onnx_bytes(bytes, batch, name);
    } catch (const Error& e) {
        throw Error("cannot import '" + path + "': " + e.what());
    }
}

}  // namespace cardinal
