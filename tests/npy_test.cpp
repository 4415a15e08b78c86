// .npy reading and writing: round trips, files written by NumPy (format versions 1.0-3.0), the
// errors for every kind of file cardinal cannot use, and the atomic write.
#include <catch2/catch.hpp>

#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "io/npy.h"
#include "ir/error.h"

using namespace cardinal;
namespace fs = std::filesystem;

namespace {

// A string literal's bytes, embedded NULs included.
template <size_t N>
std::string bytes(const char (&s)[N]) {
    return std::string(s, N - 1);
}

// Written by NumPy 1.24 (np.save, or np.lib.format.write_array for versions 2.0 and 3.0).
// np.save(f, np.array([[-1, -0.5, 0], [0.5, 1, 1.5]], dtype='<f4'))
const std::string kNumpyV1 = bytes(
    "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }          "
    "                                                \012\000\000\200\277\000\000\000\277\000\000"
    "\000\000\000\000\000?\000\000\200?\000\000\300?");
// write_array(f, np.array([1, 2, 3], dtype='<f4'), version=(2, 0))
const std::string kNumpyV2 = bytes(
    "\223NUMPY\002\000t\000\000\000{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }    "
    "                                                      \012\000\000\200?\000\000\000@\000\000"
    "@@");
// write_array(f, np.array([[1, 2], [3, 4]], dtype='<f4'), version=(3, 0))
const std::string kNumpyV3 = bytes(
    "\223NUMPY\003\000t\000\000\000{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }  "
    "                                                      \012\000\000\200?\000\000\000@\000\000"
    "@@\000\000\200@");
// np.save(f, np.float32(2.5))
const std::string kNumpyScalar = bytes(
    "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': False, 'shape': (), }              "
    "                                                \012\000\000 @");
// np.save(f, np.zeros((0, 3), dtype='<f4'))
const std::string kNumpyEmpty = bytes(
    "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }          "
    "                                                \012");
// np.save(f, np.array([1, 2], dtype='<f8'))
const std::string kNumpyFloat64 = bytes(
    "\223NUMPY\001\000v\000{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }            "
    "                                                \012\000\000\000\000\000\000\360?\000\000"
    "\000\000\000\000\000@");
// np.save(f, np.array([1, 2], dtype='<i4'))
const std::string kNumpyInt32 = bytes(
    "\223NUMPY\001\000v\000{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }            "
    "                                                \012\001\000\000\000\002\000\000\000");
// np.save(f, np.array([1, 2], dtype='>f4'))
const std::string kNumpyBigEndian = bytes(
    "\223NUMPY\001\000v\000{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }            "
    "                                                \012?\200\000\000@\000\000\000");
// np.save(f, np.asfortranarray(np.array([[1, 2], [3, 4]], dtype='<f4')))
const std::string kNumpyFortran = bytes(
    "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }           "
    "                                                \012\000\000\200?\000\000@@\000\000\000@\000"
    "\000\200@");

fs::path tmp_dir() {
    const fs::path dir = fs::path(CARDINAL_TEST_TMPDIR) / "npy";
    fs::create_directories(dir);
    return dir;
}

std::string write_file(const std::string& name, const std::string& contents) {
    const fs::path p = tmp_dir() / name;
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    REQUIRE(f.good());
    return p.string();
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// The message of the cardinal::Error read_npy(path) throws ("" if it does not throw).
std::string read_error(const std::string& path) {
    try {
        read_npy(path);
    } catch (const Error& e) {
        return e.what();
    }
    FAIL("read_npy('" << path << "') did not throw");
    return "";
}

// A version 1.0 file with `dict` as its header, aligned to 16 bytes as older NumPy did.
std::string make_npy(const std::string& dict, const std::string& data) {
    std::string header = dict;
    while ((10 + header.size() + 1) % 16)
        header += ' ';
    header += '\n';
    std::string f = bytes("\223NUMPY\001\000");
    f += static_cast<char>(header.size() & 0xff);
    f += static_cast<char>(header.size() >> 8);
    return f + header + data;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("npy round trips float32 tensors of rank 1 to 4 bit-exactly", "[npy]") {
    const std::vector<Shape> shapes = {{7}, {3, 5}, {2, 3, 4}, {2, 3, 5, 7}, {1, 3, 1, 1}};
    for (const Shape& shape : shapes) {
        Tensor t(shape);
        for (int64_t i = 0; i < t.numel(); ++i)
            t.data[size_t(i)] = std::bit_cast<float>(uint32_t(0x3f800000u + uint32_t(i) * 7919u));
        // Values whose bits a lossy path would change.
        t.data[0] = -0.0f;
        if (t.numel() > 3) {
            t.data[1] = std::numeric_limits<float>::quiet_NaN();
            t.data[2] = std::numeric_limits<float>::infinity();
            t.data[3] = std::numeric_limits<float>::denorm_min();
        }
        const std::string path = (tmp_dir() / ("round_trip_" + shape.str() + ".npy")).string();
        write_npy(path, t);
        const Tensor back = read_npy(path);
        CHECK(back.shape == shape);
        CHECK(bit_equal(back.data, t.data));
    }
}

TEST_CASE("npy writes exactly the bytes np.save writes", "[npy]") {
    const Tensor t(Shape{2, 3}, {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f});
    const std::string path = (tmp_dir() / "like_numpy.npy").string();
    write_npy(path, t);
    CHECK(read_file(path) == kNumpyV1);
}

TEST_CASE("npy reads files NumPy wrote in format versions 1.0, 2.0 and 3.0", "[npy]") {
    const Tensor v1 = read_npy(write_file("v1.npy", kNumpyV1));
    CHECK(v1.shape == Shape{2, 3});
    CHECK(v1.data == std::vector<float>{-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f});

    const Tensor v2 = read_npy(write_file("v2.npy", kNumpyV2));
    CHECK(v2.shape == Shape{3});
    CHECK(v2.data == std::vector<float>{1.0f, 2.0f, 3.0f});

    const Tensor v3 = read_npy(write_file("v3.npy", kNumpyV3));
    CHECK(v3.shape == Shape{2, 2});
    CHECK(v3.data == std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f});

    const Tensor scalar = read_npy(write_file("scalar.npy", kNumpyScalar));
    CHECK(scalar.shape.rank() == 0);
    CHECK(scalar.data == std::vector<float>{2.5f});

    const Tensor empty = read_npy(write_file("empty.npy", kNumpyEmpty));
    CHECK(empty.shape == Shape{0, 3});
    CHECK(empty.data.empty());
}

TEST_CASE("npy reads headers other writers produce", "[npy]") {
    // Older NumPy aligned to 16 bytes; other writers use double quotes, omit the trailing comma
    // or the spaces, and order keys differently.
    const float values[2] = {3.0f, -4.0f};
    const std::string data(reinterpret_cast<const char*>(values), sizeof(values));
    for (const std::string& dict : {
             std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"),
             std::string("{\"shape\":(2,),\"fortran_order\":False,\"descr\":\"<f4\"}"),
             std::string("{'descr':'<f4','fortran_order':False,'shape':(1, 2)}"),
         }) {
        const Tensor t = read_npy(write_file("other_writer.npy", make_npy(dict, data)));
        CHECK(t.numel() == 2);
        CHECK(t.data == std::vector<float>{3.0f, -4.0f});
    }
}

TEST_CASE("npy rejects files it cannot use with a sentence saying why", "[npy]") {
    using Catch::Contains;

    CHECK_THAT(read_error((tmp_dir() / "no_such_file.npy").string()), Contains("cannot open"));
    CHECK_THAT(read_error(tmp_dir().string()), Contains("is a folder"));
    CHECK_THAT(read_error(write_file("text.npy", "x,y\n1,2\n")), Contains("is not a .npy file"));
    CHECK_THAT(read_error(write_file("zero.npy", "")), Contains("is not a .npy file"));

    // Cut inside the length field, then inside the header's dictionary.
    CHECK_THAT(read_error(write_file("cut_prefix.npy", kNumpyV1.substr(0, 9))),
               Contains("truncated"));
    CHECK_THAT(read_error(write_file("cut_header.npy", kNumpyV1.substr(0, 40))),
               Contains("truncated"));
    const std::string data_msg =
        read_error(write_file("cut_data.npy", kNumpyV1.substr(0, kNumpyV1.size() - 1)));
    CHECK_THAT(data_msg, Contains("truncated") && Contains("24 bytes") && Contains("23"));

    const std::string f64 = read_error(write_file("float64.npy", kNumpyFloat64));
    CHECK_THAT(f64, Contains("float64") && Contains("'<f8'") && Contains("float32"));
    CHECK_THAT(read_error(write_file("int32.npy", kNumpyInt32)),
               Contains("int32") && Contains("'<i4'"));
    CHECK_THAT(read_error(write_file("big_endian.npy", kNumpyBigEndian)),
               Contains("big-endian float32") && Contains("'>f4'"));
    CHECK_THAT(read_error(write_file("fortran.npy", kNumpyFortran)),
               Contains("Fortran") && Contains("C order"));

    std::string v4 = kNumpyV1;
    v4[6] = 4;
    CHECK_THAT(read_error(write_file("v4.npy", v4)), Contains("version 4.0"));

    std::string garbled = kNumpyV1;
    garbled.replace(garbled.find("False"), 5, "Fals?");
    CHECK_THAT(read_error(write_file("garbled.npy", garbled)), Contains("malformed"));

    CHECK_THAT(read_error(write_file(
                   "negative.npy",
                   make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }", ""))),
               Contains("invalid shape"));
    CHECK_THAT(read_error(write_file("no_shape.npy",
                                     make_npy("{'descr': '<f4', 'fortran_order': False, }", ""))),
               Contains("without the 'shape' key"));
    CHECK_THAT(read_error(write_file("structured.npy",
                                     make_npy("{'descr': [('a', '<f4')], 'fortran_order': "
                                              "False, 'shape': (1,), }",
                                              bytes("\000\000\000\000")))),
               Contains("structured"));
}

TEST_CASE("npy rejects every truncation of a valid file", "[npy]") {
    for (size_t n = 0; n < kNumpyV1.size(); ++n) {
        INFO("first " << n << " bytes");
        CHECK_THROWS_AS(read_npy(write_file("prefix.npy", kNumpyV1.substr(0, n))), Error);
    }
}

TEST_CASE("npy rejects a shape whose size overflows instead of allocating", "[npy]") {
    const std::string dict =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 8), }";
    CHECK_THAT(read_error(write_file("huge.npy", make_npy(dict, ""))),
               Catch::Contains("truncated"));
}

TEST_CASE("npy writes atomically: a failed write leaves no file behind", "[npy]") {
    const Tensor t(Shape{2}, {1.0f, 2.0f});

    const fs::path missing_dir = tmp_dir() / "no_such_folder";
    fs::remove_all(missing_dir);
    const std::string path = (missing_dir / "out.npy").string();
    try {
        write_npy(path, t);
        FAIL("write_npy into a missing folder did not throw");
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Catch::Contains("does not exist"));
    }
    CHECK_FALSE(fs::exists(missing_dir));

    // Overwriting replaces the file; an invalid tensor leaves the old one intact; no temporary
    // files remain.
    const fs::path dir = tmp_dir() / "atomic";
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::string target = (dir / "x.npy").string();
    write_npy(target, t);
    write_npy(target, Tensor(Shape{3}, {4.0f, 5.0f, 6.0f}));
    CHECK(read_npy(target).data == std::vector<float>{4.0f, 5.0f, 6.0f});
    Tensor bad(Shape{4});
    bad.data.resize(3);
    CHECK_THROWS_AS(write_npy(target, bad), Error);
    CHECK(read_npy(target).data == std::vector<float>{4.0f, 5.0f, 6.0f});
    CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
}
