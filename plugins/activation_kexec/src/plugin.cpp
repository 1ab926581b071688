// Plugin glue: the "kexec" activation strategy.
#include <activation_kexec/kexec_activation.hpp>

namespace activate::kexec {
namespace {

Result<std::unique_ptr<ActivationStrategy>> create_activation(const PluginContext& context,
                                                              Settings& settings) {
    // No settings: any key in the section is a mistake.
    ACTIVATE_TRY(settings.finish());
    if (!context.machine)
        return Error(ErrorKind::internal, "activation \"kexec\" was given no machine to act on");
    return std::unique_ptr<ActivationStrategy>(std::make_unique<KexecActivation>(
        *context.sysroot, *context.machine, Log(context.logger, "kexec")));
}

}  // namespace
}  // namespace activate::kexec

ACTIVATE_DEFINE_PLUGIN(activation_kexec, "kexec", "0.1.0", nullptr,
                       activate::kexec::create_activation, nullptr, nullptr)
