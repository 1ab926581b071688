// The "efi" plugin: boot control over EFI Boot#### entries and the firmware-reboot activation.
#include <activate/plugin_api.hpp>
#include <activation_efi/boot_control.hpp>
#include <activation_efi/reboot_activation.hpp>

namespace activate::efi {
namespace {

constexpr const char* kComponent = "efi";

Result<std::unique_ptr<BootControl>> create_boot_control(const PluginContext& context,
                                                         Settings& settings) {
    ACTIVATE_ASSIGN(BootControlSettings parsed, read_boot_control_settings(settings));
    return std::unique_ptr<BootControl>(std::make_unique<EfiBootControl>(
        *context.sysroot, Log(context.logger, kComponent), std::move(parsed)));
}

Result<std::unique_ptr<ActivationStrategy>> create_activation(const PluginContext& context,
                                                              Settings& settings) {
    // No settings: the engine sets BootNext through the policy's boot control, the ESP to unmount
    // comes with the target slot.
    ACTIVATE_TRY(settings.finish());
    if (!context.machine)
        return Error(ErrorKind::internal, "activation \"efi\" was given no machine to act on");
    return std::unique_ptr<ActivationStrategy>(std::make_unique<RebootActivation>(
        *context.sysroot, *context.machine, Log(context.logger, kComponent)));
}

}  // namespace
}  // namespace activate::efi

ACTIVATE_DEFINE_PLUGIN(activation_efi, "efi", "0.1.0", nullptr, activate::efi::create_activation,
                       nullptr, activate::efi::create_boot_control)
