// Parser for /sys/firmware/efi/systab (drivers/firmware/efi/efi.c prints one "NAME=0x<hex>" line
// per configuration table it knows).
#include <activation_kexec/acpi_rsdp.hpp>

namespace activate::kexec {
namespace {

bool is_address(std::string_view v) {
    if (v.size() < 3 || v.size() > 18 || v.substr(0, 2) != "0x") return false;
    return v.substr(2).find_first_not_of("0123456789abcdefABCDEF") == std::string_view::npos;
}

}  // namespace

AcpiRsdp acpi_rsdp_from_systab(std::string_view systab) {
    AcpiRsdp out;
    std::optional<std::string> acpi20, acpi10;
    while (!systab.empty()) {
        const size_t newline = systab.find('\n');
        std::string_view line = systab.substr(0, newline);
        systab.remove_prefix(newline == std::string_view::npos ? systab.size() : newline + 1);
        const size_t equals = line.find('=');
        if (equals == std::string_view::npos) continue;
        const std::string_view name = line.substr(0, equals);
        const std::string_view value = line.substr(equals + 1);
        if (name != "ACPI20" && name != "ACPI") continue;
        if (!is_address(value)) {
            out.warnings.push_back("/sys/firmware/efi/systab: skipping " + std::string(name) +
                                   "=\"" + std::string(value) +
                                   "\", which is not a hexadecimal address");
            continue;
        }
        (name == "ACPI20" ? acpi20 : acpi10) = std::string(value);
    }
    out.address = acpi20 ? acpi20 : acpi10;
    return out;
}

}  // namespace activate::kexec
