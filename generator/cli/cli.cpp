#include "cli/cli.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "ir/error.h"
#include "onnx/onnx_import.h"
#include "zoo/zoo.h"

namespace cardinal::cli {

namespace {

uint64_t parse_seed(const std::string& text) {
    uint64_t seed = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, seed);
    if (text.empty() || ec != std::errc() || ptr != end)
        throw UsageError("--seed must be an integer from 0 to 18446744073709551615, got '" + text +
                         "'");
    return seed;
}

// Word-wraps a paragraph to `width` columns.
std::string wrap(const std::string& text, size_t width) {
    std::istringstream words(text);
    std::string word, out, line;
    while (words >> word) {
        if (!line.empty() && line.size() + 1 + word.size() > width) {
            out += line + "\n";
            line.clear();
        }
        line += (line.empty() ? "" : " ") + word;
    }
    return out + line;
}

}  // namespace

bool parse_options(const CommandHelp& help, po::options_description& options, const Args& args,
                   po::variables_map& vm) {
    options.add_options()("help,h", "Show this help");
    // Positional words land in a hidden option so we can name the offending one.
    po::options_description hidden;
    hidden.add_options()("positional", po::value<std::vector<std::string>>());
    po::options_description all;
    all.add(options).add(hidden);
    po::positional_options_description positional;
    positional.add("positional", -1);
    try {
        // No prefix guessing: "--mod" must not silently mean "--model", and adding an option
        // later must not change what an abbreviation means.
        const int style =
            po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
        po::store(
            po::command_line_parser(args).options(all).positional(positional).style(style).run(),
            vm);
        if (vm.count("help")) {
            std::cout << "Usage: cardinal " << help.name << " " << help.synopsis << "\n\n"
                      << wrap(help.description, 80) << "\n\n"
                      << options;
            return false;
        }
        if (vm.count("positional"))
            throw UsageError("unexpected argument '" +
                             vm["positional"].as<std::vector<std::string>>().front() + "'");
        po::notify(vm);
    } catch (const po::error& e) {
        throw UsageError(e.what());
    }
    return true;
}

void add_model_options(po::options_description& options, ModelOptions& m, bool with_seed) {
    options.add_options()  //
        ("model", po::value(&m.model)->value_name("NAME"),
         "Zoo model to use (see 'cardinal models')")  //
        ("onnx", po::value(&m.onnx)->value_name("FILE"),
         "ONNX model to use instead of --model (a symbolic batch takes --batch)")        //
        ("batch", po::value(&m.batch)->value_name("N")->default_value(1), "Batch size")  //
        ("resolution", po::value(&m.resolution)->value_name("R"),
         "Input height and width (default: the model's, e.g. 224)");
    if (with_seed)
        options.add_options()("seed", po::value(&m.seed)->value_name("S")->default_value("0"),
                              "Seed of the model's deterministic weights");
}

void check_model_options(const ModelOptions& m) {
    if (!m.model.empty() && !m.onnx.empty())
        throw UsageError("give either --model or --onnx, not both");
    if (m.model.empty() && m.onnx.empty())
        throw UsageError("the option '--model' is required but missing");
    if (m.batch < 1) throw UsageError("--batch must be at least 1, got " + std::to_string(m.batch));
    if (m.resolution < 0)
        throw UsageError("--resolution must be positive, got " + std::to_string(m.resolution));
    parse_seed(m.seed);
}

Graph build_model(const ModelOptions& m) {
    check_model_options(m);
    if (!m.onnx.empty()) {
        if (m.resolution)
            throw UsageError(
                "--resolution does not apply to --onnx: the model fixes its input size");
        return import_onnx(m.onnx, m.batch);
    }
    const uint64_t seed = parse_seed(m.seed);
    const ZooModel* known = nullptr;
    for (const ZooModel& z : zoo_models())
        if (z.name == m.model) known = &z;
    // The zoo's own error lists the available names.
    if (!known) return build_zoo_model(m.model, m.batch, m.resolution, seed);
    const int resolution = m.resolution ? m.resolution : known->default_resolution;
    try {
        return build_zoo_model(m.model, m.batch, resolution, seed);
    } catch (const Error& e) {
        throw Error("cannot build " + m.model + " for a " + std::to_string(m.batch) + "x3x" +
                    std::to_string(resolution) + "x" + std::to_string(resolution) +
                    " input: " + e.what());
    }
}

std::string with_commas(int64_t n) {
    const bool negative = n < 0;
    std::string digits = std::to_string(negative ? -n : n);
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return negative ? "-" + out : out;
}

std::string fixed(double x, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.*f", digits, x);
    return buf;
}

Table::Table(std::vector<std::string> header, std::vector<bool> right_aligned)
    : right_(std::move(right_aligned)) {
    right_.resize(header.size(), false);
    rows_.push_back(std::move(header));
}

void Table::add(std::vector<std::string> row) {
    row.resize(rows_[0].size());
    rows_.push_back(std::move(row));
}

std::string Table::str() const {
    const size_t cols = rows_[0].size();
    std::vector<size_t> width(cols, 0);
    for (const auto& row : rows_)
        for (size_t c = 0; c < cols; ++c)
            width[c] = std::max(width[c], row[c].size());
    std::ostringstream out;
    auto line = [&](const std::vector<std::string>& row) {
        std::string s;
        for (size_t c = 0; c < cols; ++c) {
            if (c) s += "  ";
            const std::string pad(width[c] - row[c].size(), ' ');
            s += right_[c] ? pad + row[c] : row[c] + (c + 1 < cols ? pad : "");
        }
        while (!s.empty() && s.back() == ' ')
            s.pop_back();
        out << s << '\n';
    };
    line(rows_[0]);
    std::vector<std::string> rule(cols);
    for (size_t c = 0; c < cols; ++c)
        rule[c] = std::string(width[c], '-');
    line(rule);
    for (size_t r = 1; r < rows_.size(); ++r)
        line(rows_[r]);
    return out.str();
}

}  // namespace cardinal::cli
