// Where the ACPI tables are, from the EFI system table the running kernel exports in
// /sys/firmware/efi/systab ("ACPI20=0x..." and "ACPI=0x..." lines). Passed on as acpi_rsdp=
// (Documentation/admin-guide/kernel-parameters.rst) so the kexec'd kernel finds ACPI even when it
// cannot use the EFI system table itself.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace activate::kexec {

struct AcpiRsdp {
    std::optional<std::string> address;  // "0x..." as the kernel printed it
    std::vector<std::string> warnings;   // malformed lines that were skipped
};

// ACPI 2.0+ (ACPI20, the XSDT-capable RSDP) is preferred over ACPI 1.0 (ACPI). Values must be
// "0x" followed by 1 to 16 hex digits; anything else is skipped with a warning.
AcpiRsdp acpi_rsdp_from_systab(std::string_view systab);

}  // namespace activate::kexec
