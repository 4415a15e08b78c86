// `cardinal run`: runs a network on a .npy input and writes the output .npy. Everything that can
// be checked cheaply (options, input file, output folder) is checked before the network is built
// and run, and the output is written only after success.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "cli/engines.h"
#include "io/npy.h"
#include "ir/error.h"
#include "reference/reference.h"

namespace cardinal::cli {

namespace {

// The engines `--engine` accepts.
const std::vector<std::string> kEngines = {"generated", "reference"};

}  // namespace

int run_command(const Args& args) {
    po::options_description options("Options");
    ModelOptions m;
    std::string engine, input_path, output_path;
    CodegenOptions codegen;
    add_model_options(options, m, /*with_seed=*/true);
    add_codegen_options(options, codegen);
    options.add_options()  //
        ("engine", po::value(&engine)->value_name("E")->default_value("generated"),
         "Engine that runs the network: generated (code generated for --target, built and "
         "loaded as a user links it) or reference (plain C++ loops)")  //
        ("input", po::value(&input_path)->value_name("FILE")->required(),
         "Input: float32 NCHW .npy matching --batch and --resolution")  //
        ("output", po::value(&output_path)->value_name("FILE")->required(),
         "Where to write the output .npy (written only if the run succeeds)");
    po::variables_map vm;
    if (!parse_options({"run", "--model NAME --input FILE --output FILE [options]",
                        "Runs a network on a float32 NCHW .npy input and writes its output as "
                        "a float32 .npy."},
                       options, args, vm))
        return 0;

    if (std::find(kEngines.begin(), kEngines.end(), engine) == kEngines.end()) {
        std::string names;
        for (const std::string& e : kEngines)
            names += (names.empty() ? "" : ", ") + e;
        throw UsageError("--engine must be one of: " + names + "; got '" + engine + "'");
    }
    check_model_options(m);

    namespace fs = std::filesystem;
    const fs::path out(output_path);
    const fs::path out_dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
    std::error_code ec;
    if (!fs::is_directory(out_dir, ec))
        throw Error("cannot write '" + output_path + "': the folder '" + out_dir.string() +
                    "' does not exist.");

    const Tensor input = read_npy(input_path);
    const Graph g = build_model(m);
    if (input.shape != g.input_shape)
        throw Error("input '" + input_path + "' has shape " + input.shape.str() + " but " + g.name +
                    " at batch " + std::to_string(m.batch) + " and resolution " +
                    std::to_string(g.input_shape[2]) + " takes " + g.input_shape.str() +
                    "; pass --batch and --resolution to match the input.");

    const auto start = std::chrono::steady_clock::now();
    Tensor output;
    if (engine == "generated") {
        const auto net = load_generated(g, codegen);
        output = Tensor(g.shape_of(g.output));
        net->run(input.ptr(), output.ptr());
    } else {
        output = reference::run(g, input);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    write_npy(output_path, output);
    std::cout << g.name << " (" << engine << "): " << input.shape.str() << " -> "
              << output.shape.str() << " in " << fixed(seconds, 3) << " s, written to "
              << output_path << "\n";
    return 0;
}

}  // namespace cardinal::cli
