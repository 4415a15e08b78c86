// .npy reading and writing; the format is numpy.lib.format's:
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
// The header is a Python dict literal; we parse the literal subset NumPy writes (strings, ints,
// booleans, tuples, lists, dicts) ourselves rather than pull in a Python parser.
#include "io/npy.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "ir/error.h"

namespace cardinal {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kArrayAlign = 64;           // NumPy aligns the data start to 64 bytes
constexpr size_t kGrowthAxisMaxDigits = 21;  // NumPy's spare header room for appending rows

std::string quoted(const std::string& path) {
    return "'" + path + "'";
}

// A value of the header's dict literal.
struct PyValue {
    enum class Kind { kNone, kBool, kInt, kString, kTuple, kList, kDict };
    Kind kind = Kind::kNone;
    bool boolean = false;
    int64_t integer = 0;
    bool int_overflow = false;
    std::string text;  // kString; for everything else, the literal's source text (for messages)
    std::vector<PyValue> items;     // kTuple, kList; a kDict's values
    std::vector<std::string> keys;  // kDict
};

// Recursive-descent parser for the Python literal subset found in .npy headers.
class HeaderParser {
  public:
    HeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

    PyValue parse() {
        PyValue v = value(0);
        skip_space();
        if (pos_ != s_.size()) fail("unexpected text after the header dictionary");
        return v;
    }

  private:
    [[noreturn]] void fail(const std::string& what) const {
        // Echo the header without its padding, on one line and at a bounded length.
        std::string shown = s_.substr(0, 200);
        while (!shown.empty() && std::isspace(static_cast<unsigned char>(shown.back())))
            shown.pop_back();
        for (char& c : shown)
            if (!std::isprint(static_cast<unsigned char>(c))) c = '?';
        throw Error(quoted(path_) + " has a malformed .npy header (" + what + " at offset " +
                    std::to_string(pos_) + " of \"" + shown + "\").");
    }

    void skip_space() {
        while (pos_ < s_.size() &&
               (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
            ++pos_;
    }

    bool eat(char c) {
        skip_space();
        if (pos_ < s_.size() && s_[pos_] == c) {
            ++pos_;
            return true;
        }
        return false;
    }

    bool eat_word(const char* w) {
        const size_t n = std::strlen(w);
        if (s_.compare(pos_, n, w) != 0) return false;
        // The word must not continue as an identifier ("Truex").
        if (pos_ + n < s_.size() &&
            (std::isalnum(static_cast<unsigned char>(s_[pos_ + n])) || s_[pos_ + n] == '_'))
            return false;
        pos_ += n;
        return true;
    }

    PyValue value(int depth) {
        // Headers are flat; the bound only stops hostile files from overflowing the stack.
        if (depth > 32) fail("nesting too deep");
        skip_space();
        if (pos_ >= s_.size()) fail("unexpected end");
        const size_t start = pos_;
        PyValue v;
        const char c = s_[pos_];
        if (c == '\'' || c == '"') {
            v.kind = PyValue::Kind::kString;
            v.text = string_literal();
            return v;
        }
        if (c == '(' || c == '[') {
            v.kind = c == '(' ? PyValue::Kind::kTuple : PyValue::Kind::kList;
            const char close = c == '(' ? ')' : ']';
            ++pos_;
            bool saw_comma = false;
            while (!eat(close)) {
                v.items.push_back(value(depth + 1));
                if (eat(',')) {
                    saw_comma = true;
                    continue;
                }
                if (!eat(close)) fail(std::string("expected ',' or '") + close + "'");
                break;
            }
            // "(5)" is just 5 in Python; only "(5,)" is a tuple.
            if (c == '(' && v.items.size() == 1 && !saw_comma) {
                PyValue inner = v.items[0];
                inner.text = s_.substr(start, pos_ - start);
                return inner;
            }
            v.text = s_.substr(start, pos_ - start);
            return v;
        }
        if (c == '{') {
            v.kind = PyValue::Kind::kDict;
            ++pos_;
            while (!eat('}')) {
                skip_space();
                if (pos_ >= s_.size() || (s_[pos_] != '\'' && s_[pos_] != '"'))
                    fail("expected a quoted dictionary key");
                v.keys.push_back(string_literal());
                if (!eat(':')) fail("expected ':' after a dictionary key");
                v.items.push_back(value(depth + 1));
                if (eat(',')) continue;
                if (!eat('}')) fail("expected ',' or '}'");
                break;
            }
            v.text = s_.substr(start, pos_ - start);
            return v;
        }
        if (eat_word("True") || eat_word("False")) {
            v.kind = PyValue::Kind::kBool;
            v.boolean = s_[start] == 'T';
        } else if (eat_word("None")) {
            v.kind = PyValue::Kind::kNone;
        } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+') {
            v.kind = PyValue::Kind::kInt;
            const bool negative = c == '-';
            if (c == '-' || c == '+') ++pos_;
            if (pos_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[pos_])))
                fail("expected a digit");
            uint64_t magnitude = 0;
            while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
                const unsigned d = static_cast<unsigned>(s_[pos_] - '0');
                if (magnitude > (uint64_t(std::numeric_limits<int64_t>::max()) - d) / 10)
                    v.int_overflow = true;
                else
                    magnitude = magnitude * 10 + d;
                ++pos_;
            }
            // Python 2 era writers appended 'L' to longs; NumPy still accepts it in v1/v2.
            if (pos_ < s_.size() && s_[pos_] == 'L') ++pos_;
            v.integer = negative ? -int64_t(magnitude) : int64_t(magnitude);
        } else {
            fail("unexpected character '" + std::string(1, c) + "'");
        }
        v.text = s_.substr(start, pos_ - start);
        return v;
    }

    std::string string_literal() {
        const char q = s_[pos_++];
        std::string out;
        while (true) {
            if (pos_ >= s_.size()) fail("unterminated string");
            const char c = s_[pos_++];
            if (c == q) break;
            if (c == '\\') {
                if (pos_ >= s_.size()) fail("unterminated string");
                out += s_[pos_++];
                continue;
            }
            out += c;
        }
        return out;
    }

    const std::string& s_;
    const std::string& path_;
    size_t pos_ = 0;
};

// A readable name for a NumPy type string such as '<f8', for messages.
std::string describe_descr(const std::string& descr) {
    if (descr.size() < 2) return "'" + descr + "'";
    const char order = descr[0];
    const std::string body =
        (order == '<' || order == '>' || order == '|' || order == '=') ? descr.substr(1) : descr;
    static const std::map<std::string, std::string> names = {
        {"f2", "float16"}, {"f4", "float32"},   {"f8", "float64"},     {"f16", "float128"},
        {"i1", "int8"},    {"i2", "int16"},     {"i4", "int32"},       {"i8", "int64"},
        {"u1", "uint8"},   {"u2", "uint16"},    {"u4", "uint32"},      {"u8", "uint64"},
        {"b1", "bool"},    {"c8", "complex64"}, {"c16", "complex128"}, {"O", "Python object"},
    };
    auto it = names.find(body);
    std::string name = it != names.end() ? it->second : "'" + descr + "'";
    if (it != names.end() && order == '>') name = "big-endian " + name;
    if (it != names.end()) name += " ('" + descr + "')";
    return name;
}

uint64_t read_le(const unsigned char* p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i)
        v |= uint64_t(p[i]) << (8 * i);
    return v;
}

// Python's repr of a shape tuple: "()", "(5,)", "(2, 3)".
std::string shape_repr(const Shape& shape) {
    std::string s = "(";
    for (size_t i = 0; i < shape.rank(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    if (shape.rank() == 1) s += ",";
    return s + ")";
}

std::string errno_text(int err) {
    std::string s = std::strerror(err);
    if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
    return s;
}

// .npy data is little-endian; only big-endian hosts need this.
void byteswap(std::vector<float>& values) {
    for (float& f : values) {
        uint32_t u = std::bit_cast<uint32_t>(f);
        u = (u >> 24) | ((u >> 8) & 0xff00u) | ((u << 8) & 0xff0000u) | (u << 24);
        f = std::bit_cast<float>(u);
    }
}

// Writes all of `size` bytes to fd, retrying on short writes.
bool write_all(int fd, const char* data, size_t size) {
    while (size > 0) {
        const ssize_t n = ::write(fd, data, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data += n;
        size -= static_cast<size_t>(n);
    }
    return true;
}

}  // namespace

Tensor read_npy(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_directory(path, ec)) throw Error(quoted(path) + " is a folder, not a .npy file.");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot open " + quoted(path) + ": " + errno_text(errno) + ".");
    in.seekg(0, std::ios::end);
    const std::streamoff file_size = in.tellg();
    in.seekg(0, std::ios::beg);
    if (file_size < 0) throw Error("cannot read " + quoted(path) + ".");

    // Magic string and version.
    unsigned char prefix[kMagicLen + 2];
    const size_t got = static_cast<size_t>(std::min<std::streamoff>(file_size, sizeof(prefix)));
    in.read(reinterpret_cast<char*>(prefix), static_cast<std::streamsize>(got));
    if (got < kMagicLen || std::memcmp(prefix, kMagic, kMagicLen) != 0)
        throw Error(quoted(path) +
                    " is not a .npy file (it does not start with the NumPy magic string).");
    if (got < sizeof(prefix))
        throw Error(quoted(path) + " is truncated: it ends inside the .npy header.");
    const int major = prefix[kMagicLen], minor = prefix[kMagicLen + 1];
    if (!((major == 1 || major == 2 || major == 3) && minor == 0))
        throw Error(quoted(path) + " uses .npy format version " + std::to_string(major) + "." +
                    std::to_string(minor) + "; cardinal reads versions 1.0, 2.0 and 3.0.");

    // Header length: 2 bytes in version 1.0, 4 bytes later.
    const size_t len_bytes = major == 1 ? 2 : 4;
    unsigned char len_buf[4];
    if (!in.read(reinterpret_cast<char*>(len_buf), static_cast<std::streamsize>(len_bytes)))
        throw Error(quoted(path) + " is truncated: it ends inside the .npy header.");
    const uint64_t header_len = read_le(len_buf, len_bytes);
    const uint64_t data_offset = sizeof(prefix) + len_bytes + header_len;
    if (data_offset > static_cast<uint64_t>(file_size))
        throw Error(quoted(path) + " is truncated: its .npy header says it is " +
                    std::to_string(header_len) + " bytes long but only " +
                    std::to_string(file_size - std::streamoff(sizeof(prefix) + len_bytes)) +
                    " bytes follow.");
    std::string header(header_len, '\0');
    in.read(header.data(), static_cast<std::streamsize>(header_len));
    if (!in) throw Error("cannot read the .npy header of " + quoted(path) + ".");

    const PyValue dict = HeaderParser(header, path).parse();
    if (dict.kind != PyValue::Kind::kDict)
        throw Error(quoted(path) + " has a malformed .npy header (it is not a dictionary).");
    const PyValue *descr = nullptr, *fortran = nullptr, *shape_v = nullptr;
    for (size_t i = 0; i < dict.keys.size(); ++i) {
        const std::string& k = dict.keys[i];
        if (k == "descr")
            descr = &dict.items[i];
        else if (k == "fortran_order")
            fortran = &dict.items[i];
        else if (k == "shape")
            shape_v = &dict.items[i];
        else
            throw Error(quoted(path) + " has an unexpected key '" + k + "' in its .npy header.");
    }
    if (!descr || !fortran || !shape_v)
        throw Error(quoted(path) + " has a .npy header without the '" +
                    std::string(!descr     ? "descr"
                                : !fortran ? "fortran_order"
                                           : "shape") +
                    "' key.");

    // Element type: only little-endian float32.
    if (descr->kind != PyValue::Kind::kString)
        throw Error(quoted(path) + " holds a structured array (descr " + descr->text +
                    "); cardinal needs little-endian float32 ('<f4').");
    if (descr->text != "<f4")
        throw Error(quoted(path) + " holds " + describe_descr(descr->text) +
                    " data; cardinal needs little-endian float32 ('<f4'), e.g. "
                    "x.astype('<f4').");
    if (fortran->kind != PyValue::Kind::kBool)
        throw Error(quoted(path) + " has a .npy header whose 'fortran_order' is not a boolean.");
    if (fortran->boolean)
        throw Error(quoted(path) +
                    " is stored in Fortran (column-major) order; cardinal needs C order "
                    "(save numpy.ascontiguousarray(x)).");

    // Shape, with an overflow-safe element count.
    if (shape_v->kind != PyValue::Kind::kTuple)
        throw Error(quoted(path) + " has a .npy header whose 'shape' is not a tuple.");
    Shape shape;
    uint64_t numel = 1;
    bool too_big = false;
    for (const PyValue& d : shape_v->items) {
        if (d.kind != PyValue::Kind::kInt || d.integer < 0 || d.int_overflow)
            throw Error(quoted(path) + " has an invalid shape " + shape_v->text +
                        " in its .npy header.");
        shape.dims.push_back(d.integer);
        if (d.integer != 0 &&
            numel > std::numeric_limits<uint64_t>::max() / 4 / uint64_t(d.integer))
            too_big = true;
        else
            numel *= uint64_t(d.integer);
    }
    const uint64_t available = static_cast<uint64_t>(file_size) - data_offset;
    if (too_big || numel * 4 > available)
        throw Error(quoted(path) + " is truncated: shape " + shape_repr(shape) + " float32 needs " +
                    (too_big ? "more" : std::to_string(numel * 4)) +
                    " bytes of data but the file holds " + std::to_string(available) + ".");

    Tensor t;
    t.shape = shape;
    t.data.resize(numel);
    in.read(reinterpret_cast<char*>(t.data.data()), static_cast<std::streamsize>(numel * 4));
    if (!in) throw Error("cannot read the data of " + quoted(path) + ".");
    if constexpr (std::endian::native == std::endian::big) byteswap(t.data);
    return t;
}

void write_npy(const std::string& path, const Tensor& t) {
    namespace fs = std::filesystem;
    if (static_cast<int64_t>(t.data.size()) != t.shape.numel())
        throw Error("cannot write " + quoted(path) + ": the tensor has shape " + t.shape.str() +
                    " but holds " + std::to_string(t.data.size()) + " values.");

    // The same bytes np.save writes: sorted keys, growth room, 64-byte alignment.
    std::string dict =
        "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_repr(t.shape) + ", }";
    if (t.shape.rank() > 0)
        dict.append(kGrowthAxisMaxDigits - std::to_string(t.shape[0]).size(), ' ');
    std::string file;
    for (int major : {1, 2}) {
        const size_t len_bytes = major == 1 ? 2 : 4;
        const size_t hlen = dict.size() + 1;
        const size_t padlen = kArrayAlign - (kMagicLen + 2 + len_bytes + hlen) % kArrayAlign;
        const uint64_t total = hlen + padlen;
        if (major == 1 && total > 0xffff) continue;  // only huge-rank shapes need version 2.0
        file.assign(kMagic, kMagicLen);
        file += static_cast<char>(major);
        file += '\0';
        for (size_t i = 0; i < len_bytes; ++i)
            file += static_cast<char>((total >> (8 * i)) & 0xff);
        file += dict;
        file.append(padlen, ' ');
        file += '\n';
        break;
    }

    std::vector<float> swapped;
    const float* data = t.data.data();
    if constexpr (std::endian::native == std::endian::big) {
        swapped = t.data;
        byteswap(swapped);
        data = swapped.data();
    }

    // A temporary next to the target so rename() is atomic (same file system). O_EXCL with a
    // random suffix avoids clobbering a concurrent writer's temporary; mode 0666 honours umask.
    const fs::path target(path);
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        throw Error("cannot write " + quoted(path) + ": the folder '" + dir.string() +
                    "' does not exist.");
    std::random_device rd;
    std::string tmp;
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
        // Appends in steps: GCC 12 warns falsely (-Wrestrict) on chained std::string sums.
        std::string name = ".";
        name.append(target.filename().string()).append(".tmp").append(std::to_string(rd()));
        tmp = (dir / name).string();
        fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) throw Error("cannot write " + quoted(path) + ": " + errno_text(errno) + ".");

    const bool ok = write_all(fd, file.data(), file.size()) &&
                    write_all(fd, reinterpret_cast<const char*>(data), t.data.size() * 4) &&
                    ::fsync(fd) == 0;
    const int write_errno = errno;
    if (::close(fd) != 0 || !ok) {
        ::unlink(tmp.c_str());
        throw Error("cannot write " + quoted(path) + ": " + errno_text(ok ? errno : write_errno) +
                    ".");
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw Error("cannot write " + quoted(path) + ": " + errno_text(err) + ".");
    }
}

}  // namespace cardinal
