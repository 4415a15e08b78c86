// Helpers shared by the `cardinal` subcommands: option parsing with uniform usage errors, model
// selection options, number formatting and plain-text tables.
#pragma once

#include <boost/program_options.hpp>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace cardinal::cli {

namespace po = boost::program_options;

// The arguments after the subcommand name.
using Args = std::vector<std::string>;

// A mistake in how cardinal was called (unknown option, missing or bad value): exit code 2.
// Bad input data or an unsupported model is a cardinal::Error instead: exit code 1.
class UsageError : public std::runtime_error {
  public:
    explicit UsageError(const std::string& message) : std::runtime_error(message) {}
};

// What a subcommand's --help prints above its options.
struct CommandHelp {
    std::string name;         // "inspect"
    std::string synopsis;     // "--model NAME [options]"
    std::string description;  // a paragraph
};

// Parses `args` into `vm`, adding --help to `options`. Returns false after printing help when
// --help was given (required options are not checked then). Throws UsageError for unknown
// options, positional arguments, bad values and missing required options.
bool parse_options(const CommandHelp& help, po::options_description& options, const Args& args,
                   po::variables_map& vm);

// The network a subcommand works on: a zoo model or an ONNX file.
struct ModelOptions {
    std::string model;
    std::string onnx;
    int batch = 1;
    int resolution = 0;  // 0: the model's default
    std::string seed = "0";
};

// Adds --model, --onnx, --batch, --resolution and, if `with_seed`, --seed.
void add_model_options(po::options_description& options, ModelOptions& m, bool with_seed);
// Checks the values (UsageError) before any expensive work.
void check_model_options(const ModelOptions& m);
// Builds the network; cardinal::Error for an unknown model, an unsupported resolution or an
// ONNX file that cannot be imported.
Graph build_model(const ModelOptions& m);

// 25028904 -> "25,028,904".
std::string with_commas(int64_t n);
// Fixed-point with `digits` decimals.
std::string fixed(double x, int digits);

// Left-aligned text columns, right-aligned number columns, two spaces apart.
class Table {
  public:
    // `right_aligned` holds one flag per column.
    Table(std::vector<std::string> header, std::vector<bool> right_aligned);
    void add(std::vector<std::string> row);
    std::string str() const;

  private:
    std::vector<std::vector<std::string>> rows_;  // rows_[0] is the header
    std::vector<bool> right_;
};

}  // namespace cardinal::cli
