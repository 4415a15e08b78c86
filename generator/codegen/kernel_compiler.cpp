#include "codegen/kernel_compiler.h"

#include "Halide.h"
#include "ir/error.h"

namespace cardinal {

std::string KernelSpec::str() const {
    std::string s = generator + "(";
    bool first = true;
    for (const auto& [k, v] : params) {
        if (!first) s += ",";
        s += k + "=" + v;
        first = false;
    }
    return s + ")";
}

namespace {

Halide::Target parse_target(const std::string& target) {
    if (!Halide::Target::validate_target_string(target))
        throw Error("'" + target + "' is not a valid Halide target string");
    return Halide::Target(target);
}

}  // namespace

void compile_kernel_object(const KernelSpec& spec, const std::string& target,
                           const std::string& function_name, const std::string& object_path) {
    const Halide::Target t = parse_target(target).with_feature(Halide::Target::NoRuntime);
    try {
        Halide::GeneratorContext context(t);
        auto gen = Halide::Internal::GeneratorRegistry::create(spec.generator, context);
        Halide::Internal::GeneratorParamsMap params;
        for (const auto& [k, v] : spec.params) params[k] = v;
        gen->set_generator_param_values(params);
        Halide::Module module =
            gen->build_module(function_name, Halide::LinkageType::ExternalPlusMetadata);
        module.compile({{Halide::OutputFileType::object, object_path}});
    } catch (const Halide::Error& e) {
        throw Error("Halide failed to compile " + spec.str() + " for " + target + ": " +
                    e.what());
    } catch (const std::invalid_argument& e) {
        throw Error("invalid schedule for " + spec.str() + ": " + e.what());
    }
}

void compile_runtime_object(const std::string& target, const std::string& object_path) {
    try {
        Halide::compile_standalone_runtime(object_path, parse_target(target));
    } catch (const Halide::Error& e) {
        throw Error("Halide failed to compile its runtime for " + target + ": " + e.what());
    }
}

std::vector<std::string> kernel_generator_names() {
    std::vector<std::string> names;
    for (const std::string& n : Halide::Internal::GeneratorRegistry::enumerate())
        if (n.rfind("cardinal_", 0) == 0) names.push_back(n);
    return names;
}

}  // namespace cardinal
